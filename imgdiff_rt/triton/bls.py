"""The ``triton-bls`` Session backend: inside a Triton Python-backend model, a graph runs as a request to the
server's own model of that name (business logic scripting), so it keeps its instances, dynamic batching and
GPU placement while the calling model runs the orchestration.

Importing this module registers the backend in ``runtime.session_base.BACKENDS`` (the served models import it);
``open_session(bundle, "clip_image", backend="triton-bls")`` then works exactly as ``onnx`` does, inputs
checked against the bound spec first.
"""

from __future__ import annotations

import numpy as np

from imgdiff_rt.errors import ModelError
from imgdiff_rt.models.bundle import Bundle
from imgdiff_rt.runtime.session_base import Session, entry_input_shapes, register_backend

BACKEND = "triton-bls"


def _pb():
    import triton_python_backend_utils as pb_utils  # only exists inside the Triton Python backend

    return pb_utils


class BlsSession(Session):
    """One graph of the bundle, served by the model ``model_name`` of the same server."""

    backend = BACKEND

    def __init__(self, bundle: Bundle, spec_name: str, precision: str = "fp32", model_name: str | None = None):
        super().__init__(bundle.spec(spec_name, "onnx", precision),
                         entry_input_shapes(bundle, spec_name, "onnx", precision))
        self.names = bundle.tensor_names(spec_name, "onnx", precision)  # spec name -> name in the model config
        self.model_name = model_name or spec_name

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        pb = _pb()
        wanted = [self.names[n] for n in self.spec.output_names]
        request = pb.InferenceRequest(model_name=self.model_name, requested_output_names=wanted,
                                      inputs=[pb.Tensor(self.names[n], v) for n, v in feeds.items()])
        response = request.exec()
        if response.has_error():
            raise ModelError(f"{self.model_name}: {response.error().message()}")
        return {n: pb.get_output_tensor_by_name(response, self.names[n]).as_numpy()
                for n in self.spec.output_names}


@register_backend(BACKEND)
def open_bls(bundle: Bundle, spec_name: str, precision: str = "fp32", **_: object) -> BlsSession:
    """Options other backends take (threads, providers, url) mean nothing here: the served model decides."""
    return BlsSession(bundle, spec_name, precision)
