"""Pixel-gated proposals: measure how much the two crops of each candidate box differ before paying CLIP for
them. Img-Diff pairs are near-identical by construction, so most candidate boxes cover pixels that did not
change; their crops are identical (or differ only by noise) and CLIP would only confirm a similarity of ~1.

A box's difference is the mean, over the box, of the per-pixel largest channel difference |left - right|
(0..255), read from one summed-area table of the whole-image difference, so every box costs O(1). Boxes whose
difference is at most the gate are not sent to CLIP; the detector records them with similarity 1.0 and the
reason. A gate of 0 skips exactly the boxes whose crops are identical, which CLIP would score 1.0 anyway: the
regions are those of the ungated method.
"""

from __future__ import annotations

import numpy as np

#: mean |left - right| (0..255) at or under which a box's crops count as unchanged. Chosen by measurement
#: (benchmarks/gate_study.py, results in benchmarks/results/gate/, docs/benchmarks.md): on 47 pairs of the
#: ../shared sets and synth pairs the smallest difference of a box holding a true change was 2.83; gates 0, 1
#: and 2 skipped the same boxes and kept the same regions. 1.0 stays well under that smallest true change.
DEFAULT_PIXEL_GATE = 1.0
SKIP_REASON = "crops differ by at most the pixel gate: not sent to CLIP"


def difference_table(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Summed-area table (H+1, W+1, float64) of the per-pixel largest channel difference of two same-size
    images (HxW or HxWxC, any integer or float dtype)."""
    if left.shape != right.shape:
        raise ValueError(f"images differ in shape: {left.shape} vs {right.shape}")
    diff = np.abs(left.astype(np.float32) - right.astype(np.float32))
    if diff.ndim == 3:
        diff = diff.max(axis=2)
    table = np.zeros((diff.shape[0] + 1, diff.shape[1] + 1), np.float64)
    np.cumsum(np.cumsum(diff, axis=0, dtype=np.float64), axis=1, out=table[1:, 1:])
    return table


def box_differences(table: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Mean difference inside each int xyxy box (x1/y1 exclusive) from ``difference_table``."""
    b = np.asarray(boxes, np.int64).reshape(-1, 4)
    if len(b) == 0:
        return np.zeros(0, np.float64)
    x0, y0, x1, y1 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    sums = table[y1, x1] - table[y0, x1] - table[y1, x0] + table[y0, x0]
    area = np.maximum((x1 - x0) * (y1 - y0), 1)
    return np.maximum(sums, 0.0) / area


def boxes_to_send(differences: np.ndarray, gate: float | None) -> np.ndarray:
    """Boolean mask of the boxes CLIP must see: all of them without a gate, else those differing by more.
    A gate of 0 keeps every box whose crops are not identical (the mean is 0 only when every pixel is)."""
    if gate is None:
        return np.ones(len(differences), bool)
    return np.asarray(differences) > float(gate)


def unique_boxes(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct boxes in first-seen order, index of each input box in them): a box proposed twice (by both
    images, or by the segmenter and the pixel detector) is cropped and embedded once."""
    b = np.asarray(boxes, np.int64).reshape(-1, 4)
    first: dict[tuple, int] = {}
    inverse = np.array([first.setdefault(tuple(row), len(first)) for row in b.tolist()], np.int64)
    order = sorted(first, key=first.get)
    return np.array(order, np.int64).reshape(-1, 4), inverse
