"""CLIP similarity filter: keep the boxes whose two crops look different, and the whole-image pair gate.

Img-Diff keeps a candidate when cosine(CLIP(left crop), CLIP(right crop)) < 0.85, the least similar first, at
most N (5); for building data sets it keeps only image pairs whose whole-image similarity lies in
0.90..0.98 (similar, but not identical). Embeddings are L2-normalised by the exported graph (spec
``clip_image``), so the cosine is a dot product; it is renormalised here anyway to be safe with int8.
"""

from __future__ import annotations

import numpy as np

from imgdiff_rt.runtime.segment_decode import box_iou

DEFAULT_THRESHOLD = 0.85  # Img-Diff: crops less similar than this differ
DEFAULT_MAX_REGIONS = 5  # Img-Diff keeps at most this many boxes per pair
DEFAULT_PAIR_GATE = (0.90, 0.98)  # Img-Diff's whole-image similarity window for data-set pairs


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def pair_similarity(left_embeds: np.ndarray, right_embeds: np.ndarray) -> np.ndarray:
    """Row-wise cosine of two (N, D) embedding arrays."""
    return np.sum(_unit(left_embeds) * _unit(right_embeds), axis=-1)


def split_pair_embeds(embeds: np.ndarray) -> np.ndarray:
    """Embeddings of ``crop_pairs`` output ([lefts..., rights...]) -> per-box similarities."""
    n = len(embeds) // 2
    return pair_similarity(embeds[:n], embeds[n:2 * n])


def select_different(similarities: np.ndarray, threshold: float = DEFAULT_THRESHOLD,
                     max_regions: int = DEFAULT_MAX_REGIONS) -> np.ndarray:
    """Indices of boxes with similarity < threshold, least similar first, at most ``max_regions``."""
    sims = np.asarray(similarities, np.float32)
    idx = np.nonzero(sims < threshold)[0]
    idx = idx[np.argsort(sims[idx], kind="stable")]
    return idx[:max(0, int(max_regions))]


def choose_regions(similarities: np.ndarray, boxes: np.ndarray, threshold: float, dedup_iou: float,
                   max_regions: int) -> list[int]:
    """Img-Diff's region rule, the one place it is written: boxes whose crops differ (similarity < threshold),
    least similar first, skipping a box that overlaps an already kept one by IoU >= dedup_iou (a pixel box
    over a kept segment box is the same change), at most ``max_regions``."""
    chosen: list[int] = []
    for i in select_different(similarities, threshold, len(similarities)):
        if chosen and box_iou(boxes[i:i + 1], boxes[chosen]).max() >= dedup_iou:
            continue
        chosen.append(int(i))
        if len(chosen) >= max_regions:
            break
    return chosen


def pair_gate(similarity: float, low: float, high: float) -> bool:
    """True when a pair is similar but not identical (low <= similarity <= high)."""
    return bool(low <= similarity <= high)


def parse_pair_gate(text: str) -> tuple[float, float]:
    """"LO:HI" -> (lo, hi); ValueError on anything else (the CLI turns it into a usage error)."""
    lo, sep, hi = str(text).partition(":")
    low, high = float(lo), float(hi)
    if not sep or not (-1.0 <= low <= high <= 1.0):
        raise ValueError(f"pair gate {text!r}: use LO:HI with -1 <= LO <= HI <= 1, e.g. 0.90:0.98")
    return low, high
