"""int8 ONNX for CPU edge devices, and the helpers that measure what it costs.

Two recipes, chosen by measurements on a 2-core x86 CPU with ONNX Runtime (docs/int8-and-tensorrt.md):

* transformer encoders (CLIP, BLIP vision): ``quantize_dynamic`` on MatMul/Gemm only (no calibration);
* the convolutional segmenter: ``quantize_static_qdq`` (QDQ, per-channel weights, calibrated on real photos).
  Dynamic ConvInteger quantisation is 5-8x *slower* than fp32 on such CPUs, so ``quantize_dynamic`` refuses
  Conv. The segmenter's box-decoding tail (DFL softmax, anchor arithmetic, the concat of pixel boxes with
  0..1 scores) stays fp32: one uint8 scale across pixels and probabilities wipes out the scores.

The accuracy cost is measured by ``checks.int8_accuracy``; the int8 study's tools (fp32 rebuild of an ORT
ConvInteger graph, interleaved CPU timing, detection agreement) are in ``runtime/int8_tools.py``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from imgdiff_rt.errors import QuantizationError, UsageError
from imgdiff_rt.models.onnx_file import op_counts

#: Colour photos inside scikit-image's wheel (no download): the default segmenter calibration set.
SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
#: Grey photos from the same wheel, used as RGB to widen the calibration set.
SKIMAGE_GREY_PHOTOS = ("camera", "coins", "moon", "clock", "grass", "gravel", "brick")


# ---- calibration feeds --------------------------------------------------------------------------
def letterbox(image: np.ndarray, imgsz: int) -> np.ndarray:
    """RGB (H, W, 3) or grey (H, W) -> float32 (3, imgsz, imgsz) in 0..1: exactly the runtime's letterbox, so
    calibration sees the inputs the quantised graph will get."""
    from imgdiff_rt.runtime.preprocess import letterbox as runtime_letterbox

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
    from imgdiff_rt.models.specs import get_spec

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
def _summary(src: Path, dst: Path, kind: str, seconds: float, **extra) -> dict:
    ops = op_counts(dst)
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
