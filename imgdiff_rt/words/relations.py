"""Changes that belong together: an object that disappeared in one place and appeared in another (moved), and
an appeared object whose content the left image already holds elsewhere (copied)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from imgdiff_rt.result import Region
from imgdiff_rt.words.colours import oklab
from imgdiff_rt.words.kinds import ChangeFacts, changed_pixels

MOVED_CORR = 0.5  # lightness correlation of the two crops (resized to one size) for "the same object"
MOVED_AREA_RATIO = 2.5  # the two regions' areas differ at most by this factor
COPIED_SCORE = 0.85  # template match (normalised correlation) of an appeared object found in the left image
MATCH_MAX_SIDE = 256  # the left image is searched at most this large (a masked search costs its area squared)
MIN_TEMPLATE_PX = 8


@dataclass(frozen=True)
class Relation:
    kind: str  # "moved" or "copied"
    other_bbox: tuple[int, int, int, int]  # where the same content is (left-image pixels)
    role: str = ""  # moved: "from" (the place it left) or "to" (the place it reached)

    def to_dict(self) -> dict:
        key = {"moved": "moved_" + ("to" if self.role == "from" else "from"), "copied": "copy_of"}[self.kind]
        return {"kind": self.kind, key: [int(v) for v in self.other_bbox]}


def _gray(img: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    x0, y0, x1, y1 = box
    return cv2.cvtColor(np.ascontiguousarray(img[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY).astype(np.float32)


def _same_content(a: np.ndarray, b: np.ndarray) -> float:
    if min(a.shape) < 2 or min(b.shape) < 2:
        return 0.0
    b = cv2.resize(b, (a.shape[1], a.shape[0]), interpolation=cv2.INTER_AREA)
    sa, sb = float(a.std()), float(b.std())
    if sa < 1.0 or sb < 1.0:
        return 0.0
    return float(((a - a.mean()) * (b - b.mean())).mean() / (sa * sb))


def _pairs_moved(regions, facts, left, right) -> dict[int, Relation]:
    out: dict[int, Relation] = {}
    gone = [(r, f) for r, f in zip(regions, facts) if f.kind == "disappeared"]
    came = [(r, f) for r, f in zip(regions, facts) if f.kind == "appeared"]
    scored = []
    for a, fa in came:
        for d, fd in gone:
            if fa.colour_right.term != fd.colour_left.term:
                continue
            if max(a.area, d.area) > MOVED_AREA_RATIO * max(1, min(a.area, d.area)):
                continue
            score = _same_content(_gray(right, a.bbox), _gray(left, d.bbox))
            if score >= MOVED_CORR:
                scored.append((score, a, d))
    for _, a, d in sorted(scored, key=lambda s: -s[0]):
        if a.id in out or d.id in out:
            continue
        out[a.id] = Relation("moved", d.bbox, "to")
        out[d.id] = Relation("moved", a.bbox, "from")
    return out


def _copy_source(region: Region, mask: np.ndarray, left: np.ndarray,
                 right: np.ndarray) -> tuple[int, int, int, int] | None:
    """Where the left image holds what appeared in ``region`` (outside the region itself), if anywhere. Only the
    region's own pixels (``mask``, the whole image's) are matched: the pasted object, not the place it landed."""
    h, w = left.shape[:2]
    scale = min(1.0, MATCH_MAX_SIDE / max(h, w))
    x0, y0, x1, y1 = region.bbox
    tw, th = int((x1 - x0) * scale), int((y1 - y0) * scale)
    if tw < MIN_TEMPLATE_PX or th < MIN_TEMPLATE_PX or tw >= w * scale or th >= h * scale:
        return None
    small = cv2.resize(cv2.cvtColor(left, cv2.COLOR_RGB2GRAY), (int(w * scale), int(h * scale)),
                       interpolation=cv2.INTER_AREA)
    template = cv2.resize(_gray(right, region.bbox).astype(np.uint8), (tw, th), interpolation=cv2.INTER_AREA)
    # the pixels that really changed: the pasted object itself, not the margin the detector's mask adds
    crop = (slice(y0, y1), slice(x0, x1))
    changed = changed_pixels(oklab(left[crop]), oklab(right[crop]), mask[crop])
    own = cv2.resize(changed.astype(np.uint8), (tw, th), interpolation=cv2.INTER_NEAREST)
    if int(own.sum()) < MIN_TEMPLATE_PX ** 2 or float(template[own > 0].std()) < 2.0:
        return None  # a flat patch matches anywhere
    scores = np.nan_to_num(cv2.matchTemplate(small, template, cv2.TM_CCOEFF_NORMED, mask=own * 255),
                           nan=-1.0, posinf=-1.0, neginf=-1.0)
    # the region's own place does not count: there the left image shows what was there before
    sx0, sy0 = max(0, int(x0 * scale) - tw + 1), max(0, int(y0 * scale) - th + 1)
    scores[sy0:int(y1 * scale), sx0:int(x1 * scale)] = -1.0
    _, _, _, (bx, by) = cv2.minMaxLoc(scores)
    # judged at full size around the place found: downscaling blurs fine texture out of the correlation
    found = _full_size_match(left, right, changed, region.bbox, (int(bx / scale), int(by / scale)),
                             int(np.ceil(1 / scale)) + 1)
    return None if found is None else (found[0], found[1], found[0] + (x1 - x0), found[1] + (y1 - y0))


def _full_size_match(left: np.ndarray, right: np.ndarray, changed: np.ndarray, box: tuple[int, int, int, int],
                     near: tuple[int, int], radius: int) -> tuple[int, int] | None:
    x0, y0, x1, y1 = box
    template = _gray(right, box).astype(np.uint8)
    h, w = template.shape
    wx0, wy0 = max(0, near[0] - radius), max(0, near[1] - radius)
    window = _gray(left, (wx0, wy0, near[0] + w + radius, near[1] + h + radius)).astype(np.uint8)
    if window.shape[0] < h or window.shape[1] < w:
        return None
    scores = np.nan_to_num(cv2.matchTemplate(window, template, cv2.TM_CCOEFF_NORMED,
                                             mask=changed.astype(np.uint8) * 255), nan=-1.0, posinf=-1.0,
                           neginf=-1.0)
    _, best, _, (bx, by) = cv2.minMaxLoc(scores)
    return (wx0 + bx, wy0 + by) if best >= COPIED_SCORE else None


def relate(regions, facts: list[ChangeFacts], masks: list[np.ndarray], left: np.ndarray,
           right: np.ndarray) -> dict[int, Relation]:
    """Relations by region id: moved pairs first, then copies among the appeared regions left over."""
    out = _pairs_moved(regions, facts, left, right)
    for region, fact, mask in zip(regions, facts, masks):
        if fact.kind == "appeared" and region.id not in out:
            source = _copy_source(region, mask, left, right)
            if source is not None:
                out[region.id] = Relation("copied", source)
    return out
