"""PyTorch eager backend: the reference. It rebuilds the very wrapper modules the exporter exported
(``torch_models.hf.graphs_for`` for CLIP/BLIP/LLaVA, ``torch_models.segmenter.build_segmenter`` + the saved
state_dict for the segmenter), so ONNX / TensorRT results can be checked against it on the same inputs."""

from __future__ import annotations

import functools
import logging

import numpy as np

from imgdiff_rt.errors import ModelError
from imgdiff_rt.models.bundle import Bundle
from imgdiff_rt.models.manifest import TorchPart
from imgdiff_rt.models.specs import get_spec
from imgdiff_rt.runtime.session_base import Session, register_backend


def _load_hf(family: str, source: str, weights: str):
    from imgdiff_rt.torch_models.hf import graphs_for, load_saved

    try:
        return graphs_for(load_saved(family, source, weights))
    except ModelError as e:
        raise ModelError(f"torch backend: {e}") from None


@functools.lru_cache(maxsize=8)
def _hf_graphs(root: str, family: str, source: str, weights: str) -> dict:
    return {spec.name: module for spec, module in _load_hf(family, source, weights)}


def _segmenter_module(bundle: Bundle):
    found = bundle.torch_source("segmenter")
    if not found:
        why = " (a registered foreign ONNX has no PyTorch module)" if bundle.is_registered("segmenter") else ""
        raise ModelError(f"torch backend: bundle {bundle.root} has no segmenter weights for PyTorch{why}; "
                         "use the onnx backend, or re-export the segmenter with `imgdiff-rt export`")
    if not isinstance(found, TorchPart) or found.file is None or found.build is None or not found.build.source:
        raise ModelError(f"torch backend: bundle {bundle.root} records no segmenter weights file and architecture; "
                         "re-export the segmenter with `imgdiff-rt export`")
    file = bundle.root / found.file
    return _load_segmenter(str(file), file.stat().st_mtime_ns, found.build.source, bool(found.build.tiny))


@functools.lru_cache(maxsize=4)  # building the architecture costs seconds; the module is only read here
def _load_segmenter(file: str, _mtime_ns: int, source: str, tiny: bool):
    import torch

    from imgdiff_rt.torch_models.segmenter import build_segmenter, import_ultralytics

    # the same architecture with any weights, then the exported weights loaded over them; Ultralytics logs
    # to stdout, which carries the result JSON, so its chatter is muted while building
    LOGGER = import_ultralytics().utils.LOGGER

    level = LOGGER.level
    LOGGER.setLevel(logging.ERROR)
    try:
        module = build_segmenter(source, random_init=True, tiny=tiny)
    finally:
        LOGGER.setLevel(level)
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)  # tensors only: never runs its code
    except Exception as e:  # UnpicklingError (a blocked global), RuntimeError (not a torch file), ...
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ModelError(f"{file}: not a plain state dict, refused by the safe loader ({first})") from None
    module.load_state_dict(state)
    return module.eval()


class TorchSession(Session):
    backend = "torch"

    def __init__(self, bundle: Bundle, spec_name: str, precision: str = "fp32", threads: int | None = None,
                 **_: object):
        import torch

        if precision != "fp32":
            raise ModelError(f"torch backend runs the fp32 reference only, not {precision}")
        if threads:
            torch.set_num_threads(int(threads))
        family = get_spec(spec_name).family
        if family == "segmenter":
            self.module = _segmenter_module(bundle)  # first: its error says why there is no module
            super().__init__(bundle.spec(spec_name, "onnx", "fp32"))
        else:
            super().__init__(bundle.spec(spec_name, "onnx", "fp32"))
            found = bundle.torch_source(family)
            if not found:
                raise ModelError(f"torch backend: bundle {bundle.root} has no PyTorch weights for {family}; "
                                 "re-export it with this version of `imgdiff-rt export`")
            source = str(bundle.root / found.path) if found.path is not None else found.load_from
            graphs = _hf_graphs(str(bundle.root), family, source, found.weights or "pretrained")
            if spec_name not in graphs:
                raise ModelError(f"torch backend: {family} has no graph {spec_name!r}")
            self.module = graphs[spec_name]

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        with torch.inference_mode():
            out = self.module(*(torch.from_numpy(feeds[n]) for n in self.spec.input_names))
        if isinstance(out, torch.Tensor):
            out = (out,)
        return {n: t.detach().cpu().numpy() for n, t in zip(self.spec.output_names, out)}

    def _close(self) -> None:
        self.module = None


@register_backend("torch")
def open_torch(bundle: Bundle, spec_name: str, precision: str = "fp32", **opts) -> TorchSession:
    return TorchSession(bundle, spec_name, precision, **opts)
