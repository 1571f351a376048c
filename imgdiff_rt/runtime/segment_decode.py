"""Segmenter outputs -> boxes, scores, classes and masks, in NumPy/OpenCV (no NMS in the graph).

``preds`` rows per anchor: cx, cy, w, h (input pixels), ``num_classes`` sigmoid scores, 32 mask
coefficients; ``protos``: (32, H/4, W/4). Masks are sigmoid(coefficients x prototypes), cropped to the box
and resized to the original image, as Ultralytics' ``process_mask`` does. Img-Diff's FastSAM settings are the
defaults: confidence 0.05, IoU 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from imgdiff_rt.runtime.preprocess import Letterbox

DEFAULT_CONF = 0.05  # Img-Diff's FastSAM confidence
DEFAULT_IOU = 0.5  # Img-Diff's FastSAM NMS IoU
MAX_CANDIDATES = 30000  # boxes entering NMS at most (the highest scores), as Ultralytics caps them
MAX_DETECTIONS = 300


@dataclass(frozen=True)
class Segments:
    """One image's detections; boxes are xyxy float32 in original-image pixels."""

    boxes: np.ndarray  # (N, 4)
    scores: np.ndarray  # (N,)
    classes: np.ndarray  # (N,) int
    masks: np.ndarray | None = None  # (N, H, W) bool in the original image, when asked for

    def __len__(self) -> int:
        return len(self.boxes)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 4) x (M, 4) xyxy -> (N, M) IoU."""
    a, b = np.asarray(a, np.float32).reshape(-1, 4), np.asarray(b, np.float32).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Greedy NMS; indices kept, best score first."""
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        if order.size == 1:
            break
        overlaps = box_iou(boxes[i:i + 1], boxes[order[1:]])[0]
        order = order[1:][overlaps <= iou]
    return np.asarray(keep, np.int64)


def _xywh_to_xyxy(xywh: np.ndarray) -> np.ndarray:
    cx, cy, w, h = xywh.T
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)


def decode_image(preds: np.ndarray, protos: np.ndarray, num_classes: int, letterbox: Letterbox, *,
                 conf: float = DEFAULT_CONF, iou: float = DEFAULT_IOU, max_det: int = MAX_DETECTIONS,
                 agnostic: bool = False, with_masks: bool = False) -> Segments:
    """One image: ``preds`` (4 + nc + 32, anchors), ``protos`` (32, ph, pw) -> Segments in original pixels.

    ``agnostic``: one NMS over all classes (FastSAM has a single class anyway); otherwise per class.
    """
    preds = np.asarray(preds, np.float32)
    scores_all = preds[4:4 + num_classes]
    classes = scores_all.argmax(0)
    scores = scores_all.max(0)
    idx = np.nonzero(scores > conf)[0]
    if idx.size > MAX_CANDIDATES:
        idx = idx[np.argsort(-scores[idx], kind="stable")[:MAX_CANDIDATES]]
    boxes = _xywh_to_xyxy(preds[:4, idx].T)
    scores, classes = scores[idx], classes[idx]
    # per-class NMS in one pass: shift each class's boxes far apart so they never overlap
    shift = 0.0 if agnostic or num_classes == 1 else float(max(protos.shape[-2:]) * 4 + 1)
    keep = nms(boxes + (classes[:, None] * shift), scores, iou)[:max_det]
    boxes_in, coeffs = boxes[keep], preds[4 + num_classes:, idx[keep]].T
    out_boxes = letterbox.boxes_to_original(boxes_in)
    masks = process_masks(protos, coeffs, boxes_in, letterbox) if with_masks else None
    return Segments(out_boxes, scores[keep].astype(np.float32), classes[keep].astype(np.int64), masks)


def decode_batch(preds: np.ndarray, protos: np.ndarray, num_classes: int, letterboxes: list[Letterbox],
                 **kwargs) -> list[Segments]:
    """Every image of a batch (Img-Diff: the left and right image segmented together)."""
    return [decode_image(p, q, num_classes, lb, **kwargs) for p, q, lb in zip(preds, protos, letterboxes)]


def process_masks(protos: np.ndarray, coeffs: np.ndarray, boxes_in: np.ndarray, letterbox: Letterbox,
                  threshold: float = 0.5) -> np.ndarray:
    """(N, 32) coefficients x (32, ph, pw) prototypes -> (N, H, W) bool masks in the original image."""
    c, ph, pw = protos.shape
    n = len(coeffs)
    if n == 0:
        return np.zeros((0, letterbox.height, letterbox.width), bool)
    logits = (coeffs.astype(np.float32) @ protos.reshape(c, -1).astype(np.float32)).reshape(n, ph, pw)
    probs = 1.0 / (1.0 + np.exp(-logits))
    # the letterboxed input is 4x the prototype grid; crop each mask to its own box there
    scale = 4.0
    ys, xs = np.arange(ph)[None, :, None], np.arange(pw)[None, None, :]
    b = boxes_in[:, :, None, None] / scale
    inside = (xs >= b[:, 0]) & (xs < b[:, 2]) & (ys >= b[:, 1]) & (ys < b[:, 3])
    probs = np.where(inside, probs, 0.0).astype(np.float32)
    # drop the letterbox padding, then resize to the original image
    lb = letterbox
    x0, y0 = int(lb.left / scale), int(lb.top / scale)
    x1 = int(round((lb.left + lb.width * lb.ratio) / scale))
    y1 = int(round((lb.top + lb.height * lb.ratio) / scale))
    out = np.empty((n, lb.height, lb.width), bool)
    for i in range(n):
        crop = probs[i, y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)]
        out[i] = cv2.resize(crop, (lb.width, lb.height), interpolation=cv2.INTER_LINEAR) > threshold
    return out
