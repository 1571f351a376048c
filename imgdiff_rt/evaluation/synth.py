"""Spot-the-difference pairs with ground truth, made from any photo the classical way: segment the photo into
regions, pick some, and change each by removing it (inpainting), recolouring it, or pasting a copy elsewhere.

The truth box of each change is measured from the pixels that really changed, so the ground truth is exact.
Deterministic for a seed.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import cv2
import numpy as np
from skimage.segmentation import felzenszwalb

from imgdiff_rt.evaluation import synth_puzzle as puzzle
from imgdiff_rt.detectors.pixel.jitter import JITTER_STRENGTHS, jitter_image, move_box
from imgdiff_rt.errors import UsageError
from imgdiff_rt.words.colours import ACHROMATIC_CHROMA, TYPICAL, lch, name_surface, oklab, oklab_to_rgb
from imgdiff_rt.limits import check_count

KINDS = ("remove", "recolour", "paste")
# Region area as a share of the image, per level: level 1 larger changes, level 2 smaller ones, level 3 a
# magazine puzzle's (imgdiff_rt.evaluation.synth_puzzle).
LEVEL_AREA = {1: (0.006, 0.05), 2: (0.0012, 0.006), puzzle.PUZZLE_LEVEL: puzzle.PUZZLE_AREA}
# Felzenszwalb scales tried per level (larger gives larger segments); several, so that photos with few
# object-like segments at one scale still offer candidates.
LEVEL_SCALES = {1: (200.0, 400.0, 800.0), 2: (75.0, 150.0, 300.0)}
MIN_VISIBLE_DELTA_E = 12.0  # mean CIELAB difference a change must reach to count as visible
MIN_RECOLOUR_HUE_DEG = 60.0  # a recolour's named target lies at least this far in hue from the region's own
CHANGED_PIXEL_DELTA_E = 6.0  # a pixel belongs to the truth box when it changed at least this much
TRUTH_SCHEMA = "imgdiff-rt/truth/v1"
PUZZLE_KINDS = ("remove", "recolour")  # a puzzle's clear edits (pasting is its "adjacent" edit)
PUZZLE_TRIES = 60  # candidates tried per puzzle edit before the photo is taken not to offer that shape


@dataclass(frozen=True)
class SynthPair:
    left: np.ndarray
    right: np.ndarray
    truth: dict


def _lab(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)


_SEGMENT_CACHE: dict[tuple[str, int], list[np.ndarray]] = {}


def candidate_segments(image: np.ndarray, level: int) -> list[np.ndarray]:
    """Compact segments of the level's size range that do not touch the border, as boolean masks.

    Cached per photo and level: making many pairs from one photo segments it once."""
    key = (hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest(), level)
    if key not in _SEGMENT_CACHE:
        if len(_SEGMENT_CACHE) >= 8:
            _SEGMENT_CACHE.pop(next(iter(_SEGMENT_CACHE)))
        _SEGMENT_CACHE[key] = _segment(image, level)
    return _SEGMENT_CACHE[key]


def _segment(image: np.ndarray, level: int) -> list[np.ndarray]:
    h, w = image.shape[:2]
    lo, hi = LEVEL_AREA[level]
    out = []
    for scale in LEVEL_SCALES[level]:
        labels = felzenszwalb(image, scale=scale, sigma=0.8, min_size=int(lo * h * w / 2))
        out.extend(_object_like(labels, lo * h * w, hi * h * w))
    return out


def _object_like(labels: np.ndarray, min_area: float, max_area: float) -> list[np.ndarray]:
    h, w = labels.shape
    out = []
    for lab in np.unique(labels):
        m = labels == lab
        area = int(m.sum())
        if not min_area <= area <= max_area:
            continue
        ys, xs = np.nonzero(m)
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        if y0 == 0 or x0 == 0 or y1 == h or x1 == w:
            continue
        if area / float((y1 - y0) * (x1 - x0)) < 0.35:  # thin or sprawling shapes are poor "objects"
            continue
        # Fill holes so an object is changed whole.
        filled = m.astype(np.uint8)
        contours, _ = cv2.findContours(filled, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(filled, contours, -1, 1, thickness=-1)
        out.append(filled.astype(bool))
    return out


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _grow(box: tuple[int, int, int, int], px: int) -> tuple[int, int, int, int]:
    return box[0] - px, box[1] - px, box[2] + px, box[3] + px


def _overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def remove_region(img: np.ndarray, mask: np.ndarray) -> np.ndarray:
    grown = cv2.dilate(mask.astype(np.uint8), np.ones((5, 5), np.uint8))
    radius = max(3, int(math.sqrt(mask.sum()) / 8))
    return cv2.inpaint(img, grown * 255, radius, cv2.INPAINT_TELEA)


def recolour_region(img: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """Paint the region a named colour far from its own (words.colours.TYPICAL), keeping its shading: the
    lightness pattern is shifted into the colour's range and the hue set to the colour's. Returns the new image
    and the colour's name, so descriptions can be scored."""
    lab = oklab(img[mask])
    light, chroma, hue = lch(lab)
    own = name_surface(lab)
    own_hue = float(np.degrees(np.arctan2(np.median(lab[:, 2]), np.median(lab[:, 1]))) % 360)
    chromatic = float(np.median(chroma)) >= ACHROMATIC_CHROMA
    targets = [t for t, (h, _, _) in TYPICAL.items() if t != own.term
               and not (chromatic and abs((h - own_hue + 180) % 360 - 180) < MIN_RECOLOUR_HUE_DEG)]
    target = targets[int(rng.integers(len(targets)))]
    t_hue, t_chroma, (lo, hi) = TYPICAL[target]
    med = float(np.median(light))
    new_l = light - med + float(np.clip(med, lo, hi))
    new_c = t_chroma * np.clip(chroma / max(float(np.median(chroma)), 1e-3), 0.6, 1.4) if chromatic \
        else np.full_like(chroma, t_chroma)
    angle = np.radians(t_hue)
    painted = np.stack([new_l, new_c * np.cos(angle), new_c * np.sin(angle)], axis=1)
    out = img.copy()
    out[mask] = oklab_to_rgb(painted)
    return out, target


def paste_region(img: np.ndarray, mask: np.ndarray, taken: list, rng: np.random.Generator,
                 ) -> tuple[np.ndarray, np.ndarray] | None:
    """Paste a copy of the region at a free spot; returns the new image and the pasted mask."""
    h, w = img.shape[:2]
    x0, y0, x1, y1 = _bbox(mask)
    bw, bh = x1 - x0, y1 - y0
    for _ in range(40):
        nx, ny = int(rng.integers(0, w - bw + 1)), int(rng.integers(0, h - bh + 1))
        dest = (nx, ny, nx + bw, ny + bh)
        if _overlaps(_grow(dest, 8), (x0, y0, x1, y1)) or any(_overlaps(_grow(dest, 8), t) for t in taken):
            continue
        return puzzle.paste_at(img, mask, (x0, y0, x1, y1), nx, ny)
    return None


def _truth_of(candidate: np.ndarray, changed: np.ndarray, left_lab: np.ndarray,
              min_delta_e: float) -> tuple[np.ndarray, float] | None:
    """The pixels that really changed around ``changed`` and the mean deltaE of the edit, or None when the edit
    is too faint to count as visible."""
    delta = np.linalg.norm(_lab(candidate) - left_lab, axis=2)
    area_mask = cv2.dilate(changed.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    really = area_mask & (delta > CHANGED_PIXEL_DELTA_E)
    mean = float(delta[changed].mean()) if changed.any() else 0.0
    if not really.any() or mean < min_delta_e:
        return None
    return really, mean


def _edit(right: np.ndarray, mask: np.ndarray, kind: str, taken: list, margin: int,
          rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, dict] | None:
    """One classic edit of a segment: (new image, changed mask, extra truth fields) or None."""
    if kind == "remove":
        return remove_region(right, mask), mask, {}
    if kind == "recolour":
        candidate, target = recolour_region(right, mask, rng)
        return candidate, mask, {"colour_right": target}
    if kind == "tint":
        return puzzle.tint(right, mask, rng), mask, {}
    pasted = paste_region(right, mask, [_grow(t, margin) for t in taken], rng)
    return None if pasted is None else (*pasted, {})


def synthesize(image: np.ndarray, spots: int | None = 3, level: int = 1, seed: int = 0,
               kinds: tuple[str, ...] = KINDS, jitter: bool | str = False) -> SynthPair:
    """Make one pair from an HxWx3 uint8 RGB photo: left is the photo, right has ``spots`` changes (level 3, a
    magazine puzzle: None draws 4-7).

    ``jitter``: the right image is also re-shot: a viewpoint warp with parallax, a light change and noise
    (imgdiff_rt.detectors.pixel.jitter); True or "mild" is a steady hand, "strong" adds zoom, more parallax and a moved
    light. Truth ``bbox`` stays in left-image pixels (where a registered detector reports); ``bbox_right`` is the
    same change moved along the warp, in the jittered right image."""
    if level not in LEVEL_AREA:
        raise UsageError("level must be 1 (larger changes), 2 (smaller changes) or 3 (a magazine puzzle)")
    if spots is None and level != puzzle.PUZZLE_LEVEL:
        spots = 3
    if spots is not None and spots < 1:
        raise UsageError("spots must be at least 1")
    strength = "mild" if jitter is True else (jitter or None)
    if strength is not None and strength not in JITTER_STRENGTHS:
        raise UsageError(f"jitter {jitter!r}: choose one of {', '.join(JITTER_STRENGTHS)}")
    check_count("seed", seed, 0)  # numpy seeds are non-negative
    rng = np.random.default_rng(seed)
    if level == puzzle.PUZZLE_LEVEL:
        right, changes = _puzzle_changes(image, spots, rng)
    else:
        right, changes = _classic_changes(image, spots, level, kinds, rng)
    if not changes:
        raise UsageError(f"no region of this photo suits a level-{level} change (try the other level)")
    h, w = image.shape[:2]
    truth = {"schema": TRUTH_SCHEMA, "size": [w, h], "level": level, "seed": seed,
             "requested_spots": spots if spots is not None else len(changes), "changes": changes}
    if strength is not None:
        right, warp, light = jitter_image(right, seed, strength)
        for change in changes:
            change["bbox_right"] = list(move_box(tuple(change["bbox"]), warp))
        truth["jitter"] = {"strength": strength, **warp.facts, **light}
    return SynthPair(left=image, right=right, truth=truth)


def _classic_changes(image: np.ndarray, spots: int, level: int, kinds: tuple[str, ...],
                     rng: np.random.Generator) -> tuple[np.ndarray, list[dict]]:
    h, w = image.shape[:2]
    segments = candidate_segments(image, level)
    order = rng.permutation(len(segments))
    right = image.copy()
    taken: list[tuple[int, int, int, int]] = []
    changes: list[dict] = []
    left_lab = _lab(image)
    margin = max(4, int(0.01 * math.hypot(w, h)))
    for idx in order:
        if len(changes) == spots:
            break
        mask = segments[idx]
        box = _bbox(mask)
        if any(_overlaps(_grow(box, margin), t) for t in taken):
            continue
        kind = kinds[int(rng.integers(len(kinds)))]
        made = _edit(right, mask, kind, taken, margin, rng)
        if made is None:
            continue
        candidate, changed, words = made
        seen = _truth_of(candidate, changed, left_lab, MIN_VISIBLE_DELTA_E)
        if seen is None:
            continue  # an invisible change is no ground truth
        really, mean = seen
        tbox = _bbox(really)
        if any(_overlaps(_grow(tbox, margin), t) for t in taken):
            continue
        right = candidate
        taken.append(tbox)
        changes.append({"kind": kind, "bbox": list(tbox), "area": int(really.sum()),
                        "mean_delta_e": round(mean, 2), **words})
    return right, changes


def _puzzle_changes(image: np.ndarray, spots: int | None,
                    rng: np.random.Generator) -> tuple[np.ndarray, list[dict]]:
    """The edits of puzzle.plan, each tried on up to PUZZLE_TRIES candidates; an edit whose shape the photo
    cannot give is skipped."""
    h, w = image.shape[:2]
    key = (hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest(), puzzle.PUZZLE_LEVEL)
    if key not in _SEGMENT_CACHE:
        _SEGMENT_CACHE[key] = puzzle.segments(image)
    segments = _SEGMENT_CACHE[key]
    right = image.copy()
    left_lab = _lab(image)
    margin = max(4, int(0.01 * math.hypot(w, h)))
    lo, hi = (a * h * w for a in puzzle.PUZZLE_AREA)
    changes: list[dict] = []
    for shape, faint in puzzle.plan(rng, spots):
        taken = [tuple(c["bbox"]) for c in changes]
        for _ in range(PUZZLE_TRIES):
            made = _puzzle_edit(right, segments, shape, faint, changes, margin, rng)
            if made is None:
                continue
            candidate, changed, fields = made
            seen = _truth_of(candidate, changed, left_lab, puzzle.FAINT_DELTA_E[0])
            if seen is None:
                continue
            really, mean = seen
            tbox = _bbox(really)
            if not lo <= really.sum() <= hi or (faint and mean > puzzle.FAINT_DELTA_E[1]):
                continue
            near = [t for t in taken if puzzle.box_gap(tbox, t) < (1 if shape == "adjacent" else margin)]
            if near or (shape == "border" and not puzzle.touches_border(really)) \
                    or (shape != "border" and puzzle.touches_border(really)):
                continue
            right = candidate
            changes.append({"bbox": list(tbox), "area": int(really.sum()), "mean_delta_e": round(mean, 2),
                            "shape": shape, "faint": faint, **fields})
            break
    return right, changes


def _puzzle_edit(right: np.ndarray, segments: list[np.ndarray], shape: str, faint: bool, changes: list[dict],
                 margin: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, dict] | None:
    """One candidate edit of the given shape: (new image, changed mask, truth fields) or None."""
    if shape == "thin":
        mask = puzzle.thin_mask(right.shape[:2], rng)
        if faint:
            return puzzle.tint(right, mask, rng), mask, {"kind": "tint"}
        candidate, target = recolour_region(right, mask, rng)
        return candidate, mask, {"kind": "recolour", "colour_right": target}
    pool = [s for s in segments if puzzle.touches_border(s) == (shape == "border")]
    if not pool:
        return None
    mask = pool[int(rng.integers(len(pool)))]
    if shape == "adjacent":
        if not changes:
            return None
        neighbour = tuple(changes[int(rng.integers(len(changes)))]["bbox"])
        placed = puzzle.place_next_to(right, mask, neighbour, rng)
        if placed is None:
            return None
        candidate, pasted = placed
        return (puzzle.tint(candidate, pasted, rng), pasted, {"kind": "paste+tint"}) if faint \
            else (candidate, pasted, {"kind": "paste"})
    kind = "tint" if faint else PUZZLE_KINDS[int(rng.integers(len(PUZZLE_KINDS)))]
    made = _edit(right, mask, kind, [tuple(c["bbox"]) for c in changes], margin, rng)
    return None if made is None else (made[0], made[1], {"kind": kind, **made[2]})
