"""The segmenter's ONNX export (with parity) and the registration of an already-exported foreign ONNX.

The module itself (build from a checkpoint, ``--random-init`` or ``--tiny``) lives in
``torch_models/segmenter.py``.

Tensor names and layout come from ``specs.get_spec("segmenter")``; nothing here restates them.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from imgdiff_rt.errors import SpecLayoutError, UsageError
from imgdiff_rt.models.bundle import sha256_file
from imgdiff_rt.torch_models.segmenter import SegmenterInfo, build_segmenter, segmenter_spec
from imgdiff_rt.models.specs import DEFAULT_IMGSZ, SEGMENTER_NUM_MASKS, ModelSpec, get_spec, segmenter_output_sizes

_QUANT_OPS = {"ConvInteger", "MatMulInteger", "DynamicQuantizeLinear"}
_QDQ_OPS = {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul"}


def _check_imgsz(imgsz: int) -> int:
    if not isinstance(imgsz, int) or imgsz < 32 or imgsz % 32:
        raise UsageError(f"segmenter imgsz {imgsz!r}: a positive multiple of 32 is needed")
    return imgsz


def check_segmenter_parity(module, onnx_path: str | Path, spec: ModelSpec, sizes=((DEFAULT_IMGSZ, DEFAULT_IMGSZ),), *,
                           batch: int = 2, seed: int | None = None, device=None) -> dict:
    """ONNX Runtime vs PyTorch on fresh random images at each (height, width); ParityError (listing every
    output's max error) when the spec's tolerance is missed.

    Returns {"outputs": worst figures per output, "checks": each check's summary}."""
    from imgdiff_rt.runtime.compare import worst
    from imgdiff_rt.export.checks import check_parity

    placed = {"device": device} if device is not None else {}  # None: check_parity's default, the CPU
    checks = [check_parity(onnx_path, module, spec, batch=batch, seed=seed, dims={"height": h, "width": w}, **placed)
              for h, w in sizes]
    return {"outputs": worst(c["outputs"] for c in checks), "checks": checks}


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


def export_segmenter(module_or_source, out_path: str | Path, imgsz: int = DEFAULT_IMGSZ, *, random_init: bool = False,
                     tiny: bool = False, simplify: bool = True, check_parity: bool = True,
                     parity_seed: int | None = None, device=None) -> dict:
    """Export to ONNX with the spec's names, dynamic batch/height/width, onnxslim, metadata; check parity.

    ``module_or_source``: a module from ``build_segmenter``, or a source for it (``random_init``/``tiny`` then
    apply). Parity runs at imgsz x imgsz and at a non-square size (proving dynamic height/width), on fresh
    random images, on ``device`` (a ``runtime.device.Device``; None: the CPU). Returns {spec, path, sha256,
    bytes, opset, imgsz, sizes, model, seconds, parity, ...}.
    """
    import onnx

    from imgdiff_rt.export.onnx_export import export_onnx

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
        parity = check_segmenter_parity(module, out_path, spec, sizes, seed=parity_seed, device=device)
    return {
        "spec": spec.name, "path": str(out_path), "sha256": sha256_file(out_path),
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
    _check_head_sizes(where, env)
    meta = {p.key: p.value for p in model.metadata_props}
    op_types = {n.op_type for n in model.graph.node}
    imgsz = [height, width] if height and width else _meta_imgsz(meta)
    return {
        "spec": spec.name, "path": str(path), "sha256": sha256_file(path), "bytes": path.stat().st_size,
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


def _check_head_sizes(where: str, env: dict) -> None:
    """A fixed-size file: its head sizes must follow from its input size (sides multiples of 32)."""
    height, width = env.get("height"), env.get("width")
    if not (height and width):
        return
    wrong = {}
    if not (height % 32 or width % 32):
        expected = segmenter_output_sizes(height, width)
        wrong = {k: (env[k], v) for k, v in expected.items() if k in env and env[k] != v}
    if wrong or height % 32 or width % 32:
        raise SpecLayoutError(f"{where}: head sizes {wrong} do not follow from a {height}x{width} input")


def _meta_imgsz(meta: dict) -> list[int] | None:
    found = re.findall(r"\d+", meta.get("imgsz", ""))
    return [int(v) for v in found[:2]] if len(found) >= 2 else None
