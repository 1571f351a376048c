"""int8 ONNX for CPU edge devices, and the helpers that measure what it costs.

Two recipes, chosen by measurements on a 2-core x86 CPU with ONNX Runtime (docs/int8-and-tensorrt.md):

* transformer encoders (CLIP, BLIP vision): ``quantize_dynamic`` on MatMul/Gemm only (no calibration);
* the convolutional segmenter: ``quantize_static_qdq`` (QDQ, per-channel weights, calibrated on real photos).
  Dynamic ConvInteger quantisation is 5-8x *slower* than fp32 on such CPUs, so ``quantize_dynamic`` refuses
  Conv. The segmenter's box-decoding tail (DFL softmax, anchor arithmetic, the concat of pixel boxes with
  0..1 scores) stays fp32: one uint8 scale across pixels and probabilities wipes out the scores.

``dequantize_conv_integer`` rebuilds fp32 from an ORT dynamic-int8 conv graph (e.g. the shared
yolov8n-seg-int8.onnx), so a foreign ConvInteger segmenter can be re-quantised to fast static QDQ.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from ..errors import QuantizationError, UsageError

#: Colour photos inside scikit-image's wheel (no download): the default segmenter calibration set.
SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
#: Grey photos from the same wheel, used as RGB to widen the calibration set.
SKIMAGE_GREY_PHOTOS = ("camera", "coins", "moon", "clock", "grass", "gravel", "brick")


# ---- calibration feeds --------------------------------------------------------------------------
def letterbox(image: np.ndarray, imgsz: int) -> np.ndarray:
    """RGB (H, W, 3) or grey (H, W) -> float32 (3, imgsz, imgsz) in 0..1: exactly the runtime's letterbox, so
    calibration sees the inputs the quantised graph will get."""
    from ..runtime.preprocess import letterbox as runtime_letterbox

    return runtime_letterbox(image, imgsz)[0]


def sample_photos(grey: bool = True) -> list[np.ndarray]:
    """scikit-image's bundled photos (colour first, then grey ones when ``grey``)."""
    import skimage.data

    names = SKIMAGE_PHOTOS + (SKIMAGE_GREY_PHOTOS if grey else ())
    return [getattr(skimage.data, name)() for name in names]


def _read_rgb(path: Path) -> np.ndarray:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise UsageError(f"calibration image {path} cannot be read")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def segmenter_calibration_feeds(imgsz: int, images: Iterable[np.ndarray] | None = None, *,
                                paths: Iterable[str | Path] = (), input_name: str | None = None,
                                limit: int | None = None) -> list[dict[str, np.ndarray]]:
    """Segmenter calibration feeds: real photos letterboxed to imgsz, RGB 0..1, one image per feed.

    ``images`` defaults to scikit-image's photos; ``paths`` adds image files or folders (e.g. levir-cd A/B).
    """
    from ..models.specs import get_spec

    name = input_name or get_spec("segmenter").input_names[0]
    pictures = list(sample_photos() if images is None else images)
    for p in paths:
        p = Path(p)
        files = [p] if not p.is_dir() else sorted(
            f for f in p.rglob("*") if f.suffix.lower() in {".png", ".jpg", ".jpeg"})
        pictures.extend(_read_rgb(f) for f in files)
    pictures = pictures[:limit] if limit else pictures
    if not pictures:
        raise QuantizationError("no calibration images: pass photos or image paths")
    return [{name: letterbox(pic, imgsz)[None]} for pic in pictures]


# ---- quantisation -------------------------------------------------------------------------------
def _op_counts(path: str | Path) -> dict[str, int]:
    import onnx

    counts: dict[str, int] = {}
    for node in onnx.load(str(path), load_external_data=False).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def _summary(src: Path, dst: Path, kind: str, seconds: float, **extra) -> dict:
    ops = _op_counts(dst)
    return {"kind": kind, "src": str(src), "path": str(dst), "bytes_fp32": src.stat().st_size,
            "bytes": dst.stat().st_size, "seconds": round(seconds, 2),
            "quantized_ops": {k: v for k, v in ops.items()
                              if "Integer" in k or "Quant" in k or k.startswith("QLinear")},
            **extra}


def quantize_dynamic(src_onnx: str | Path, dst_onnx: str | Path, *,
                     op_types: Sequence[str] = ("MatMul", "Gemm"), per_channel: bool = False) -> dict:
    """Dynamic int8 (weights int8, activations quantised at run time) for transformer encoders.

    Conv is refused: ORT's ConvInteger path measured 5-8x slower than fp32 on CPU; use quantize_static_qdq.
    """
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization import quantize_dynamic as ort_quantize_dynamic

    if {"Conv", "ConvTranspose"} & set(op_types):
        raise UsageError("dynamic int8 Conv (ConvInteger) is slower than fp32 on CPU; "
                         "quantise convolutional graphs with quantize_static_qdq and calibration images")
    src, dst = Path(src_onnx), Path(dst_onnx)
    started = time.perf_counter()
    try:
        ort_quantize_dynamic(str(src), str(dst), op_types_to_quantize=list(op_types), per_channel=per_channel,
                             weight_type=QuantType.QInt8)
    except Exception as exc:
        raise QuantizationError(f"dynamic quantisation of {src} failed: {exc}") from exc
    return _summary(src, dst, "dynamic-int8", time.perf_counter() - started, op_types=list(op_types),
                    per_channel=per_channel)


def decode_tail_nodes(model, output_name: str, *, include_head_convs: bool = False) -> list[str]:
    """Nodes between the learned head convs and ``output_name`` (YOLO box decoding), to keep in fp32.

    Walks back from the output; stops at every learned Conv (all but the DFL's fixed 0..15 weighted sum, the
    Conv fed by a Softmax, which belongs to the tail) and does not follow Shape inputs.
    ``include_head_convs`` adds those last learned convs (box/class/mask-coefficient 1x1 convs) too.
    """
    producer = {out: node for node in model.graph.node for out in node.output}
    tail, stack, seen = [], [output_name], set()
    while stack:
        tensor = stack.pop()
        if tensor in seen or tensor not in producer:
            continue
        seen.add(tensor)
        node = producer[tensor]
        if node.op_type == "Conv":
            feeder = producer.get(node.input[0])
            if feeder is None or feeder.op_type != "Softmax":  # the DFL conv follows a Softmax; others learn
                if include_head_convs:
                    tail.append(node.name)
                continue
        tail.append(node.name)
        if node.op_type != "Shape":
            stack.extend(i for i in node.input if i)
    return tail


class _FeedReader:
    """ORT CalibrationDataReader over a materialised list of feeds (created lazily to import ORT late)."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]):
        self._iter = iter(feeds)

    def get_next(self):
        return next(self._iter, None)


def quantize_static_qdq(src_onnx: str | Path, dst_onnx: str | Path,
                        calibration_feeds: Iterable[Mapping[str, np.ndarray]], *, per_channel: bool = True,
                        keep_decode_fp32: str | None = "auto", head_convs_fp32: bool = False,
                        op_types: Sequence[str] | None = None, method: str = "minmax") -> dict:
    """Static int8 in QDQ format (U8 activations, S8 weights), calibrated on ``calibration_feeds``.

    ``keep_decode_fp32``: an output name whose decoding tail stays fp32, "auto" (the first output when the
    graph is a segmenter: a rank-3 first output) or None; ``head_convs_fp32`` also keeps the head's last
    learned convs fp32 (cheap: few output channels). ``method``: "minmax", "entropy" or "percentile".
    """
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType
    from onnxruntime.quantization import quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    feeds = [dict(f) for f in calibration_feeds]
    if not feeds:
        raise QuantizationError("static quantisation needs at least one calibration feed")
    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    if method not in methods:
        raise UsageError(f"calibration method {method!r}: one of {', '.join(methods)}")
    src, dst = Path(src_onnx), Path(dst_onnx)
    started = time.perf_counter()
    reader = type("FeedReader", (_FeedReader, CalibrationDataReader), {})(feeds)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        try:
            # symbolic shape inference cannot follow the head's dynamic anchor arithmetic; ONNX's can
            quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
            model = onnx.load(str(prepared))
            tail_output = keep_decode_fp32
            if tail_output == "auto":
                first = model.graph.output[0]
                tail_output = first.name if len(first.type.tensor_type.shape.dim) == 3 else None
            excluded = (decode_tail_nodes(model, tail_output, include_head_convs=head_convs_fp32)
                        if tail_output else [])
            quantize_static(str(prepared), str(dst), reader, quant_format=QuantFormat.QDQ,
                            per_channel=per_channel, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8,
                            op_types_to_quantize=list(op_types) if op_types else None,
                            nodes_to_exclude=excluded, calibrate_method=methods[method])
        except QuantizationError:
            raise
        except Exception as exc:
            raise QuantizationError(f"static QDQ quantisation of {src} failed: {exc}") from exc
    return _summary(src, dst, "static-qdq-int8", time.perf_counter() - started, per_channel=per_channel,
                    calibration_feeds=len(feeds), method=method, fp32_nodes_kept=len(excluded))


# ---- rebuilding fp32 from an ORT dynamic-int8 conv graph -----------------------------------------
def dequantize_conv_integer(src_onnx: str | Path, dst_onnx: str | Path) -> dict:
    """Replace each ORT ``DynamicQuantizeLinear -> ConvInteger -> Cast -> Mul(scale) [-> Add(bias)]`` chain
    by an fp32 Conv with weight ``(w_q - w_zp) * w_scale``; the int8 rounding of the weights is kept."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(src_onnx))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)

    def array(name):
        if name not in inits:
            raise QuantizationError(f"{name} is not a constant: not an ORT dynamic-int8 conv graph")
        return numpy_helper.to_array(inits[name])

    def only_consumer(tensor, op_type):
        found = consumers.get(tensor, [])
        return found[0] if len(found) == 1 and found[0].op_type == op_type else None

    drop, new_convs = set(), []
    for conv in [n for n in graph.node if n.op_type == "ConvInteger"]:
        quant = producer.get(conv.input[0])
        cast = only_consumer(conv.output[0], "Cast")
        scaled = cast and only_consumer(cast.output[0], "Mul")
        scales = scaled and producer.get(scaled.input[1])
        if (quant is None or quant.op_type != "DynamicQuantizeLinear" or scales is None
                or scales.op_type != "Mul"):
            raise QuantizationError(f"{conv.name}: not the ORT dynamic-int8 pattern")
        w_q = array(conv.input[1]).astype(np.float32)
        w_zp = array(conv.input[3]).astype(np.float32) if len(conv.input) > 3 and conv.input[3] else 0.0
        w_scale = array(scales.input[1]).astype(np.float32)
        shape = (-1,) + (1,) * (w_q.ndim - 1)
        per_channel = lambda v: np.reshape(v, shape if np.ndim(v) else ())  # noqa: E731
        weight = (w_q - per_channel(w_zp)) * per_channel(w_scale)
        inputs = [quant.input[0], conv.name + "_fp32_weight"]
        output, chain = scaled.output[0], [conv, cast, scaled, scales]
        add = only_consumer(scaled.output[0], "Add")
        bias_reshape = add and producer.get(add.input[1])
        if bias_reshape is not None and bias_reshape.op_type == "Reshape" and bias_reshape.input[0] in inits:
            inputs.append(conv.name + "_fp32_bias")
            bias = array(bias_reshape.input[0]).astype(np.float32)
            graph.initializer.append(numpy_helper.from_array(bias, inputs[2]))
            output, chain = add.output[0], chain + [add, bias_reshape]
        graph.initializer.append(numpy_helper.from_array(weight.astype(np.float32), inputs[1]))
        attrs = {a.name: helper.get_attribute_value(a) for a in conv.attribute}
        fp32_conv = helper.make_node("Conv", inputs, [output], name=conv.name.replace("_quant", ""), **attrs)
        new_convs.append((conv, fp32_conv))
        drop.update(id(n) for n in chain)
    if not new_convs:
        raise QuantizationError(f"{src_onnx} has no ConvInteger nodes to rebuild")
    replacement = {id(old): new for old, new in new_convs}
    kept = [replacement.get(id(n), n) for n in graph.node if id(n) not in drop or id(n) in replacement]
    del graph.node[:]
    graph.node.extend(kept)
    _drop_dead_nodes(graph)
    onnx.checker.check_model(model)
    onnx.save(model, str(dst_onnx))
    return {"path": str(dst_onnx), "convs_rebuilt": len(new_convs), "op_counts": _op_counts(dst_onnx)}


def _drop_dead_nodes(graph) -> None:
    """Remove nodes (and initializers) nothing consumes, repeatedly."""
    outputs = {o.name for o in graph.output}
    while True:
        used = {i for n in graph.node for i in n.input} | outputs
        dead = [n for n in graph.node if not any(o in used for o in n.output)]
        if not dead:
            break
        for n in dead:
            graph.node.remove(n)
    used = {i for n in graph.node for i in n.input}
    for init in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(init)


# ---- accuracy cost and speed --------------------------------------------------------------------
def cosine_similarity(reference: np.ndarray, test: np.ndarray) -> np.ndarray:
    """Cosine per batch row of the flattened tensors (the embedding accuracy cost of int8)."""
    a = np.asarray(reference, np.float64).reshape(len(reference), -1)
    b = np.asarray(test, np.float64).reshape(len(test), -1)
    denom = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (a * b).sum(axis=1) / np.maximum(denom, 1e-12)


def output_error(reference: np.ndarray, test: np.ndarray) -> dict:
    """max/mean absolute error and the lowest per-row cosine of ``test`` against ``reference``."""
    diff = np.abs(np.asarray(test, np.float64) - np.asarray(reference, np.float64))
    return {"max_abs": float(diff.max()), "mean_abs": float(diff.mean()),
            "min_cosine": float(cosine_similarity(reference, test).min())}


def cpu_session(path: str | Path, threads: int | None = None, optimization: str = "all"):
    """An ONNX Runtime CPU session; ``optimization``: "basic", "extended" or "all" (int8 QDQ needs >= extended
    to fuse Q/DQ pairs into integer kernels)."""
    import onnxruntime as ort

    levels = {"basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
              "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
              "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
    options = ort.SessionOptions()
    options.graph_optimization_level = levels[optimization]
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def compare_outputs(reference_onnx: str | Path, test_onnx: str | Path,
                    feeds: Iterable[Mapping[str, np.ndarray]]) -> dict[str, dict]:
    """Per output: worst max/mean abs error and lowest cosine of ``test_onnx`` vs ``reference_onnx``."""
    ref, test = cpu_session(reference_onnx), cpu_session(test_onnx)
    report: dict[str, dict] = {}
    for feed in feeds:
        names = [o.name for o in ref.get_outputs()]
        for name, a, b in zip(names, ref.run(None, dict(feed)), test.run(None, dict(feed))):
            row, err = report.setdefault(name, {}), output_error(a, b)
            row["max_abs"] = max(row.get("max_abs", 0.0), err["max_abs"])
            row["mean_abs"] = max(row.get("mean_abs", 0.0), err["mean_abs"])
            row["min_cosine"] = min(row.get("min_cosine", 1.0), err["min_cosine"])
    return report


def benchmark_cpu(paths: Sequence[str | Path], feed: Mapping[str, np.ndarray], *, runs: int = 9,
                  threads: int | None = None, optimization: str = "all") -> dict[str, float]:
    """Median latency (ms) of each graph on the same feed, in this process, runs interleaved round-robin so
    background load hits every graph alike."""
    sessions = {str(p): cpu_session(p, threads, optimization) for p in paths}
    for session in sessions.values():
        session.run(None, dict(feed))  # warm-up: first run allocates and picks kernels
    times: dict[str, list[float]] = {p: [] for p in sessions}
    for _ in range(runs):
        for path, session in sessions.items():
            started = time.perf_counter()
            session.run(None, dict(feed))
            times[path].append((time.perf_counter() - started) * 1000.0)
    return {p: round(float(np.median(t)), 2) for p, t in times.items()}


def top_detections(preds: np.ndarray, num_classes: int, conf: float = 0.25, iou: float = 0.5) -> list:
    """[(class, score, box_xyxy)] after per-class NMS, from one image's ``preds`` (4 + nc + 32, anchors)."""
    scores = preds[4:4 + num_classes]
    cls, best = scores.argmax(0), scores.max(0)
    keep = np.nonzero(best >= conf)[0]
    cx, cy, w, h = preds[:4, keep]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
    order = np.argsort(-best[keep])
    chosen: list = []
    for i in order:
        c, box = int(cls[keep[i]]), boxes[i]
        if all(c != k or _iou(box, b) < iou for k, _, b in chosen):
            chosen.append((c, float(best[keep[i]]), box))
    return chosen


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = np.prod(np.clip(np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]), 0, None))
    union = np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2]) - inter
    return float(inter / union) if union > 0 else 0.0


def detection_agreement(reference_preds: np.ndarray, test_preds: np.ndarray, num_classes: int,
                        conf: float = 0.25, iou: float = 0.5) -> dict:
    """Reference detections (per image, after NMS) the test graph reproduces: same class, IoU >= iou."""
    matched = total = extra = 0
    for ref, test in zip(reference_preds, test_preds):
        want, got = top_detections(ref, num_classes, conf), top_detections(test, num_classes, conf)
        total += len(want)
        hits = sum(any(c == k and _iou(b, gb) >= iou for k, _, gb in got) for c, _, b in want)
        matched += hits
        extra += max(0, len(got) - hits)
    return {"reference_detections": total, "matched": matched, "unmatched_test_detections": extra,
            "recall": round(matched / total, 4) if total else 1.0}
