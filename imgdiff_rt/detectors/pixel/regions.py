"""From a change mask to regions: growing clear changes into their faint surroundings, grouping the fragments
of one change by box distance, and scoring a region."""

from __future__ import annotations

import math

import cv2
import numpy as np

# Scale that maps a metric's mean difference to a 0..1 score: a clear change is far above it.
SCORE_SCALE = {"lab": 40.0, "absdiff": 100.0}
SIBLING_SHARE = 0.8  # objects split from one blob re-join when the smaller is under this share of the larger


def grow_from_seeds(weak: np.ndarray, strong: np.ndarray) -> np.ndarray:
    """Hysteresis: the connected parts of ``weak`` (8-connected) that hold a pixel of ``strong``. A faint edit
    whose difference hovers around the threshold comes out whole instead of as slivers, while weak difference
    that touches no clear change stays out."""
    count, labels = cv2.connectedComponents(weak.astype(np.uint8), connectivity=8)
    if count <= 1:
        return strong & weak
    seeded = np.zeros(count, bool)
    seeded[labels[strong & weak]] = True
    seeded[0] = False
    return seeded[labels]


def merge_boxes(boxes: np.ndarray, gap: float, parents: np.ndarray | None = None,
                areas: np.ndarray | None = None) -> np.ndarray:
    """Group boxes (N x 4, x0,y0,x1,y1) whose edge-to-edge distance is <= gap; returns a group id per box.
    Two objects split from one blob (same ``parents`` id) are joined only when one is much smaller than the
    other (a lobe of one changed object): merging is for the fragments of one change, not for the neighbours of
    similar size the split separated."""
    n = len(boxes)
    parent = np.arange(n)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    if n > 1:
        x0, y0, x1, y1 = (boxes[:, k].astype(np.float64) for k in range(4))
        dx = np.maximum(0, np.maximum(x0[:, None] - x1[None, :], x0[None, :] - x1[:, None]))
        dy = np.maximum(0, np.maximum(y0[:, None] - y1[None, :], y0[None, :] - y1[:, None]))
        close = np.hypot(dx, dy) <= gap
        if parents is not None:
            sizes = areas.astype(np.float64) if areas is not None else np.ones(n)
            lobe = np.minimum(sizes[:, None], sizes[None, :]) < SIBLING_SHARE * np.maximum(sizes[:, None],
                                                                                          sizes[None, :])
            close &= (parents[:, None] != parents[None, :]) | lobe
        for i, j in zip(*np.nonzero(np.triu(close, 1))):
            ri, rj = find(int(i)), find(int(j))
            if ri != rj:
                parent[max(ri, rj)] = min(ri, rj)
    roots = np.array([find(i) for i in range(n)], dtype=np.int64)
    _, group = np.unique(roots, return_inverse=True)
    return group


def region_score(mean_diff: float, area: int, image_area: int, metric: str) -> float:
    """Mean difference mapped to 0..1, damped for blobs much smaller than 0.2% of the image."""
    strength = min(1.0, mean_diff / SCORE_SCALE[metric])
    size = 1.0 - math.exp(-area / max(1.0, 0.002 * image_area))
    return strength * size
