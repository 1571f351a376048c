"""ONNX Runtime backend: providers TensorRT EP -> CUDA EP -> CPU, whichever this onnxruntime build has."""

from __future__ import annotations

import numpy as np

from ...errors import ModelError
from ...models.bundle import Bundle
from ..session import Session, entry_input_shapes, register_backend

#: preferred order; only those the installed onnxruntime offers are used
PROVIDER_ORDER = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
#: ORT-only dynamic int8 ops: the TensorRT EP would reject the whole graph, so it is left out for them
_ORT_ONLY_OPS = ("ConvInteger", "MatMulInteger", "DynamicQuantizeLinear")


def available_providers(prefer: tuple[str, ...] | list[str] | None = None) -> list[str]:
    import onnxruntime as ort

    have = set(ort.get_available_providers())
    return [p for p in (prefer or PROVIDER_ORDER) if p in have] or ["CPUExecutionProvider"]


class OnnxSession(Session):
    backend = "onnx"

    def __init__(self, bundle: Bundle, spec_name: str, precision: str = "fp32", threads: int | None = None,
                 providers: list[str] | None = None, **_: object):
        import onnxruntime as ort

        entry = bundle.entry(spec_name, "onnx", precision)
        super().__init__(bundle.spec(spec_name, "onnx", precision),
                         entry_input_shapes(bundle, spec_name, "onnx", precision))
        self.path = bundle.path(spec_name, "onnx", precision)
        self.names = bundle.tensor_names(spec_name, "onnx", precision)  # spec name -> name in the file
        chosen = available_providers(providers)
        if (entry.get("registered") or {}).get("tensorrt_parsable") is False or \
                (entry.get("quantization") or {}).get("kind", "").startswith("dynamic"):
            chosen = [p for p in chosen if p != "TensorrtExecutionProvider"] or ["CPUExecutionProvider"]
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = int(threads)
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=chosen)
        except Exception as e:  # ORT raises its own exception types (Fail, InvalidGraph, ...)
            raise ModelError(f"ONNX Runtime cannot load {self.path}: {e}") from e
        self.providers = self.session.get_providers()
        self._out_file_names = [self.names[n] for n in self.spec.output_names]

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            values = self.session.run(self._out_file_names, {self.names[k]: v for k, v in feeds.items()})
        except Exception as e:
            raise ModelError(f"ONNX Runtime failed on {self.path.name}: {str(e).splitlines()[0]}") from e
        return dict(zip(self.spec.output_names, values))

    def _close(self) -> None:
        self.session = None


@register_backend("onnx")
def open_onnx(bundle: Bundle, spec_name: str, precision: str = "fp32", **opts) -> OnnxSession:
    return OnnxSession(bundle, spec_name, precision, **opts)
