"""Scoring detections against ground truth.

A predicted box matches a truth item when their IoU >= 0.1 or the truth item's centre lies inside the predicted
box; matching is one-to-one (Hungarian assignment maximising IoU among allowed pairs). Precision, recall and F1
are pooled over all pairs (micro-averaged).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from .errors import TruthError
from .imageio import read_image

MATCH_IOU = 0.1
MASK_MIN_AREA = 16  # change-mask components smaller than this are label noise, not truth items

Box = tuple[int, int, int, int]


def iou(a: Box, b: Box) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _centre_inside(truth: Box, pred: Box) -> bool:
    cx, cy = (truth[0] + truth[2]) / 2, (truth[1] + truth[3]) / 2
    return pred[0] <= cx <= pred[2] and pred[1] <= cy <= pred[3]


def match(preds: list[Box], truths: list[Box]) -> list[tuple[int, int, float]]:
    """One-to-one matches as (pred index, truth index, IoU)."""
    if not preds or not truths:
        return []
    ious = np.array([[iou(p, t) for t in truths] for p in preds])
    allowed = np.array([[ious[i, j] >= MATCH_IOU or _centre_inside(t, p) for j, t in enumerate(truths)]
                        for i, p in enumerate(preds)])
    # Allowed pairs always beat forbidden ones; among allowed, higher IoU wins.
    gain = np.where(allowed, 1.0 + ious, 0.0)
    rows, cols = linear_sum_assignment(-gain)
    return [(int(i), int(j), float(ious[i, j])) for i, j in zip(rows, cols) if allowed[i, j]]


def truth_boxes_from_mask(mask: np.ndarray) -> list[Box]:
    binary = (mask > 0).astype(np.uint8)
    n, _, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    return [(int(s[0]), int(s[1]), int(s[0] + s[2]), int(s[1] + s[3]))
            for s in stats[1:] if s[cv2.CC_STAT_AREA] >= MASK_MIN_AREA]


def load_truth(path: str | Path, size: tuple[int, int] | None = None) -> list[Box]:
    """Truth boxes from a truth.json (``changes`` with ``bbox``, or a plain list of boxes) or a mask image."""
    p = Path(path)
    if not p.is_file():
        raise TruthError(f"{p}: truth file not found")
    if p.suffix.lower() == ".json":
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
            items = data["changes"] if isinstance(data, dict) else data
            boxes = [tuple(int(v) for v in (it["bbox"] if isinstance(it, dict) else it)) for it in items]
        except (ValueError, KeyError, TypeError) as e:
            raise TruthError(f"{p}: not a truth file with 'changes' boxes ({e})") from None
        if any(len(b) != 4 or b[2] <= b[0] or b[3] <= b[1] for b in boxes):
            raise TruthError(f"{p}: every bbox must be [x0, y0, x1, y1] with x1 > x0 and y1 > y0")
        return boxes  # type: ignore[return-value]
    mask = read_image(p)[:, :, 0]
    if size is not None and (mask.shape[1], mask.shape[0]) != tuple(size):
        mask = cv2.resize(mask, tuple(size), interpolation=cv2.INTER_NEAREST)
    return truth_boxes_from_mask(mask)


@dataclass
class Tally:
    """Pooled counts over many pairs."""

    true_positives: int = 0
    predictions: int = 0
    truths: int = 0
    match_ious: list[float] = field(default_factory=list)
    times_ms: list[float] = field(default_factory=list)

    def add(self, preds: list[Box], truths: list[Box], time_ms: float | None = None) -> list:
        matches = match(preds, truths)
        self.true_positives += len(matches)
        self.predictions += len(preds)
        self.truths += len(truths)
        self.match_ious.extend(m[2] for m in matches)
        if time_ms is not None:
            self.times_ms.append(time_ms)
        return matches

    @property
    def precision(self) -> float:
        return self.true_positives / self.predictions if self.predictions else 1.0

    @property
    def recall(self) -> float:
        return self.true_positives / self.truths if self.truths else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def summary(self) -> dict:
        return {
            "precision": round(self.precision, 4), "recall": round(self.recall, 4), "f1": round(self.f1, 4),
            "mean_iou": round(float(np.mean(self.match_ious)), 4) if self.match_ious else None,
            "median_ms": round(float(np.median(self.times_ms)), 2) if self.times_ms else None,
            "true_positives": self.true_positives, "predictions": self.predictions, "truths": self.truths,
            "pairs": len(self.times_ms),
        }
