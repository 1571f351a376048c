"""Descriptions without a model: a short sentence per region built only from measurements (where it is, how
big it is, and the kind of change when the pixels tell it), and a one-line summary for the pair."""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from .detection.masks import decode as decode_mask
from .result import Region, Result

# Basic colour terms with sRGB prototypes; a measured colour takes the nearest one in CIELAB.
COLOUR_PROTOTYPES = {
    "black": (20, 20, 20), "gray": (128, 128, 128), "white": (240, 240, 240),
    "red": (200, 30, 30), "orange": (240, 140, 20), "yellow": (235, 220, 40),
    "green": (40, 160, 50), "cyan": (40, 200, 210), "blue": (40, 70, 200),
    "purple": (130, 50, 170), "pink": (240, 140, 180), "brown": (130, 80, 40),
    "dark green": (20, 80, 30), "dark blue": (20, 30, 100), "beige": (220, 200, 160),
}
_NAMES = list(COLOUR_PROTOTYPES)
_PROTO_LAB = cv2.cvtColor(
    np.array([COLOUR_PROTOTYPES[n] for n in _NAMES], np.float32).reshape(1, -1, 3) / 255.0, cv2.COLOR_RGB2LAB
).reshape(-1, 3)

UNIFORM_STD = 7.0  # deltaE spread under which a surface counts as uniform
SAME_AS_SURROUND = 12.0  # deltaE: the region looks like its surround (nothing there)
STANDS_OUT = 20.0  # deltaE: the region clearly differs from its surround (something there)
BRIGHTNESS_STEP = 10.0  # L* change that reads as brighter / darker


@dataclass(frozen=True)
class ChangeKind:
    kind: str  # appeared, disappeared, recoloured, brighter, darker, changed
    phrase: str  # the region's sentence
    short: str  # the form used in the pair's summary line


def colour_name(lab: np.ndarray) -> str:
    return _NAMES[int(np.argmin(((_PROTO_LAB - lab[None, :]) ** 2).sum(axis=1)))]


def position_words(bbox: tuple[int, int, int, int], size: tuple[int, int]) -> str:
    w, h = size
    cx = (bbox[0] + bbox[2]) / 2 / w
    cy = (bbox[1] + bbox[3]) / 2 / h
    row = "top" if cy < 1 / 3 else ("bottom" if cy > 2 / 3 else "")
    col = "left" if cx < 1 / 3 else ("right" if cx > 2 / 3 else "")
    return " ".join(p for p in (row, col) if p) or "centre"


def size_words(area: int, size: tuple[int, int]) -> str:
    frac = area / float(size[0] * size[1])
    word = "tiny" if frac < 0.002 else "small" if frac < 0.01 else "medium" if frac < 0.05 else "large"
    return f"{word}, {frac * 100:.1f}% of the image"


def _lab(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)


def _ring_px(area: int) -> int:
    return max(3, int(0.15 * np.sqrt(max(area, 1))))


def classify_change(left_lab: np.ndarray, right_lab: np.ndarray, region_mask: np.ndarray) -> ChangeKind:
    """Name the kind of change from the pixels inside ``region_mask`` and a ring around it."""
    ring_px = _ring_px(int(region_mask.sum()))
    grown = cv2.dilate(region_mask.astype(np.uint8), np.ones((2 * ring_px + 1,) * 2, np.uint8)).astype(bool)
    ring = grown & ~region_mask
    inside_l, inside_r = left_lab[region_mask], right_lab[region_mask]
    med_l, med_r = np.median(inside_l, axis=0), np.median(inside_r, axis=0)
    if ring.sum() >= 8:
        surround = np.concatenate([left_lab[ring], right_lab[ring]])
        med_s = np.median(surround, axis=0)
        surround_uniform = float(np.linalg.norm(surround - med_s, axis=1).mean()) < UNIFORM_STD
        spread = lambda px, med: float(np.linalg.norm(px - med, axis=1).mean())  # noqa: E731
        d_l = float(np.linalg.norm(med_l - med_s))
        d_r = float(np.linalg.norm(med_r - med_s))
        l_plain = d_l < SAME_AS_SURROUND and spread(inside_l, med_s) < 2 * UNIFORM_STD
        r_plain = d_r < SAME_AS_SURROUND and spread(inside_r, med_s) < 2 * UNIFORM_STD
        if surround_uniform and l_plain and d_r > STANDS_OUT:
            name = colour_name(med_r)
            return ChangeKind("appeared", f"a {name} object appears in the right image on a uniform "
                                          f"{colour_name(med_s)} surface", f"{name} object appeared")
        if surround_uniform and r_plain and d_l > STANDS_OUT:
            name = colour_name(med_l)
            return ChangeKind("disappeared", f"a {name} object in the left image is gone from the right "
                                             f"image, leaving a uniform {colour_name(med_s)} surface",
                              f"{name} object disappeared")
    name_l, name_r = colour_name(med_l), colour_name(med_r)
    d_ab = float(np.linalg.norm(med_l[1:] - med_r[1:]))
    d_light = float(med_r[0] - med_l[0])
    if name_l != name_r and d_ab > 15.0:
        return ChangeKind("recoloured", f"colour changed from {name_l} to {name_r}",
                          f"colour {name_l} -> {name_r}")
    if abs(d_light) > BRIGHTNESS_STEP and d_ab < 15.0:
        word = "brighter" if d_light > 0 else "darker"
        return ChangeKind(word, f"{word} in the right image ({name_l} to {name_r})", word)
    return ChangeKind("changed", "the content differs", "content changed")


def region_mask(region: Region, change_mask: np.ndarray) -> np.ndarray:
    """The region's own pixels when it carries its mask (neighbouring objects stay apart), else the change mask
    inside its box."""
    if region.mask is not None and tuple(region.mask.get("size", ())) == change_mask.shape:
        return decode_mask(region.mask)
    x0, y0, x1, y1 = region.bbox
    mask = np.zeros(change_mask.shape, bool)
    mask[y0:y1, x0:x1] = change_mask[y0:y1, x0:x1]
    return mask


def describe_regions(result: Result, left: np.ndarray, right: np.ndarray, change_mask: np.ndarray) -> Result:
    """Fill ``description`` of each region and of the pair. ``right`` is already in the left frame."""
    left_lab, right_lab = _lab(left), _lab(right)
    regions = []
    parts = []
    for r in result.regions:
        x0, y0, x1, y1 = r.bbox
        mask = region_mask(r, change_mask)
        if not mask.any():
            mask[y0:y1, x0:x1] = True
        # only the region's pixels and their ring matter: classify on that window, not on the whole image
        bx, by, bw, bh = cv2.boundingRect(mask.astype(np.uint8))
        m = _ring_px(int(mask[by:by + bh, bx:bx + bw].sum())) + 1
        window = (slice(max(0, by - m), by + bh + m), slice(max(0, bx - m), bx + bw + m))
        kind = classify_change(left_lab[window], right_lab[window], mask[window])
        where = position_words(r.bbox, result.size)
        sentence = f"{where[0].upper()}{where[1:]} ({size_words(r.area, result.size)}): {kind.phrase}."
        regions.append(replace(r, description=sentence))
        parts.append(f"{where} ({kind.short})")
    return result.replace(regions=tuple(regions), description=summary_line(parts))


def summary_line(parts: list[str]) -> str:
    if not parts:
        return "No differences found."
    noun = "difference" if len(parts) == 1 else "differences"
    return f"{len(parts)} {noun}: " + ", ".join(parts) + "."
