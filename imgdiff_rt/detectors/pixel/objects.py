"""Object-level regions: split a change mask into objects, so that ten new houses are ten regions even where
the mask joins them. A distance transform gives each blob's "thickness"; each thick core (pixels at least
``core_share`` of their blob's largest distance from the background) seeds one object, and a watershed on the
distance grows the seeds back to the full blob. Blobs with one core, and thin bridges, stay whole; only blobs
with several cores pay for the watershed (on their own bounding box). Two neighbouring objects stay apart only
when the neck between them is clearly thinner than both (houses joined by a path); a chain of parts joined by
necks almost as thick as the parts (a row of lamps the closing joined) is one change."""

from __future__ import annotations

import cv2
import numpy as np

CORE_SHARE = 0.3  # a core: distance to the background >= 0.3 of the blob's largest (measured: 0.5 split lobes)
MIN_CORE_PX = 2.0  # blobs thinner than this are never split
# Two split objects re-join when the neck between them (the deepest distance along their shared boundary) is at
# least this share of the shallower one's deepest point.
NECK_SHARE = 0.5


def split_objects(mask: np.ndarray, core_share: float = CORE_SHARE) -> tuple[int, np.ndarray]:
    """Label image of the objects in a boolean mask: (count, int32 labels 1..count, 0 for background)."""
    count, labels, _ = split_objects_with_blobs(mask, core_share)
    return count, labels


def split_objects_with_blobs(mask: np.ndarray, core_share: float = CORE_SHARE,
                             min_depth: float = 0.0) -> tuple[int, np.ndarray, np.ndarray]:
    """``split_objects`` plus the connected-blob label image the objects were split from (8-connected).
    ``min_depth``: an object no deeper than this (px from its edge to its centre) is no separate object: the
    mask's closing joins parts within that scale on purpose, so such parts are pieces of one change."""
    binary = mask.astype(np.uint8)
    n, blobs, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    if n <= 1:
        return 0, np.zeros(mask.shape, np.int32), blobs
    dist = cv2.distanceTransform(binary, cv2.DIST_L2, 5)
    peak = np.zeros(n, np.float32)
    for b in range(1, n):
        x, y, w, h = stats[b, :4]
        peak[b] = dist[y:y + h, x:x + w][blobs[y:y + h, x:x + w] == b].max()
    cores = (dist >= np.maximum(core_share * peak[blobs], MIN_CORE_PX)) & (blobs > 0)
    n_seeds, seeds = cv2.connectedComponents(cores.astype(np.uint8), connectivity=8)
    seed_blob = np.zeros(n_seeds, np.int64)
    seed_blob[seeds[cores]] = blobs[cores]
    per_blob = np.bincount(seed_blob[1:], minlength=n)
    labels = blobs.astype(np.int32)
    next_label = n
    for b in np.nonzero(per_blob >= 2)[0]:
        x, y, w, h = stats[b, :4]
        box = (slice(y, y + h), slice(x, x + w))
        inside = blobs[box] == b
        markers = np.where(inside, seeds[box], 0)
        from skimage.segmentation import watershed  # here: skimage's import is slow and most blobs never split

        split = _join_thick_necks(watershed(-dist[box], markers, mask=inside), dist[box], min_depth)
        ids = np.unique(split[inside])
        renum = np.zeros(int(split.max()) + 1, np.int32)
        renum[ids] = np.arange(next_label, next_label + len(ids))
        labels[box][inside] = renum[split[inside]]
        next_label += len(ids)
    present = np.bincount(labels.ravel(), minlength=next_label) > 0
    present[0] = False
    lut = np.where(present, np.cumsum(present), 0).astype(np.int32)  # blobs that were split leave gaps
    return int(present.sum()), lut[labels], blobs


def _join_thick_necks(split: np.ndarray, dist: np.ndarray, min_depth: float = 0.0) -> np.ndarray:
    """Relabel a watershed split so that objects whose shared boundary is nearly as deep as the shallower of
    them (NECK_SHARE) are one: a neck that thick is not where two things meet; nor is one between parts no deeper
    than ``min_depth``."""
    n = int(split.max()) + 1
    peak = np.zeros(n, np.float32)
    np.maximum.at(peak, split.ravel(), dist.ravel())
    neck = np.zeros((n, n), np.float32)
    for a, b, da, db in ((split[:, :-1], split[:, 1:], dist[:, :-1], dist[:, 1:]),
                         (split[:-1, :], split[1:, :], dist[:-1, :], dist[1:, :])):
        edge = (a != b) & (a > 0) & (b > 0)
        np.maximum.at(neck, (a[edge], b[edge]), np.minimum(da[edge], db[edge]))
    neck = np.maximum(neck, neck.T)
    parent = np.arange(n)
    for i, j in zip(*np.nonzero(np.triu(neck, 1))):
        if neck[i, j] >= NECK_SHARE * min(peak[i], peak[j]) or min(peak[i], peak[j]) <= min_depth:
            ri, rj = parent[i], parent[j]
            parent[parent == max(ri, rj)] = min(ri, rj)
    return parent[split]
