"""Scoring detections against ground truth.

A predicted box matches a truth item when their IoU >= 0.1 or the truth item's centre lies inside the predicted
box; matching is one-to-one (Hungarian assignment maximising IoU among allowed pairs). Precision, recall and F1
are pooled over all pairs (micro-averaged).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from imgdiff_rt.errors import TruthError
from imgdiff_rt.files import loads_json, read_text_file
from imgdiff_rt.imageio import read_image

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


def match(preds: list[Box], truths: list[Box], allow_centre: bool = True) -> list[tuple[int, int, float]]:
    """One-to-one matches as (pred index, truth index, IoU). ``allow_centre=False``: IoU >= 0.1 only."""
    if not preds or not truths:
        return []
    ious = np.array([[iou(p, t) for t in truths] for p in preds])
    allowed = np.array([[ious[i, j] >= MATCH_IOU or (allow_centre and _centre_inside(t, p))
                         for j, t in enumerate(truths)] for i, p in enumerate(preds)])
    # Allowed pairs always beat forbidden ones; among allowed, higher IoU wins.
    gain = np.where(allowed, 1.0 + ious, 0.0)
    from scipy.optimize import linear_sum_assignment  # here: importing scipy.optimize costs more than a whole `imgdiff-rt run`

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
        return [tuple(c["bbox"]) for c in load_truth_changes(p)]  # type: ignore[misc]
    mask = read_image(p)[:, :, 0]
    if size is not None and (mask.shape[1], mask.shape[0]) != tuple(size):
        mask = cv2.resize(mask, tuple(size), interpolation=cv2.INTER_NEAREST)
    return truth_boxes_from_mask(mask)


def load_truth_changes(path: str | Path) -> list[dict]:
    """The changes of a truth.json as dicts, each with its ``bbox`` and whatever labels it carries (``kind``,
    ``colour_left``, ``colour_right``: scored by words.scoring)."""
    p = Path(path)
    try:
        data = loads_json(read_text_file(p, TruthError))
        items = data["changes"] if isinstance(data, dict) else data
        changes = [dict(it) if isinstance(it, dict) else {"bbox": it} for it in items]
        for change in changes:
            change["bbox"] = [int(v) for v in change["bbox"]]
    except (ValueError, KeyError, TypeError) as e:
        raise TruthError(f"{p}: not a truth file with 'changes' boxes ({e})") from None
    if any(len(c["bbox"]) != 4 or c["bbox"][2] <= c["bbox"][0] or c["bbox"][3] <= c["bbox"][1] for c in changes):
        raise TruthError(f"{p}: every bbox must be [x0, y0, x1, y1] with x1 > x0 and y1 > y0")
    return changes


@dataclass
class Tally:
    """Pooled counts over many pairs."""

    true_positives: int = 0
    predictions: int = 0
    truths: int = 0
    match_ious: list[float] = field(default_factory=list)
    times_ms: list[float] = field(default_factory=list)
    allow_centre: bool = True  # False: a match needs IoU >= 0.1 (the change-detection papers' rule)

    def add(self, preds: list[Box], truths: list[Box], time_ms: float | None = None) -> list:
        matches = match(preds, truths, self.allow_centre)
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


def load_truth_mask(path: str | Path, size: tuple[int, int]) -> np.ndarray | None:
    """The boolean change mask of a mask-image truth file at ``size`` (w, h); None for a truth.json."""
    p = Path(path)
    if p.suffix.lower() == ".json":
        return None
    mask = read_image(p)[:, :, 0]
    if (mask.shape[1], mask.shape[0]) != tuple(size):
        mask = cv2.resize(mask, tuple(size), interpolation=cv2.INTER_NEAREST)
    return mask > 127


def _ratios(tp: int, fp: int, fn: int) -> dict:
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    iou_ = tp / (tp + fp + fn) if tp + fp + fn else 1.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
            "iou": round(iou_, 4)}


@dataclass
class PixelTally:
    """Pixel-level change-detection scores (as change-detection papers report them): precision, recall, F1 and
    IoU of the predicted change mask against the truth mask, pooled over all pixels of all pairs, and per pair."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    per_image: list[dict] = field(default_factory=list)

    def add(self, predicted: np.ndarray, truth: np.ndarray) -> dict:
        if predicted.shape != truth.shape:
            raise TruthError(f"change mask {predicted.shape} and truth mask {truth.shape} differ in size")
        p, t = predicted.astype(bool), truth.astype(bool)
        return self.add_counts(int((p & t).sum()), int((p & ~t).sum()), int((~p & t).sum()))

    def add_counts(self, tp: int, fp: int, fn: int) -> dict:
        self.tp, self.fp, self.fn = self.tp + tp, self.fp + fp, self.fn + fn
        scores = _ratios(tp, fp, fn)
        self.per_image.append(scores)
        return scores

    def summary(self) -> dict:
        per = {k: round(float(np.mean([s[k] for s in self.per_image])), 4) if self.per_image else None
               for k in ("precision", "recall", "f1", "iou")}
        return {**_ratios(self.tp, self.fp, self.fn), "mean_per_image": per, "pairs": len(self.per_image)}


def pixel_record(predicted: np.ndarray | None, truth_path: str | Path | None,
                 size: tuple[int, int]) -> dict | None:
    """Pixel counts of one pair for an eval record (None unless the truth is a mask image): a resumed batch
    re-tallies them without re-running the pair."""
    if truth_path is None:
        return None
    truth = load_truth_mask(truth_path, size)
    if truth is None:
        return None
    if predicted is None:
        predicted = np.zeros(truth.shape, bool)
    p = predicted.astype(bool)
    return {"tp": int((p & truth).sum()), "fp": int((p & ~truth).sum()), "fn": int((~p & truth).sum())}


def pixel_tally_records(records: list) -> PixelTally | None:
    """Pixel-level scores pooled over eval records that carry ``pixels`` counts; None when none do."""
    tally = PixelTally()
    for rec in records:
        counts = rec.get("pixels") if isinstance(rec, dict) else None
        if counts:
            tally.add_counts(int(counts["tp"]), int(counts["fp"]), int(counts["fn"]))
    return tally if tally.per_image else None


def describe_run(settings: dict) -> str:
    """One line saying which detector and which weights produced the scores (from ``Pipeline.settings()``)."""
    detector = settings.get("detector", "?")
    parts = [f"detector {detector}", f"align {settings.get('align', 'none')}"]
    pixel = settings.get("pixel") or {}
    if detector != "segment" and pixel:
        parts.append(f"photometric {pixel.get('photometric', 'none')}")
    weights = settings.get("weights")
    if weights:
        parts.append("weights " + ", ".join(f"{k}: {v.get('kind', v) if isinstance(v, dict) else v}"
                                            for k, v in weights.items()))
    elif detector == "pixel" and settings.get("captioner", "none") == "none":
        parts.append("no model weights")
    elif settings.get("models"):
        parts.append(f"models {settings['models'].get('path')}")
    return "; ".join(parts)
