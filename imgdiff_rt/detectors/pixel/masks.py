"""Run-length encoded masks in the COCO "uncompressed RLE" layout, so results can be scored with the usual
tools: ``{"size": [height, width], "counts": [zeros, ones, zeros, ...]}`` over the mask read column by column
(Fortran order), starting with a run of zeros (possibly 0 long)."""

from __future__ import annotations

import numpy as np

from imgdiff_rt.errors import UsageError


def encode(mask: np.ndarray) -> dict:
    """COCO uncompressed RLE of a 2-D boolean mask."""
    flat = np.asarray(mask, bool).ravel(order="F")
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        counts = [0] + counts
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": [int(c) for c in counts]}


def decode(rle: dict) -> np.ndarray:
    """The boolean mask of a COCO uncompressed RLE."""
    try:
        h, w = (int(v) for v in rle["size"])
        counts = np.asarray(rle["counts"], dtype=np.int64)
    except (KeyError, TypeError, ValueError):
        raise UsageError("mask: expected {'size': [height, width], 'counts': [...]}") from None
    if h < 0 or w < 0 or counts.ndim != 1 or (counts < 0).any() or int(counts.sum()) != h * w:
        raise UsageError(f"mask: run lengths must be non-negative and add up to {h} x {w} pixels")
    values = np.arange(len(counts)) % 2 == 1
    return np.repeat(values, counts).reshape((h, w), order="F")
