"""The segmenter (FastSAM / YOLOv8-seg) as an exportable module, its ONNX export, foreign-ONNX registration.

FastSAM-s is the YOLOv8s-seg architecture with one class and FastSAM-x is YOLOv8x-seg with one class, so every
source here is an Ultralytics ``SegmentationModel``: a checkpoint (path or asset name), or the architecture
built from Ultralytics' bundled model yaml with random weights (``random_init``), or a small config of the
same architecture (``tiny``). The graph always ends at the raw head: ``preds`` (batch, 4 + nc + 32, anchors)
with boxes decoded to input pixels and sigmoid scores, and ``protos``; NMS and mask assembly stay outside.

Tensor names and layout come from ``specs.get_spec("segmenter")``; nothing here restates them.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import SpecLayoutError, UsageError, WeightsUnavailableError
from ..models.specs import SEGMENTER_NUM_MASKS, SEGMENTER_STRIDES, ModelSpec, get_spec, segmenter_num_outputs

#: Ultralytics' width/depth scale for ``tiny``: YOLOv8 layout at 1/8 width (about 0.43 M parameters).
TINY_SCALE = (0.33, 0.125, 256)
DEFAULT_SOURCE = "FastSAM-s.pt"
_QUANT_OPS = {"ConvInteger", "MatMulInteger", "DynamicQuantizeLinear"}
_QDQ_OPS = {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul"}


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


def _load_checkpoint(source: str):
    """Load an Ultralytics checkpoint; fetch it through Ultralytics only when a network is allowed."""
    from ultralytics.nn.tasks import load_checkpoint

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
    try:
        model, _ = load_checkpoint(str(path))
    except Exception as exc:
        raise WeightsUnavailableError(f"segmenter checkpoint {path} cannot be loaded: {exc}") from exc
    from ultralytics.nn.modules.head import Segment

    head = getattr(model, "model", [None])[-1]
    if not isinstance(head, Segment):  # the head, not model.task: a bare checkpoint may lack the task
        raise UsageError(f"{path} holds a {type(head).__name__} head, not a YOLOv8-seg / FastSAM segmenter")
    yaml_name = getattr(model, "yaml", {}).get("yaml_file", path.name)
    return model, str(yaml_name)


def _prepare_for_export(model):
    """Eval, fused, head in export mode: what Ultralytics' exporter does before torch.onnx.export."""
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


def segmenter_spec(info: SegmenterInfo, imgsz: int = 640) -> ModelSpec:
    """The segmenter spec bound to this model's sizes (imgsz is the export/optimisation size)."""
    return get_spec("segmenter").bind(imgsz=imgsz, **info.bind_sizes())


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_imgsz(imgsz: int) -> int:
    if not isinstance(imgsz, int) or imgsz < 32 or imgsz % 32:
        raise UsageError(f"segmenter imgsz {imgsz!r}: a positive multiple of 32 is needed")
    return imgsz


def _merge_parity(checks: list[dict]) -> dict[str, dict]:
    """Worst figures per output over several parity checks (each at its own input size)."""
    merged: dict[str, dict] = {}
    for check in checks:
        for name, row in check["outputs"].items():
            out = merged.setdefault(name, {"max_abs": 0.0, "mean_abs": 0.0, "ok": True})
            out["max_abs"] = max(out["max_abs"], row.get("max_abs", float("inf")))
            out["mean_abs"] = max(out["mean_abs"], row.get("mean_abs", float("inf")))
            out["ok"] = out["ok"] and bool(row.get("ok"))
    return merged


def check_segmenter_parity(module, onnx_path: str | Path, spec: ModelSpec, sizes=((640, 640),), *,
                           batch: int = 2, seed: int | None = None) -> dict:
    """ONNX Runtime vs PyTorch on fresh random images at each (height, width); ParityError (listing every
    output's max error) when the spec's tolerance is missed.

    Returns {"outputs": worst figures per output, "checks": each check's summary}."""
    from .onnx_export import check_parity

    checks = [check_parity(onnx_path, module, spec, batch=batch, seed=seed, dims={"height": h, "width": w})
              for h, w in sizes]
    return {"outputs": _merge_parity(checks), "checks": checks}


def _add_ultralytics_metadata(path: Path, info: SegmenterInfo, imgsz: int) -> None:
    """Ultralytics' own keys (task, stride, imgsz, names) so its tools can read the file too."""
    import onnx

    model = onnx.load(str(path))
    names = {i: ("object" if info.num_classes == 1 else f"class{i}") for i in range(info.num_classes)}
    values = {"task": "segment", "stride": str(max(info.strides)), "imgsz": str([imgsz, imgsz]),
              "names": str(names)}
    keep = [p for p in model.metadata_props if p.key not in values]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    for key, value in values.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))


def export_segmenter(module_or_source, out_path: str | Path, imgsz: int = 640, *, random_init: bool = False,
                     tiny: bool = False, simplify: bool = True, check_parity: bool = True,
                     parity_seed: int | None = None) -> dict:
    """Export to ONNX with the spec's names, dynamic batch/height/width, onnxslim, metadata; check parity.

    ``module_or_source``: a module from ``build_segmenter``, or a source for it (``random_init``/``tiny`` then
    apply). Parity runs at imgsz x imgsz and at a non-square size (proving dynamic height/width), on fresh
    random images. Returns {spec, path, sha256, bytes, opset, imgsz, sizes, model, seconds, parity, ...}.
    """
    import onnx

    from .onnx_export import export_onnx

    imgsz = _check_imgsz(imgsz)
    module = module_or_source
    if module is None or isinstance(module, (str, Path)):
        module = build_segmenter(None if module is None else str(module), random_init=random_init, tiny=tiny)
    info: SegmenterInfo = module.info
    spec = segmenter_spec(info, imgsz)
    out_path = Path(out_path)

    started = time.perf_counter()
    export_onnx(module, spec, out_path, source=info.source, example_batch=1,
                example_dims={"height": imgsz, "width": imgsz}, simplify=simplify,
                extra_metadata={"architecture": info.architecture, "random_init": str(info.random_init),
                                "imgsz": str(imgsz)})
    _add_ultralytics_metadata(out_path, info, imgsz)
    onnx.checker.check_model(str(out_path))
    export_s = time.perf_counter() - started

    parity = None
    if check_parity:
        other = imgsz + 32 if imgsz <= 320 else imgsz - 64
        sizes = ((imgsz, imgsz), (imgsz, other))
        parity = check_segmenter_parity(module, out_path, spec, sizes, seed=parity_seed)
    return {
        "spec": spec.name, "path": str(out_path), "sha256": _file_sha256(out_path),
        "bytes": out_path.stat().st_size, "opset": spec.opset, "imgsz": imgsz, "sizes": dict(spec.sizes),
        "model": info.as_dict(), "simplified": simplify, "export_seconds": round(export_s, 2),
        "parity_seconds": round(time.perf_counter() - started - export_s, 2),
        "parity": parity["outputs"] if parity else None,
        "parity_checks": parity["checks"] if parity else None,
    }


# ---- registering an already-exported ONNX ------------------------------------------------------------
def _dims(value_info) -> tuple:
    dims = []
    for d in value_info.type.tensor_type.shape.dim:
        dims.append(int(d.dim_value) if d.HasField("dim_value") else (d.dim_param or None))
    return tuple(dims)


def _quantization_kind(op_types: set[str]) -> str | None:
    if op_types & _QUANT_OPS:
        return "dynamic-int8"
    if op_types & _QDQ_OPS:
        return "static-int8"
    return None


def register_segmenter_onnx(path: str | Path) -> dict:
    """Check a foreign segmenter ONNX against the spec and describe it (names, shapes, classes, quantisation).

    The file's inputs/outputs are matched by layout, not name: one rank-4 3-channel input; a rank-3 output
    with 4 + nc + 32 rows (``preds``) and a rank-4 32-channel output (``protos``). ``tensor_names`` maps each
    spec name to the file's name so a runtime can feed and read it by spec names. SpecLayoutError otherwise.
    """
    import onnx
    from onnx import TensorProto

    path = Path(path)
    if not path.is_file():
        raise SpecLayoutError(f"segmenter ONNX {path} does not exist")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise SpecLayoutError(f"{path} is not a readable ONNX model: {exc}") from exc
    spec = get_spec("segmenter")
    inits = {i.name for i in model.graph.initializer}
    inputs = [v for v in model.graph.input if v.name not in inits]
    outputs = list(model.graph.output)
    dtype_of = {v.name: TensorProto.DataType.Name(v.type.tensor_type.elem_type).lower()
                for v in (*inputs, *outputs)}
    dtype_of = {k: {"float": "float32", "double": "float64"}.get(v, v) for k, v in dtype_of.items()}
    shapes = {v.name: _dims(v) for v in (*inputs, *outputs)}
    where = f"segmenter ONNX {path.name}"
    if len(inputs) != 1 or len(outputs) != 2:
        raise SpecLayoutError(f"{where}: needs 1 input and 2 outputs, has {len(inputs)} and {len(outputs)}")
    by_rank = {len(shapes[v.name]): v.name for v in outputs}
    if sorted(by_rank) != [3, 4]:
        raise SpecLayoutError(f"{where}: outputs need ranks 3 (preds) and 4 (protos), got "
                              f"{[len(shapes[v.name]) for v in outputs]}")
    preds_name, protos_name, image_name = by_rank[3], by_rank[4], inputs[0].name
    rows = shapes[preds_name][1]
    if not isinstance(rows, int) or rows < 4 + 1 + SEGMENTER_NUM_MASKS:
        raise SpecLayoutError(f"{where}: {preds_name} has {rows} rows; 4 box + >= 1 class + "
                              f"{SEGMENTER_NUM_MASKS} mask-coefficient rows are needed")
    num_classes = rows - 4 - SEGMENTER_NUM_MASKS
    spec_names = dict(zip([*spec.input_names, *spec.output_names], [image_name, preds_name, protos_name]))
    bound = spec.bind(num_outputs=rows)
    env = bound.match_shapes({s: shapes[f] for s, f in spec_names.items()},
                             {s: dtype_of[f] for s, f in spec_names.items()})
    height, width = env.get("height"), env.get("width")
    if height and width:  # a fixed-size file: its head sizes must follow from its input size
        expected = {"num_anchors": sum((height // s) * (width // s) for s in SEGMENTER_STRIDES),
                    "proto_h": height // 4, "proto_w": width // 4}
        wrong = {k: (env[k], v) for k, v in expected.items() if k in env and env[k] != v}
        if wrong or height % 32 or width % 32:
            raise SpecLayoutError(f"{where}: head sizes {wrong} do not follow from a {height}x{width} input")
    meta = {p.key: p.value for p in model.metadata_props}
    op_types = {n.op_type for n in model.graph.node}
    imgsz = [height, width] if height and width else _meta_imgsz(meta)
    return {
        "spec": spec.name, "path": str(path), "sha256": _file_sha256(path), "bytes": path.stat().st_size,
        "opset": max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=None),
        "tensor_names": spec_names, "shapes": {s: list(shapes[f]) for s, f in spec_names.items()},
        "dtypes": {s: dtype_of[f] for s, f in spec_names.items()}, "num_classes": num_classes,
        "num_outputs": rows, "imgsz": imgsz, "dynamic_batch": not isinstance(env.get("batch"), int),
        "dynamic_hw": not (height and width), "quantization": _quantization_kind(op_types),
        # ConvInteger/DynamicQuantizeLinear graphs run on ORT's CPU provider only; TensorRT cannot parse them
        "tensorrt_parsable": not (op_types & _QUANT_OPS),
        "metadata": {k: meta[k] for k in ("task", "stride", "imgsz", "description", "version") if k in meta},
        "class_names": meta.get("names"),
    }


def _meta_imgsz(meta: dict) -> list[int] | None:
    found = re.findall(r"\d+", meta.get("imgsz", ""))
    return [int(v) for v in found[:2]] if len(found) >= 2 else None
