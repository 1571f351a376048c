"""Segmenter similarity filter: compare each detected region between the left and the registered right image
in the real segmenter's own feature space, and drop the regions whose features agree (a re-shot scene: light
or camera jitter) while keeping those that changed semantically.

The registered segmenter ONNX (YOLOv8-seg) is loaded with the ``onnx`` package and its neck feature maps (the
three maps feeding the detection head, strides 8/16/32) are added as extra graph outputs in memory; the file on
disk is never written. A region's similarity is the cosine of the feature vectors mean-pooled inside its box at
each scale, averaged over the scales.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from imgdiff_rt.errors import ModelError, UsageError
from imgdiff_rt.models.specs import DEFAULT_IMGSZ
from imgdiff_rt.runtime.backends.onnx_backend import ort_session
from imgdiff_rt.runtime.preprocess import Letterbox, letterbox_batch

# regions whose pooled-feature cosine is at least this are dropped: the best trade-off measured over CLEVR-Change,
# synthetic and jitter sets together (docs/detection.md); lower thresholds cost more recall than they save
DEFAULT_FEATURE_THRESHOLD = 0.99
FILTERS = ("clip", "segmenter", "none")
_MODULE = re.compile(r"^/model\.(\d+)/")
_QUANT_OPS = ("DynamicQuantizeLinear", "QuantizeLinear", "DequantizeLinear", "Cast")


def _module_index(node) -> int | None:
    m = _MODULE.match(node.name)
    return int(m.group(1)) if m else None


def neck_feature_names(model) -> list[str]:
    """The float tensors entering the detection head (the last ``/model.N/`` module), walking back through the
    quantisation nodes an int8 export puts in front of the head's convolutions; ordered fine to coarse."""
    nodes = list(model.graph.node)
    producer = {out: n for n in nodes for out in n.output}
    head = max((i for i in map(_module_index, nodes) if i is not None), default=None)
    if head is None:
        raise ModelError("segmenter graph has no /model.N/ nodes: cannot find the detection head's inputs")
    found: list[str] = []
    for node in nodes:
        if _module_index(node) != head:
            continue
        for name in node.input:
            src = producer.get(name)
            while src is not None and src.op_type in _QUANT_OPS and _module_index(src) != head:
                name = src.input[0]
                src = producer.get(name)
            if src is not None and _module_index(src) not in (None, head) and name not in found:
                found.append(name)
    if len(found) != 3:
        raise ModelError(f"expected 3 neck feature maps feeding the segmenter head, found {len(found)}: {found}")
    return sorted(found, key=lambda n: _module_index(producer[n]))


class SegmenterFeatures:
    """An ONNX Runtime session on the segmenter with its neck maps as extra outputs (built in memory)."""

    def __init__(self, onnx_path: str | Path, threads: int | None = None):
        import onnx

        model = onnx.load(str(onnx_path))
        self.feature_names = neck_feature_names(model)
        have = {o.name for o in model.graph.output}
        for name in self.feature_names:
            if name not in have:
                model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
        self.session = ort_session(model.SerializeToString(), threads)
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.imgsz = int(inp.shape[2]) if isinstance(inp.shape[2], int) else DEFAULT_IMGSZ
        self.fixed_batch = inp.shape[0] if isinstance(inp.shape[0], int) else None

    def maps(self, images: Sequence[np.ndarray]) -> tuple[list[list[np.ndarray]], list[Letterbox]]:
        """Per image, the three (C, H, W) neck maps, and its letterbox."""
        batch, boxes = letterbox_batch(images, self.imgsz)
        step = self.fixed_batch or len(images)
        per_image: list[list[np.ndarray]] = []
        for i in range(0, len(images), step):
            outs = self.session.run(self.feature_names, {self.input_name: batch[i:i + step]})
            per_image += [[o[k] for o in outs] for k in range(outs[0].shape[0])]
        return per_image, boxes


def _pooled(feature: np.ndarray, box: Sequence[float], lb: Letterbox, imgsz: int) -> np.ndarray:
    """Mean feature vector inside ``box`` (left-image pixels) on a (C, H, W) map of the letterboxed image."""
    stride = imgsz / feature.shape[-1]
    x0, y0, x1, y1 = (float(v) for v in box)
    gx0, gx1 = (x0 * lb.ratio + lb.left) / stride, (x1 * lb.ratio + lb.left) / stride
    gy0, gy1 = (y0 * lb.ratio + lb.top) / stride, (y1 * lb.ratio + lb.top) / stride
    h, w = feature.shape[-2:]
    c0, c1 = int(np.clip(np.floor(gx0), 0, w - 1)), int(np.clip(np.ceil(gx1), 1, w))
    r0, r1 = int(np.clip(np.floor(gy0), 0, h - 1)), int(np.clip(np.ceil(gy1), 1, h))
    return feature[:, r0:max(r1, r0 + 1), c0:max(c1, c0 + 1)].reshape(feature.shape[0], -1).mean(axis=1)


def region_similarities(left_maps: list[np.ndarray], right_maps: list[np.ndarray], boxes: Sequence,
                        letterbox: Letterbox, imgsz: int) -> np.ndarray:
    """Per box: the cosine of the pooled left and right feature vectors, averaged over the scales."""
    out = np.ones(len(boxes), np.float32)
    for i, box in enumerate(boxes):
        cosines = []
        for fl, fr in zip(left_maps, right_maps):
            a, b = _pooled(fl, box, letterbox, imgsz), _pooled(fr, box, letterbox, imgsz)
            cosines.append(float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12)))
        out[i] = float(np.mean(cosines))
    return out


@dataclass(frozen=True)
class FeatureFilterResult:
    kept: list[int]
    similarities: np.ndarray


def filter_boxes(features: SegmenterFeatures, left: np.ndarray, right: np.ndarray, boxes: Sequence,
                 threshold: float = DEFAULT_FEATURE_THRESHOLD) -> FeatureFilterResult:
    """Indices of the boxes whose features differ (similarity < threshold), and every box's similarity."""
    if not len(boxes):
        return FeatureFilterResult([], np.zeros(0, np.float32))
    (left_maps, right_maps), (lb, _) = features.maps([left, right])
    sims = region_similarities(left_maps, right_maps, boxes, lb, features.imgsz)
    return FeatureFilterResult([i for i in range(len(boxes)) if sims[i] < threshold], sims)


def registered_segmenter_path(bundle_dir: str | Path | None) -> Path:
    """The registered real segmenter ONNX of the bundle, or a UsageError naming the fix."""
    from imgdiff_rt.errors import BundleNotFoundError
    from imgdiff_rt.models.bundle import Bundle

    fix = "register one with `imgdiff-rt export --segmenter-onnx PATH` and pass that bundle as models"
    try:
        bundle = Bundle.load(bundle_dir) if bundle_dir is not None else None
    except BundleNotFoundError:  # a manifest that is there but broken or hostile is reported, not ignored
        bundle = None
    if bundle is None or not bundle.is_registered("segmenter"):
        raise UsageError(f"filter 'segmenter' needs a bundle with a registered segmenter ONNX (none at "
                         f"{bundle_dir}): {fix}", parameter="filter")
    precision = bundle.precision_for("segmenter", "fp32")
    return bundle.path("segmenter", "onnx", precision)


def apply_filter(regions: Sequence, features: SegmenterFeatures, left: np.ndarray, right: np.ndarray,
                 threshold: float) -> tuple[list, dict]:
    """The regions the segmenter features find changed (renumbered 1..n, ``similarity`` set), and the facts the
    result's settings record (threshold, every region's similarity, the dropped boxes)."""
    from dataclasses import replace

    done = filter_boxes(features, left, right, [r.bbox for r in regions], threshold)
    kept = [replace(regions[i], id=k + 1, similarity=round(float(done.similarities[i]), 6))
            for k, i in enumerate(done.kept)]
    facts = {"threshold": threshold, "similarity": "cosine of neck features pooled in the box, mean of 3 scales",
             "dropped": [{"bbox": list(regions[i].bbox), "similarity": round(float(done.similarities[i]), 4)}
                         for i in range(len(regions)) if i not in done.kept]}
    return kept, facts
