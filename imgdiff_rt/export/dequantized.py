"""A dequantized-fp32 variant of a registered int8 segmenter (``export --segmenter-onnx F --segmenter-fp32``).

ORT's dynamic-int8 graphs (DynamicQuantizeLinear -> ConvInteger) run on the CPU far below its fp32 peak; the
same weights, rounded to int8 and stored back in fp32 Convs, run on ONNX Runtime's fp32 kernels several times
faster. The variant is checked against the registered graph it comes from, on real photos: output cosine and
the registered graph's detections it reproduces. Precision ``auto`` picks it only when that check passed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from imgdiff_rt.errors import ParityError
from imgdiff_rt.models.specs import ModelSpec

#: the variant passes when every output's cosine with the registered graph is at least this on every photo
MIN_COSINE = 0.99
#: ... and it reproduces at least this share of the registered graph's detections (same class, IoU >= 0.5)
MIN_DETECTION_RECALL = 0.9
#: photos the check runs on (scikit-image's, letterboxed to the graph's size)
CHECK_PHOTOS = 8


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))


def check_against_registered(spec: ModelSpec, registered: Path, variant: Path, imgsz: int,
                             tensor_names: dict[str, str]) -> dict:
    """Both graphs on the same photos; returns the figures with ``ok``; ParityError when a bound is missed."""
    from imgdiff_rt.runtime.int8_tools import benchmark_cpu, detection_agreement
    from imgdiff_rt.runtime.backends.onnx_backend import ort_session
    from imgdiff_rt.export.quantize import segmenter_calibration_feeds

    image = tensor_names[spec.input_names[0]]
    feeds = segmenter_calibration_feeds(imgsz, input_name=image, limit=CHECK_PHOTOS)
    ref, test = ort_session(registered, None), ort_session(variant, None)
    outputs = [tensor_names[n] for n in spec.output_names]
    got = {n: [] for n in spec.output_names}
    want = {n: [] for n in spec.output_names}
    for feed in feeds:
        for spec_name, file_name, a, b in zip(spec.output_names, outputs, ref.run(outputs, feed),
                                              test.run(outputs, feed)):
            want[spec_name].append(a)
            got[spec_name].append(b)
    figures = {n: {"min_cosine": round(min(_cosine(a, b) for a, b in zip(want[n], got[n])), 6),
                   "max_abs": float(max(np.abs(a - b).max() for a, b in zip(want[n], got[n])))}
               for n in spec.output_names}
    preds = spec.output_names[0]
    detections = detection_agreement(np.concatenate(want[preds]), np.concatenate(got[preds]),
                                     int(spec.sizes.get("num_classes", 1)))
    speed = benchmark_cpu([registered, variant], feeds[0], runs=5)
    ok = all(f["min_cosine"] >= MIN_COSINE for f in figures.values()) and \
        detections["recall"] >= MIN_DETECTION_RECALL
    report = {"reference": "the registered int8 graph", "photos": len(feeds), "outputs": figures,
              "detections": detections, "bounds": {"min_cosine": MIN_COSINE, "min_recall": MIN_DETECTION_RECALL},
              "cpu_ms": {"registered": speed[str(registered)], "dequantized": speed[str(variant)]}, "ok": ok}
    if not ok:
        raise ParityError(f"dequantized segmenter misses its bounds against the registered graph: {report}")
    return report
