"""Pixel-exact pairs (screenshots, edited copies, lossless frames): find the identical pixels first and run the
pixel detector only on windows around what differs, so the work scales with the changed area, not the image.

Why the regions are those of the whole-image run: every step of the detector that reaches beyond a pixel's
neighbourhood sees the same input in a window as in the whole image.

* Blur, colour distance, misregistration tolerance, morphology, object splitting and region growing are local:
  a window reaches ``margin`` pixels beyond every differing pixel, more than they reach, and differing pixels
  closer than that share a window.
* Light compensation is the identity on the whole image and in every window when most pixels are identical
  (checked on the same subsample the detector checks); otherwise no window is used.
* The region-growing threshold comes from the difference's median and spread: zero on the whole image when most
  of it is identical, and zero in a window padded with identical (black) pixels to PAD_AREA times its area.
* Merging uses the whole image's gap (windows closer than it are joined first); the minimum area is the whole
  image's; scores are recomputed with the whole image's area and the regions ranked as the detector ranks them.

Anything else (a resampled right image, ignore masks, a data-driven threshold, too much change) returns None and
the pipeline runs the detector on the whole image.
"""

from __future__ import annotations

import math
from dataclasses import replace

import cv2
import numpy as np

from imgdiff_rt.detectors.pixel.photometric import compensate
from imgdiff_rt.detectors.pixel.masks import decode
from imgdiff_rt.detectors.pixel.regions import region_score
from imgdiff_rt.limits import MAX_REGIONS
from imgdiff_rt.detectors.pixel.detector import PixelConfig, PixelDetection, detect_pixels
from imgdiff_rt.result import Region

BLOCK = 32  # px: the grid identical pixels are found on
MIN_IDENTICAL_SHARE = 0.5  # of the pixels, exactly identical: the light is unchanged and the noise median zero
MAX_WINDOW_SHARE = 0.25  # windows covering more of the image than this save nothing: the whole image runs
STRIP_ROWS = 512  # rows compared at a time (bounded memory at any size)
#: a window is padded with identical pixels to this multiple of its area: more than half of it is then
#: unchanged whatever the window holds, so the difference's median and spread are zero, as on the whole image
PAD_AREA = 2.5


def differing_blocks(left: np.ndarray, right: np.ndarray, block: int = BLOCK) -> tuple[np.ndarray, int]:
    """(grid of blocks holding a differing pixel, number of differing pixels), compared strip by strip."""
    h, w = left.shape[:2]
    grid = np.zeros((math.ceil(h / block), math.ceil(w / block)), bool)
    starts = np.arange(0, w, block)
    count = 0
    for y in range(0, h, STRIP_ROWS):
        rows = min(STRIP_ROWS, h - y)
        bytes_differ = (left[y:y + rows] != right[y:y + rows]).reshape(rows, w * 3)
        # a pixel differs when any of its three bytes does (strided ORs: far faster than any(axis=2))
        differs = bytes_differ[:, 0::3] | bytes_differ[:, 1::3] | bytes_differ[:, 2::3]
        count += int(np.count_nonzero(differs))
        full = rows - rows % block
        by_rows = differs[:full].reshape(-1, block, w).any(axis=1)
        if full < rows:
            by_rows = np.concatenate([by_rows, differs[full:].any(axis=0)[None]])
        grid[y // block:y // block + len(by_rows)] = np.logical_or.reduceat(by_rows, starts, axis=1)
    return grid, count


def windows(grid: np.ndarray, block: int, margin: int, gap: float, width: int, height: int) -> list[tuple]:
    """Rectangles (x0, y0, x1, y1) holding every differing block plus ``margin`` px, joined while any two lie
    within ``gap`` px of each other (what the whole image would merge is in one window)."""
    count, _, stats, _ = cv2.connectedComponentsWithStats(grid.astype(np.uint8), connectivity=8)
    rects = [[max(0, x * block - margin), max(0, y * block - margin), min(width, (x + bw) * block + margin),
              min(height, (y + bh) * block + margin)] for x, y, bw, bh, _ in stats[1:count]]
    joined = True
    while joined:
        joined = False
        for i in range(len(rects)):
            for j in range(i + 1, len(rects)):
                a, b = rects[i], rects[j]
                dx = max(0, max(a[0], b[0]) - min(a[2], b[2]))
                dy = max(0, max(a[1], b[1]) - min(a[3], b[3]))
                if math.hypot(dx, dy) <= gap:
                    rects[i] = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]
                    del rects[j]
                    joined = True
                    break
            if joined:
                break
    return [tuple(r) for r in rects]


def reach(config: PixelConfig, tolerance: int) -> int:
    """How far (px) the detector's local steps carry a difference: blur, tolerance, opening, closing, with room."""
    return int(math.ceil(4 * config.blur_sigma)) + tolerance + config.open_px + config.close_px + BLOCK


def global_rle(own: np.ndarray, x0: int, y0: int, width: int, height: int) -> dict:
    """The whole image's COCO RLE (column-major) of a mask known only inside the window at (x0, y0)."""
    h, w = own.shape
    padded = np.zeros((h + 2, w), np.int8)
    padded[1:-1] = own
    edges = np.diff(padded, axis=0)  # per column: +1 where a run starts, -1 where it ends
    starts_r, starts_c = np.nonzero(edges.T == 1)
    ends_r, ends_c = np.nonzero(edges.T == -1)
    starts = (x0 + starts_r) * height + y0 + starts_c
    ends = (x0 + ends_r) * height + y0 + ends_c
    if not len(starts):
        return {"size": [height, width], "counts": [width * height]}
    order = np.argsort(starts)
    starts, ends = starts[order], ends[np.argsort(ends)]
    keep = np.ones(len(starts), bool)
    keep[1:] = starts[1:] != ends[:-1]  # a run that continues into the next column is one run
    bounds = np.stack([starts[keep], ends[np.r_[keep[1:], True]]], 1).ravel()
    counts = np.diff(np.concatenate([[0], bounds, [width * height]])).tolist()
    return {"size": [height, width], "counts": [int(c) for c in counts]}


def _light_unchanged(left: np.ndarray, right: np.ndarray, config: PixelConfig) -> dict | None | bool:
    """The detector's own light record when compensation is the identity on the whole image (it checks a
    subsample; so does this, on the same pixels); False when it would change the light."""
    if config.photometric == "none":
        return None
    h, w = left.shape[:2]
    step = max(1, int(np.sqrt(h * w / 40000)))
    a, b = np.ascontiguousarray(left[::step, ::step]), np.ascontiguousarray(right[::step, ::step])
    out, light = compensate(a, b, None, local=config.photometric == "local")
    return light if out is b else False


def _window_config(config: PixelConfig, gap: float, size: tuple[int, int], min_area: int) -> PixelConfig:
    return replace(config, min_area=min_area, max_regions=MAX_REGIONS,
                   merge_gap=min(0.999, gap / math.hypot(*size)) if config.merge == "box" else config.merge_gap)


def _pads(rect: tuple, width: int, height: int) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) black padding bringing the window to PAD_AREA times its area, on the sides away
    from the image's edges only: at an edge the detector's filters see the image's own border, as on the whole."""
    x0, y0, x1, y1 = rect
    sides = (y0 > 0, y1 < height, x0 > 0, x1 < width)
    w, h, p = x1 - x0, y1 - y0, 1
    while (w + p * (sides[2] + sides[3])) * (h + p * (sides[0] + sides[1])) < PAD_AREA * w * h:
        p = int(p * 1.25) + 1
    return tuple(p * s for s in sides)


def _run_window(left, right, rect, config: PixelConfig, gap: float, min_area: int):
    """The detector on one padded window: (window detection, its origin in the image)."""
    x0, y0, x1, y1 = rect
    top, bottom, lft, rgt = _pads(rect, left.shape[1], left.shape[0])
    a, b = (cv2.copyMakeBorder(np.ascontiguousarray(img[y0:y1, x0:x1]), top, bottom, lft, rgt,
                               cv2.BORDER_CONSTANT, value=0) for img in (left, right))
    found = detect_pixels(a, b, _window_config(config, gap, a.shape[1::-1], min_area))
    return found, (x0 - lft, y0 - top)


def detect_windowed(left: np.ndarray, right: np.ndarray, config: PixelConfig, alignment=None,
                    ignore: np.ndarray | None = None) -> PixelDetection | None:
    """The pixel detector's answer for a pair compared as it is, from windows around the differing pixels; None
    when the pair does not qualify (see the module's docstring) and the whole image must run."""
    if ignore is not None or getattr(alignment, "method", "none") != "none" or left.shape != right.shape \
            or config.resolved_threshold().kind != "fixed":
        return None
    h, w = left.shape[:2]
    grid, differing = differing_blocks(left, right)
    if differing > (1.0 - MIN_IDENTICAL_SHARE) * h * w:
        return None
    light = _light_unchanged(left, right, config)
    if light is False:
        return None
    tolerance = config.unresampled_tolerance_px
    gap = config.merge_gap * math.hypot(w, h) + 2 * tolerance
    rects = windows(grid, BLOCK, reach(config, tolerance), gap, w, h)
    if sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in rects) > MAX_WINDOW_SHARE * h * w:
        return None
    return _assemble(left, right, rects, config, gap, tolerance, light)


def _assemble(left, right, rects, config: PixelConfig, gap: float, tolerance: int, light) -> PixelDetection:
    h, w = left.shape[:2]
    min_area = config.resolved_min_area(w, h)
    found = []  # (score, bbox, area, mean, peak, window mask, window origin)
    threshold = float(config.resolved_threshold().value)
    for rect in rects:
        part, (ox, oy) = _run_window(left, right, rect, config, gap, min_area)
        threshold = part.threshold_used
        for r in part.regions:
            x0, y0, x1, y1 = r.bbox
            own = decode(r.mask)[y0:y1, x0:x1]
            bbox = (int(x0 + ox), int(y0 + oy), int(x1 + ox), int(y1 + oy))
            score = region_score(r.mean_diff, r.area, w * h, config.metric)
            found.append((score, bbox, r.area, r.mean_diff, r.peak_diff, own))
    found.sort(key=lambda c: (-c[0], c[1]))
    mask = np.zeros((h, w), bool)
    regions = []
    for k, (score, bbox, area, mean, peak, own) in enumerate(found[:config.max_regions]):
        x0, y0, x1, y1 = bbox
        mask[y0:y1, x0:x1] |= own
        regions.append(Region(id=k + 1, bbox=bbox, score=score, area=area, source="pixel", mean_diff=mean,
                              peak_diff=peak, mask=global_rle(own, x0, y0, w, h)))
    return PixelDetection(tuple(regions), np.zeros((0, 0), np.float32), mask, threshold, min_area, light,
                          tolerance, 0.0, False)
