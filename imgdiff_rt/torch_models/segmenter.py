"""The segmenter (FastSAM / YOLOv8-seg) as a PyTorch module whose forward is the segmenter spec.

FastSAM-s is the YOLOv8s-seg architecture with one class and FastSAM-x is YOLOv8x-seg with one class, so every
source here is an Ultralytics ``SegmentationModel``: a checkpoint (path or asset name), or the architecture
built from Ultralytics' bundled model yaml with random weights (``random_init``), or a small config of the
same architecture (``tiny``). The graph always ends at the raw head: ``preds`` (batch, 4 + nc + 32, anchors)
with boxes decoded to input pixels and sigmoid scores, and ``protos``; NMS and mask assembly stay outside.

The exporter exports this module; the runtime's ``torch`` backend rebuilds it as the reference.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from imgdiff_rt.errors import SpecLayoutError, UsageError, WeightsUnavailableError
from imgdiff_rt.models.specs import DEFAULT_IMGSZ, DEFAULT_SOURCES, SEGMENTER_NUM_MASKS, SEGMENTER_STRIDES, ModelSpec, get_spec, segmenter_num_outputs

#: Ultralytics' width/depth scale for ``tiny``: YOLOv8 layout at 1/8 width (about 0.43 M parameters).
TINY_SCALE = (0.33, 0.125, 256)
DEFAULT_SOURCE = DEFAULT_SOURCES["segmenter"]


@dataclass(frozen=True)
class SegmenterInfo:
    """What a built segmenter is; ``bind_sizes()`` gives the sizes ``spec.bind`` needs."""

    source: str
    architecture: str  # Ultralytics yaml it follows, e.g. "yolov8s-seg.yaml"
    num_classes: int
    strides: tuple[int, ...]
    random_init: bool
    tiny: bool
    num_parameters: int

    def bind_sizes(self) -> dict[str, int]:
        return {"num_outputs": segmenter_num_outputs(self.num_classes), "num_classes": self.num_classes}

    def as_dict(self) -> dict:
        return asdict(self)


def import_ultralytics():
    """Ultralytics, imported so that it writes nothing outside imgdiff-rt's own folders and nothing on stdout
    (which carries result JSON): on first import it creates a settings file, by default under
    ``~/.config/Ultralytics``, and announces it on stdout. Its settings go to ``$IMGDIFF_RT_HOME/ultralytics``
    (a ``YOLO_CONFIG_DIR`` the user set wins), its announcement and its logger to stderr."""
    import contextlib
    import sys

    from imgdiff_rt.models.bundle import default_bundle_dir

    os.environ.setdefault("YOLO_CONFIG_DIR", str(default_bundle_dir().parent / "ultralytics"))
    with contextlib.redirect_stdout(sys.stderr):  # its logger's handler takes sys.stdout as it is now
        import ultralytics.utils
    return ultralytics


def _torch_modules():
    import torch  # heavy: imported on use so the package imports without torch

    return torch, torch.nn


def _architecture_for(source: str) -> tuple[str, int]:
    """(Ultralytics yaml, num_classes) for a source name: FastSAM-s/x -> yolov8s/x-seg with 1 class."""
    stem = Path(source).stem.lower()
    fastsam = re.fullmatch(r"fastsam-([nsmlx])", stem)
    if fastsam:
        return f"yolov8{fastsam.group(1)}-seg.yaml", 1
    yolo = re.fullmatch(r"yolov8([nsmlx])-seg", stem)
    if yolo:
        return f"yolov8{yolo.group(1)}-seg.yaml", 80
    raise UsageError(
        f"segmenter {source!r}: --random-init/--tiny need a known architecture name "
        "(FastSAM-s.pt, FastSAM-x.pt or yolov8[nsmlx]-seg.pt)"
    )


def _build_from_config(source: str, tiny: bool):
    import_ultralytics()
    from ultralytics.nn.tasks import SegmentationModel, yaml_model_load

    yaml_name, num_classes = _architecture_for(source)
    cfg = yaml_model_load(yaml_name)  # bundled with the ultralytics wheel: no download
    if tiny:
        cfg["scales"] = {"tiny": list(TINY_SCALE)}
        cfg["scale"] = "tiny"
    return SegmentationModel(cfg, nc=num_classes, verbose=False), yaml_name


def _calibrate_batchnorm(model, batches: int = 3, size: int = 160) -> None:
    """Set BatchNorm running statistics from a few random batches, so random-init activations keep about unit
    scale through the depth instead of fading to constants (which would make parity checks vacuous)."""
    torch, nn = _torch_modules()
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the batches below
    generator = torch.Generator().manual_seed(0)
    model.train()
    with torch.no_grad():
        for _ in range(batches):
            model(torch.rand(2, 3, size, size, generator=generator))
    model.eval()


def _safe_load_checkpoint(path: Path):
    """An Ultralytics checkpoint through its safe loader (``torch.load(weights_only=True)`` against an
    allow-list of model classes): a checkpoint carrying any other code is refused, never run."""
    import_ultralytics()
    from ultralytics.nn import tasks

    if not getattr(getattr(tasks, "_SafeLoad", None), "SUPPORTED", False) or not hasattr(tasks, "SAFE_LOAD"):
        raise WeightsUnavailableError(f"segmenter checkpoint {path}: this Ultralytics cannot load checkpoints "
                                      "without unpickling arbitrary code; refused (use --segmenter-onnx PATH)")
    saved, tasks.SAFE_LOAD = tasks.SAFE_LOAD, True  # read by tasks.torch_safe_load at call time
    try:
        model, _ = tasks.load_checkpoint(str(path))
    except Exception as exc:  # UnpicklingError for a blocked class, TypeError for a foreign format, ...
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise WeightsUnavailableError(f"segmenter checkpoint {path} cannot be loaded safely: {first}") from None
    finally:
        tasks.SAFE_LOAD = saved
    return model


def _load_checkpoint(source: str):
    """Load an Ultralytics checkpoint; fetch it through Ultralytics only when a network is allowed."""
    import_ultralytics()
    path = Path(source).expanduser()
    if not path.is_file():
        offline = os.environ.get("YOLO_OFFLINE", "").lower() in {"1", "true", "yes"}
        hint = (f"no local segmenter weights at {source!r}: pass a local checkpoint path, "
                "--random-init for the same architecture with random weights, "
                "or --segmenter-onnx PATH to register an already-exported ONNX")
        if offline or path.parent != Path("."):
            raise WeightsUnavailableError(hint + (" (YOLO_OFFLINE is set)" if offline else ""))
        try:
            from ultralytics.utils.downloads import attempt_download_asset

            path = Path(attempt_download_asset(source))
        except Exception as exc:  # Ultralytics raises a variety of network errors
            raise WeightsUnavailableError(f"{hint} (download failed: {exc})") from exc
        if not path.is_file():
            raise WeightsUnavailableError(hint + " (download gave no file)")
    model = _safe_load_checkpoint(path)
    from ultralytics.nn.modules.head import Segment

    head = getattr(model, "model", [None])[-1]
    if not isinstance(head, Segment):  # the head, not model.task: a bare checkpoint may lack the task
        raise UsageError(f"{path} holds a {type(head).__name__} head, not a YOLOv8-seg / FastSAM segmenter")
    yaml_name = getattr(model, "yaml", {}).get("yaml_file", path.name)
    return model, str(yaml_name)


def _prepare_for_export(model):
    """Eval, fused, head in export mode: what Ultralytics' exporter does before torch.onnx.export."""
    import_ultralytics()
    from ultralytics.nn.modules import C2f
    from ultralytics.nn.modules.head import Detect

    model = model.float().eval()
    for p in model.parameters():
        p.requires_grad_(False)
    model = model.fuse(verbose=False)
    for m in model.modules():
        if isinstance(m, Detect):
            m.export, m.format, m.dynamic = True, "onnx", True  # dynamic: anchors follow each input size
            m.shape = None
            if getattr(m, "end2end", False):
                raise UsageError("end-to-end (NMS-free) heads are not YOLOv8-seg/FastSAM; use a v8 seg model")
        elif isinstance(m, C2f):
            m.forward = m.forward_split  # Split instead of chunk: a cleaner ONNX graph
    return model


@functools.cache
def segmenter_module_class():
    """The wrapper class (made on first use so importing this module does not import torch)."""
    torch, nn = _torch_modules()

    class _Segmenter(nn.Module):
        """forward(images) -> (preds, protos), the segmenter spec's outputs in spec order."""

        def __init__(self, model, info: SegmenterInfo):
            super().__init__()
            self.model = model
            self.info = info

        def forward(self, images):
            preds, protos = self.model(images)
            return preds, protos

    return _Segmenter


def build_segmenter(source: str | None = None, *, random_init: bool = False, tiny: bool = False):
    """The segmenter as a torch module: eval, fused, export-mode head; ``module.info`` is a SegmenterInfo.

    ``source``: a checkpoint path or Ultralytics asset name (FastSAM-s.pt, FastSAM-x.pt, yolov8*-seg.pt);
    None means FastSAM-s. ``random_init``: the real-size architecture from its yaml with random weights.
    ``tiny``: a 1/8-width config of the same architecture (random weights; for tests and smoke runs).
    Without local weights and without a network this raises WeightsUnavailableError naming the way out.
    """
    torch, _ = _torch_modules()
    source = source or DEFAULT_SOURCE
    if random_init or tiny:
        torch.manual_seed(0)  # reproducible random weights
        model, yaml_name = _build_from_config(source, tiny)
        _calibrate_batchnorm(model)
    else:
        model, yaml_name = _load_checkpoint(source)
    model = _prepare_for_export(model)
    head = model.model[-1]
    info = SegmenterInfo(
        source=str(source),
        architecture=Path(yaml_name).name,
        num_classes=int(head.nc),
        strides=tuple(int(s) for s in model.stride.tolist()),
        random_init=bool(random_init or tiny),
        tiny=bool(tiny),
        num_parameters=int(sum(p.numel() for p in model.parameters())),
    )
    if int(head.nm) != SEGMENTER_NUM_MASKS or info.strides != SEGMENTER_STRIDES:
        raise SpecLayoutError(f"{source}: {head.nm} mask coefficients and strides {info.strides}; the "
                              f"segmenter spec needs {SEGMENTER_NUM_MASKS} and {SEGMENTER_STRIDES}")
    return segmenter_module_class()(model, info).eval()


def segmenter_spec(info: SegmenterInfo, imgsz: int = DEFAULT_IMGSZ) -> ModelSpec:
    """The segmenter spec bound to this model's sizes (imgsz is the export/optimisation size)."""
    return get_spec("segmenter").bind(imgsz=imgsz, **info.bind_sizes())
