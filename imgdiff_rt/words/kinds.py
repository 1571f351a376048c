"""The kind of a change, read from both sides of a region: what each side shows inside the changed pixels and
how that compares with the surround and with the other side.

- recoloured: the same shape on both sides (lightness pattern correlated) in another colour;
- brighter / darker: the same shape and colour, lighter or darker;
- appeared / disappeared: one side continues its surround (nothing there) while the other stands out from it;
- replaced: both sides show something, different in shape and colour;
- changed: the same colour and something else differs (texture, material, detail).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from .colours import MIN_PIXELS, ColourName, name_surface, oklab

SAME_SHAPE_CORR = 0.55  # lightness correlation between the sides above which they show one shape
CHANGED_OKLAB = 0.03  # Oklab distance under which a pixel of the region did not really change
CHANGED_SHARE_OF_P90 = 0.35  # ...and under this share of the region's 90th percentile change
LIGHTNESS_STEP = 0.06  # Oklab L change that reads as brighter / darker
HUE_STEP = 0.05  # Oklab a/b change that reads as another colour even under one name
BINS = 6  # per Oklab axis, for the colour histograms that compare a side with its surround
# log2 ratio of the outline's strength right / left: from OUTLINE_ONE_SIDED on, one side has the object's outline
# and the other does not (appeared / disappeared); under OUTLINE_TWO_SIDED, two colours that each differ from their
# surround mean a recolour; from OUTLINE_DECISIVE on, a one-sided outline outweighs a shared shape
OUTLINE_ONE_SIDED = 0.5
OUTLINE_TWO_SIDED = 1.0
OUTLINE_DECISIVE = 1.5
SURROUND_LIKE = 0.45  # histogram overlap with the surround from which a side "continues its surround"
STANDS_OUT_GAP = 0.2  # ...when the other side's overlap is lower by at least this


@dataclass(frozen=True)
class ChangeFacts:
    """What the words are built from, kept in the result so a reader can check them."""

    kind: str
    colour_left: ColourName
    colour_right: ColourName
    shape_corr: float
    surround_left: float  # share of the left side's colours also found around the region (1: like its surround)
    surround_right: float
    lightness_change: float  # Oklab L, right minus left
    outline_left: float = 0.0  # mean lightness gradient along the region's outline on each side
    outline_right: float = 0.0

    @property
    def outline_ratio(self) -> float:
        return float(np.log2((self.outline_right + 1e-3) / (self.outline_left + 1e-3)))

    def to_dict(self) -> dict:
        return {"kind": self.kind, "colour_left": self.colour_left.to_dict(),
                "colour_right": self.colour_right.to_dict(), "shape_corr": round(self.shape_corr, 3),
                "like_surround": [round(self.surround_left, 3), round(self.surround_right, 3)],
                "lightness_change": round(self.lightness_change, 3),
                "outline": [round(self.outline_left, 4), round(self.outline_right, 4)]}


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


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 3:
        return 0.0
    sa, sb = float(a.std()), float(b.std())
    if sa < 1e-3 or sb < 1e-3:
        return 0.0  # a flat side has no shape to share
    return float(((a - a.mean()) * (b - b.mean())).mean() / (sa * sb))


def _outline_strength(light: np.ndarray, mask: np.ndarray) -> float:
    """Mean lightness gradient along the region's outline: an object has an edge there, an empty surface none."""
    gx = cv2.Sobel(light, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(light, cv2.CV_32F, 0, 1, ksize=3)
    m = mask.astype(np.uint8)
    k = np.ones((5, 5), np.uint8)
    band = (cv2.dilate(m, k) > 0) & ~(cv2.erode(m, k) > 0)
    return float(np.hypot(gx, gy)[band].mean()) if band.any() else 0.0


def changed_pixels(left_lab: np.ndarray, right_lab: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The region's pixels that really changed (its mask also holds the gaps the morphology closed)."""
    dist = np.linalg.norm(left_lab - right_lab, axis=-1)
    inside = dist[mask]
    if inside.size == 0:
        return mask
    floor = max(CHANGED_OKLAB, CHANGED_SHARE_OF_P90 * float(np.percentile(inside, 90)))
    changed = mask & (dist > floor)
    return changed if int(changed.sum()) >= MIN_PIXELS else mask


def _same_shape_kind(left: ColourName, right: ColourName, d_light: float, d_ab: float) -> str:
    if left.term != right.term and d_ab >= HUE_STEP:
        return "recoloured"
    if abs(d_light) >= LIGHTNESS_STEP:
        return "brighter" if d_light > 0 else "darker"
    return "recoloured" if d_ab >= HUE_STEP else "changed"


def _kind(f: ChangeFacts, ring_terms: tuple[str | None, str | None], d_ab: float) -> str:
    """The decision, in the order measured best on synth's edits and CLEVR-Change's recolours
    (docs/descriptions.md): one shape on both sides; two different colours that each differ from their own
    surround; an outline on one side only; one side continuing its surround; else by the colour names."""
    left, right = f.colour_left, f.colour_right
    outline = f.outline_ratio
    if f.shape_corr >= SAME_SHAPE_CORR and abs(outline) < OUTLINE_DECISIVE:
        return _same_shape_kind(left, right, f.lightness_change, d_ab)
    if left.term != right.term and left.term != ring_terms[0] and right.term != ring_terms[1] \
            and abs(outline) < OUTLINE_TWO_SIDED and d_ab >= HUE_STEP:
        return "recoloured"
    if outline >= OUTLINE_ONE_SIDED:
        return "appeared"
    if outline <= -OUTLINE_ONE_SIDED:
        return "disappeared"
    if f.shape_corr >= SAME_SHAPE_CORR:
        return _same_shape_kind(left, right, f.lightness_change, d_ab)
    if f.surround_left >= SURROUND_LIKE and f.surround_left - f.surround_right >= STANDS_OUT_GAP:
        return "appeared"
    if f.surround_right >= SURROUND_LIKE and f.surround_right - f.surround_left >= STANDS_OUT_GAP:
        return "disappeared"
    return "recoloured" if left.term != right.term and d_ab >= HUE_STEP else "changed"


def classify(left_rgb: np.ndarray, right_rgb: np.ndarray, mask: np.ndarray) -> ChangeFacts:
    """The kind of change inside ``mask`` (bool HxW) between two HxWx3 uint8 windows in one frame; the windows
    include a ring around the region, the surround each side is compared with."""
    left_lab, right_lab = oklab(left_rgb), oklab(right_rgb)
    changed = changed_pixels(left_lab, right_lab, mask)
    r = ring_px(int(mask.sum()))
    grown = cv2.dilate(mask.astype(np.uint8), np.ones((2 * r + 1,) * 2, np.uint8)).astype(bool)
    ring = grown & ~mask
    in_l, in_r = left_lab[changed], right_lab[changed]
    name_l, name_r = name_surface(in_l), name_surface(in_r)
    corr = _correlation(left_lab[..., 0][mask], right_lab[..., 0][mask])
    like_l, like_r = _like_surround(in_l, left_lab[ring]), _like_surround(in_r, right_lab[ring])
    d_light = float(np.median(in_r[:, 0]) - np.median(in_l[:, 0])) if len(in_l) else 0.0
    d_ab = float(np.linalg.norm(np.median(in_r[:, 1:], axis=0) - np.median(in_l[:, 1:], axis=0))) \
        if len(in_l) else 0.0
    edge_l = _outline_strength(np.ascontiguousarray(left_lab[..., 0]), changed)
    edge_r = _outline_strength(np.ascontiguousarray(right_lab[..., 0]), changed)
    facts = ChangeFacts("changed", name_l, name_r, corr, like_l, like_r, d_light, edge_l, edge_r)
    ring_terms = (name_surface(left_lab[ring]).term, name_surface(right_lab[ring]).term)
    return replace(facts, kind=_kind(facts, ring_terms, d_ab))
