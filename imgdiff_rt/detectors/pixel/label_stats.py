"""Per-label bounding boxes and sums with numpy alone: the two things the pixel detector needed from
scipy.ndimage, whose import costs more than a whole `imgdiff-rt run` on the bundled example."""

from __future__ import annotations

import numpy as np


def label_boxes(labels: np.ndarray, count: int) -> np.ndarray:
    """(count, 4) int64 boxes ``x0, y0, x1, y1`` (ends exclusive) of labels 1..count in a 2-D label image,
    as ``scipy.ndimage.find_objects`` gives them; a label with no pixel gets ``0, 0, 0, 0``."""
    ys, xs = np.nonzero(labels)
    ids = labels[ys, xs]
    big = np.iinfo(np.int64).max
    lo_x, lo_y = np.full(count + 1, big, np.int64), np.full(count + 1, big, np.int64)
    hi_x, hi_y = np.full(count + 1, -1, np.int64), np.full(count + 1, -1, np.int64)
    np.minimum.at(lo_x, ids, xs)
    np.minimum.at(lo_y, ids, ys)
    np.maximum.at(hi_x, ids, xs)
    np.maximum.at(hi_y, ids, ys)
    boxes = np.stack([lo_x, lo_y, hi_x + 1, hi_y + 1], axis=1)[1:]
    boxes[hi_x[1:] < 0] = 0
    return boxes


def label_sums(values: np.ndarray, labels: np.ndarray, count: int) -> np.ndarray:
    """float64 sums of ``values`` over labels 1..count (``scipy.ndimage.sum_labels``' own method: bincount)."""
    return np.bincount(labels.ravel(), weights=values.ravel(), minlength=count + 1)[1 : count + 1]
