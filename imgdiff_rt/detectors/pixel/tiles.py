"""Pairs above the pixel cap (``--tiled``): the pixel detector in horizontal strips with overlap, so memory is
bounded by the strip, not the image (the decoded pair itself, 6 bytes a pixel, is what stays).

A pair of mostly identical pixels takes the windowed fast path (``fastpath``), bounded already. Otherwise every
strip is a core of rows plus ``overlap`` rows on each side, run through the detector with the whole image's
minimum area and merge gap; each region is cut to the strip's core (its own mask, area, mean and peak there),
and the pieces that meet across a seam, or lie within the merge gap of each other across it, are joined. An
object no taller than the overlap is seen whole by every strip that holds a piece of it, so the joined pieces
are the whole image's region. Light compensation and the noise statistics of the difference are fitted per
strip: on a pair whose light or noise varies from strip to strip they can differ from the whole image's fit.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Callable

import numpy as np

from imgdiff_rt.detectors.pixel.regions import region_score
from imgdiff_rt.detectors.pixel.windowed import detect_windowed, global_rle, reach
from imgdiff_rt.imageio import TILED_MAX_PIXELS  # noqa: F401 (the tiled path's cap, re-exported)
from imgdiff_rt.limits import MAX_REGIONS
from imgdiff_rt.detectors.pixel.detector import PixelConfig, PixelDetection, detect_pixels
from imgdiff_rt.result import Region

STRIP_PIXELS = 6_000_000  # pixels per strip core: about 0.5 GB of detector work at the detector's ~70 B/px
MIN_OVERLAP = 256  # rows each side: objects up to this tall are seen whole by every strip holding a piece

Progress = Callable[[str], None]


def strips(height: int, width: int, overlap: int, strip_pixels: int = STRIP_PIXELS) -> list[tuple[int, int]]:
    """Core row ranges [(start, end)] covering the image."""
    rows = max(overlap, strip_pixels // max(width, 1))
    return [(y, min(height, y + rows)) for y in range(0, height, rows)]


def detect_large(left: np.ndarray, right: np.ndarray, config: PixelConfig, ignore: np.ndarray | None = None,
                 progress: Progress | None = None, strip_pixels: int = STRIP_PIXELS) -> PixelDetection:
    """The pixel detector's regions for a pair compared as it is, with memory bounded by a strip."""
    found = detect_windowed(left, right, config, None, ignore)
    if found is not None:
        return found
    h, w = left.shape[:2]
    overlap = max(MIN_OVERLAP, reach(config, config.unresampled_tolerance_px))
    gap = config.merge_gap * math.hypot(w, h) + 2 * config.unresampled_tolerance_px
    pieces, threshold, light = [], 0.0, None
    cores = strips(h, w, overlap, strip_pixels)
    for k, (y0, y1) in enumerate(cores):
        if progress is not None:
            progress(f"tiled: strip {k + 1}/{len(cores)} (rows {y0}-{y1} of {h})")
        top, bottom = max(0, y0 - overlap), min(h, y1 + overlap)
        sub_ignore = None if ignore is None else ignore[top:bottom]
        strip_config = replace(config, min_area=config.resolved_min_area(w, h), max_regions=MAX_REGIONS,
                               merge_gap=min(0.999, gap / math.hypot(w, bottom - top)))
        part = detect_pixels(left[top:bottom], right[top:bottom], strip_config, ignore=sub_ignore)
        threshold, light = part.threshold_used, light or part.photometric
        pieces += [(k, *p) for p in _core_pieces(part, y0 - top, y1 - top, top)]
    regions, mask = _join(pieces, gap, w, h, config)
    if light is not None and len(cores) > 1:
        light = {**light, "note": f"fitted per strip ({len(cores)} strips); the first strip's fit shown"}
    return PixelDetection(tuple(regions), np.zeros((0, 0), np.float32), mask, threshold,
                          config.resolved_min_area(w, h), light, config.unresampled_tolerance_px, 0.0, False)


def _core_pieces(part: PixelDetection, core0: int, core1: int, top: int) -> list[tuple]:
    """(bbox, area, diff sum, peak, own mask in the bbox) of each region's piece inside the core rows."""
    from imgdiff_rt.detectors.pixel.masks import decode

    out = []
    for r in part.regions:
        own = decode(r.mask)[core0:core1]
        if not own.any():
            continue
        rows, cols = np.nonzero(own.any(axis=1))[0], np.nonzero(own.any(axis=0))[0]
        y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        values = part.diff[core0:core1][own]
        out.append(((int(x0), int(y0 + core0 + top), int(x1), int(y1 + core0 + top)), int(own.sum()),
                    float(values.sum(dtype=np.float64)), float(values.max()), own[y0:y1, x0:x1]))
    return out


def _join(pieces: list[tuple], gap: float, width: int, height: int, config: PixelConfig):
    """Pieces of neighbouring strips that touch or lie within the merge gap become one region."""
    parent = list(range(len(pieces)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, a in enumerate(pieces):
        for j in range(i + 1, len(pieces)):
            b = pieces[j]
            if a[0] == b[0]:
                continue  # the strip merged its own regions already
            dx = max(0, max(a[1][0], b[1][0]) - min(a[1][2], b[1][2]))
            dy = max(0, max(a[1][1], b[1][1]) - min(a[1][3], b[1][3]))
            if math.hypot(dx, dy) <= gap:
                parent[find(j)] = find(i)
    groups: dict[int, list[tuple]] = {}
    for i, p in enumerate(pieces):
        groups.setdefault(find(i), []).append(p)
    found = []
    for members in groups.values():
        bbox = (min(m[1][0] for m in members), min(m[1][1] for m in members),
                max(m[1][2] for m in members), max(m[1][3] for m in members))
        area = sum(m[2] for m in members)
        mean = sum(m[3] for m in members) / area
        found.append((region_score(mean, area, width * height, config.metric), bbox, area, mean,
                      max(m[4] for m in members), members))
    found.sort(key=lambda c: (-c[0], c[1]))
    mask = np.zeros((height, width), bool)
    regions = []
    for k, (score, bbox, area, mean, peak, members) in enumerate(found[:config.max_regions]):
        x0, y0, x1, y1 = bbox
        own = _members_mask(members, bbox)
        mask[y0:y1, x0:x1] |= own
        regions.append(Region(id=k + 1, bbox=bbox, score=score, area=area, source="pixel", mean_diff=mean,
                              peak_diff=peak, mask=global_rle(own, x0, y0, width, height)))
    return regions, mask


def _members_mask(members: list[tuple], bbox: tuple) -> np.ndarray:
    x0, y0, x1, y1 = bbox
    own = np.zeros((y1 - y0, x1 - x0), bool)
    for m in members:
        mx0, my0, mx1, my1 = m[1]
        own[my0 - y0:my1 - y0, mx0 - x0:mx1 - x0] |= m[5]
    return own
