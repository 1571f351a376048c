"""The kind of a change, read from both sides of a region: what each side shows inside the changed pixels and
how that compares with the other side and with the surround.

- recoloured: the same structure on both sides (their edges coincide) in another colour, or two
  colours and neither side decidedly empty (a re-shot object's edges never quite agree);
- brighter / darker: the same structure and colour name, lighter or darker;
- appeared / disappeared: detail (gradient energy) on one side only: an object there, an empty surface on the
  other (an inpainted or bare surface has none);
- changed: the same colour and something else differs (texture, material, detail).
The thresholds were measured on synth's edits and CLEVR-Change's labelled recolours (docs/descriptions.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from imgdiff_rt.words.colours import MIN_PIXELS, ColourName, name_surface, oklab

SAME_STRUCTURE = 0.45  # edge-strength correlation from which both sides show one structure
ONE_SIDED_DETAIL = 0.4  # log2 ratio of the sides' gradient energy from which one side holds an object alone
ONE_SIDED_OUTLINE = 0.5  # the same ratio along the region's outline, when the detail is undecided
CHANGED_OKLAB = 0.03  # Oklab distance under which a pixel of the region did not really change
CHANGED_SHARE_OF_P90 = 0.35  # ...and under this share of the region's 90th percentile change
LIGHTNESS_STEP = 0.06  # Oklab L change that reads as brighter / darker
HUE_STEP = 0.05  # Oklab a/b change that reads as another colour even under one name
MAX_SAMPLE = 4096  # pixels per side that name colours and compare with the surround
BINS = 6  # per Oklab axis, for the colour histograms that compare a side with its surround
SURROUND_LIKE = 0.45  # histogram overlap with the surround from which a side "continues its surround"
STANDS_OUT_GAP = 0.2  # ...when the other side's overlap is lower by at least this


@dataclass(frozen=True)
class ChangeFacts:
    """What the words are built from, kept in the result so a reader can check them."""

    kind: str
    colour_left: ColourName
    colour_right: ColourName
    structure: float  # correlation of the two sides' edge strengths (1: the same edges)
    detail_ratio: float  # log2 of the right side's gradient energy over the left's
    outline_ratio: float  # the same along the region's outline
    surround_left: float  # share of the left side's colours also found around the region (1: like its surround)
    surround_right: float
    lightness_change: float  # Oklab L, right minus left
    hue_change: float  # Oklab a/b distance between the sides' medians

    def to_dict(self) -> dict:
        return {"kind": self.kind, "colour_left": self.colour_left.to_dict(),
                "colour_right": self.colour_right.to_dict(), "structure": round(self.structure, 3),
                "detail_ratio": round(self.detail_ratio, 3), "outline_ratio": round(self.outline_ratio, 3),
                "like_surround": [round(self.surround_left, 3), round(self.surround_right, 3)],
                "lightness_change": round(self.lightness_change, 3)}


def ring_px(area: int) -> int:
    return max(3, int(0.15 * np.sqrt(max(area, 1))))


def _histogram(lab: np.ndarray) -> np.ndarray:
    idx = np.clip(((lab - (0.0, -0.4, -0.4)) / (1.0, 0.8, 0.8) * BINS).astype(np.int64), 0, BINS - 1)
    hist = np.bincount((idx[:, 0] * BINS + idx[:, 1]) * BINS + idx[:, 2], minlength=BINS ** 3).astype(np.float64)
    return hist / max(hist.sum(), 1.0)


def _like_surround(inside: np.ndarray, ring: np.ndarray) -> float:
    """Share of the inside's colour histogram that the surround's covers (1: the side continues its surround)."""
    if len(inside) == 0 or len(ring) == 0:
        return 0.0
    return float(np.minimum(_histogram(inside), _histogram(ring)).sum())


def _gradients(light: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    light = np.ascontiguousarray(light)
    return cv2.Sobel(light, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(light, cv2.CV_32F, 0, 1, ksize=3)


def _log_ratio(right: float, left: float) -> float:
    return float(np.log2((right + 1e-3) / (left + 1e-3)))


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    sa, sb = float(a.std()), float(b.std())
    if a.size < 3 or sa < 1e-6 or sb < 1e-6:
        return 0.0  # a side with no edges shares no structure
    return float(((a - a.mean()) * (b - b.mean())).mean() / (sa * sb))


def _structure(left_l: np.ndarray, right_l: np.ndarray, changed: np.ndarray) -> tuple[float, float, float]:
    """(edge agreement, detail ratio, outline ratio) over the changed pixels and their edge. Edges agree when
    their strengths correlate, whichever way they step: an object turned from darker to lighter than its floor
    keeps its outline with the sign flipped."""
    (lx, ly), (rx, ry) = _gradients(left_l), _gradients(right_l)
    m = changed.astype(np.uint8)
    k = np.ones((5, 5), np.uint8)
    near = cv2.dilate(m, k) > 0
    outline = near & ~(cv2.erode(m, k) > 0)
    edges_l, edges_r = np.sqrt(lx ** 2 + ly ** 2), np.sqrt(rx ** 2 + ry ** 2)
    agree = _correlation(edges_l[near], edges_r[near])
    energy = lambda edges, where: float(np.sqrt((edges[where] ** 2).mean())) if where.any() else 0.0  # noqa: E731
    detail = _log_ratio(energy(edges_r, near), energy(edges_l, near))
    edge = _log_ratio(energy(edges_r, outline), energy(edges_l, outline))
    return agree, detail, edge


def _sample(pixels: np.ndarray) -> np.ndarray:
    """At most MAX_SAMPLE pixels, evenly spread: a mode and medians need no more, and big regions stay cheap."""
    if len(pixels) <= MAX_SAMPLE:
        return pixels
    return pixels[np.linspace(0, len(pixels) - 1, MAX_SAMPLE).astype(np.int64)]


def changed_pixels(left_lab: np.ndarray, right_lab: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The region's pixels that really changed (its mask also holds the gaps the morphology closed)."""
    dist = np.linalg.norm(left_lab - right_lab, axis=-1)
    inside = dist[mask]
    if inside.size == 0:
        return mask
    floor = max(CHANGED_OKLAB, CHANGED_SHARE_OF_P90 * float(np.percentile(inside, 90)))
    changed = mask & (dist > floor)
    return changed if int(changed.sum()) >= MIN_PIXELS else mask


def _same_structure_kind(f: ChangeFacts) -> str:
    if f.colour_left.term != f.colour_right.term and f.hue_change >= HUE_STEP:
        return "recoloured"
    if abs(f.lightness_change) >= LIGHTNESS_STEP:
        return "brighter" if f.lightness_change > 0 else "darker"
    return "recoloured" if f.hue_change >= HUE_STEP else "changed"


def decide(f: ChangeFacts) -> str:
    """The kind, in the order measured best: one structure on both sides; detail on one side only; an outline on
    one side only; one side continuing its surround; else by the colour names."""
    if f.structure >= SAME_STRUCTURE:
        return _same_structure_kind(f)
    for ratio, limit in ((f.detail_ratio, ONE_SIDED_DETAIL), (f.outline_ratio, ONE_SIDED_OUTLINE)):
        if ratio >= limit:
            return "appeared"
        if ratio <= -limit:
            return "disappeared"
    if f.surround_left >= SURROUND_LIKE and f.surround_left - f.surround_right >= STANDS_OUT_GAP:
        return "appeared"
    if f.surround_right >= SURROUND_LIKE and f.surround_right - f.surround_left >= STANDS_OUT_GAP:
        return "disappeared"
    if f.colour_left.term != f.colour_right.term and f.hue_change >= HUE_STEP:
        return "recoloured"
    return "changed"


def classify(left_rgb: np.ndarray, right_rgb: np.ndarray, mask: np.ndarray) -> ChangeFacts:
    """The kind of change inside ``mask`` (bool HxW) between two HxWx3 uint8 windows in one frame; the windows
    include a ring around the region, the surround each side is compared with."""
    left_lab, right_lab = oklab(left_rgb), oklab(right_rgb)
    changed = changed_pixels(left_lab, right_lab, mask)
    r = ring_px(int(mask.sum()))
    grown = cv2.dilate(mask.astype(np.uint8), np.ones((2 * r + 1,) * 2, np.uint8)).astype(bool)
    ring = grown & ~mask
    in_l, in_r = _sample(left_lab[changed]), _sample(right_lab[changed])
    agree, detail, edge = _structure(left_lab[..., 0], right_lab[..., 0], changed)
    med_l, med_r = np.median(in_l, axis=0), np.median(in_r, axis=0)
    facts = ChangeFacts("changed", name_surface(in_l), name_surface(in_r), agree, detail, edge,
                        _like_surround(in_l, _sample(left_lab[ring])), _like_surround(in_r, _sample(right_lab[ring])),
                        float(med_r[0] - med_l[0]), float(np.linalg.norm(med_r[1:] - med_l[1:])))
    return ChangeFacts(decide(facts), *list(vars(facts).values())[1:])
