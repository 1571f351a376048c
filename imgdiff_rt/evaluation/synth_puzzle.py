"""Magazine-style spot-the-difference edits (``synth --level 3``): 4-7 edits per photo of 0.3-2% of the image
each, many of them faint (mean CIELAB deltaE 8-20), one touching the image border, one long and thin (a row of
small lamps or a stripe), one placed next to another edit. The pair stays pixel-exact outside the edits, as a
printed puzzle's two panels are. Each truth change records its ``shape`` so a benchmark can say which are missed.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from skimage.segmentation import felzenszwalb

PUZZLE_LEVEL = 3
PUZZLE_AREA = (0.003, 0.02)  # an edit's changed pixels as a share of the image
PUZZLE_SPOTS = (4, 7)  # edits per photo, both ends included
PUZZLE_SCALES = (150.0, 300.0, 600.0)  # Felzenszwalb scales tried for candidate segments
FAINT_DELTA_E = (8.0, 20.0)  # mean deltaE of a low-contrast edit
FAINT_SHARE = 0.5  # share of the edits that are low-contrast
SHAPES = ("border", "thin", "adjacent")  # each puzzle has one of each when the photo allows; the rest "object"
ADJACENT_GAP = (0.01, 0.03)  # gap between an adjacent edit and its neighbour, share of the image diagonal
THIN_LENGTH = (0.2, 0.45)  # a thin edit's length, share of the longer side
MIN_COMPACTNESS = 0.35  # area over box area of an object-like segment


def segments(image: np.ndarray) -> list[np.ndarray]:
    """Object-like segments in the puzzle's size range, border-touching ones included, as boolean masks."""
    h, w = image.shape[:2]
    lo, hi = (a * h * w for a in PUZZLE_AREA)
    out = []
    for scale in PUZZLE_SCALES:
        labels = felzenszwalb(image, scale=scale, sigma=0.8, min_size=int(lo / 2))
        for lab in np.unique(labels):
            m = labels == lab
            area = int(m.sum())
            if not lo <= area <= hi:
                continue
            ys, xs = np.nonzero(m)
            if area / float((ys.max() + 1 - ys.min()) * (xs.max() + 1 - xs.min())) < MIN_COMPACTNESS:
                continue
            filled = m.astype(np.uint8)
            contours, _ = cv2.findContours(filled, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(filled, contours, -1, 1, thickness=-1)
            out.append(filled.astype(bool))
    return out


def touches_border(mask: np.ndarray) -> bool:
    return bool(mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())


def plan(rng: np.random.Generator, spots: int | None) -> list[tuple[str, bool]]:
    """(shape, faint) per edit, in the order they are made (an adjacent edit needs one made before it)."""
    n = int(rng.integers(PUZZLE_SPOTS[0], PUZZLE_SPOTS[1] + 1)) if spots is None else spots
    shapes = ["object"] + list(SHAPES) + ["object"] * max(0, n - 1 - len(SHAPES))
    shapes = shapes[:n]
    return [(s, bool(rng.random() < FAINT_SHARE)) for s in shapes]


def tint(img: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Shift the region's CIELAB colour by a random direction so its mean deltaE lands in FAINT_DELTA_E: the
    low-contrast edit a careful eye finds (a slightly lighter roof, a greener shirt)."""
    target = float(rng.uniform(*FAINT_DELTA_E))
    lab = cv2.cvtColor(img.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    direction = rng.normal(size=3)
    direction[0] *= 0.6  # lightness moves less than colour: faint edits are mostly hue and chroma
    direction /= max(float(np.linalg.norm(direction)), 1e-6)
    out = img.copy()
    for _ in range(3):  # gamut clipping eats part of the shift: scale it until the mean lands on target
        shifted = lab[mask] + direction * target
        rgb = cv2.cvtColor(shifted.reshape(-1, 1, 3).astype(np.float32), cv2.COLOR_LAB2RGB).reshape(-1, 3)
        out[mask] = np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)
        got = float(np.linalg.norm(_lab(out[mask]) - lab[mask], axis=-1).mean())
        if got >= FAINT_DELTA_E[0]:
            break
        target *= FAINT_DELTA_E[0] / max(got, 1e-3) * 1.1
    return out


def _lab(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb.reshape(-1, 1, 3).astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB).reshape(-1, 3)


def thin_mask(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A row of small lamps or a stripe along a straight line near horizontal or vertical (a roof line, a pole),
    covering about 0.3-1% of the image."""
    h, w = shape
    length = float(rng.uniform(*THIN_LENGTH)) * max(h, w)
    vertical = rng.random() < 0.3
    angle = (math.pi / 2 if vertical else 0.0) + float(rng.uniform(-0.35, 0.35))
    dx, dy = math.cos(angle) * length, math.sin(angle) * length
    x0 = float(rng.uniform(0.05 * w, max(0.05 * w + 1, w * 0.95 - abs(dx)))) - min(0.0, dx)
    y0 = float(rng.uniform(0.05 * h, max(0.05 * h + 1, h * 0.95 - abs(dy)))) - min(0.0, dy)
    m = np.zeros((h, w), np.uint8)
    side = math.sqrt(h * w)
    if rng.random() < 0.5:  # lamps: disks a little more than their diameter apart
        r = max(3, int(round(side * float(rng.uniform(0.008, 0.012)))))
        step = r * float(rng.uniform(2.6, 3.4))
        for k in range(int(length // step) + 1):
            cv2.circle(m, (int(round(x0 + dx * k * step / length)), int(round(y0 + dy * k * step / length))), r, 1,
                       -1)
    else:
        thickness = max(3, int(round(side * float(rng.uniform(0.01, 0.016)))))
        cv2.line(m, (int(round(x0)), int(round(y0))), (int(round(x0 + dx)), int(round(y0 + dy))), 1, thickness)
    return m.astype(bool)


def box_gap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    dx = max(0, a[0] - b[2], b[0] - a[2])
    dy = max(0, a[1] - b[3], b[1] - a[3])
    return math.hypot(dx, dy)


def paste_at(img: np.ndarray, mask: np.ndarray, box: tuple[int, int, int, int], x: int,
             y: int) -> tuple[np.ndarray, np.ndarray]:
    """The region's pixels (``mask`` inside ``box``) copied with the box's corner at (x, y): the new image and
    the pasted mask."""
    x0, y0, x1, y1 = box
    patch = mask[y0:y1, x0:x1]
    out = img.copy()
    out[y:y + y1 - y0, x:x + x1 - x0][patch] = img[y0:y1, x0:x1][patch]
    pasted = np.zeros_like(mask)
    pasted[y:y + y1 - y0, x:x + x1 - x0] = patch
    return out, pasted


def place_next_to(img: np.ndarray, mask: np.ndarray, neighbour: tuple[int, int, int, int],
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray] | None:
    """A copy of the segment pasted beside ``neighbour``'s box with a gap of ADJACENT_GAP of the diagonal;
    returns the new image and the pasted mask, or None when no side has room."""
    h, w = mask.shape
    ys, xs = np.nonzero(mask)
    sx0, sy0, sx1, sy1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    bw, bh = sx1 - sx0, sy1 - sy0
    gap = int(round(float(rng.uniform(*ADJACENT_GAP)) * math.hypot(w, h)))
    nx0, ny0, nx1, ny1 = neighbour
    for side in rng.permutation(4):
        if side == 0:
            x, y = nx1 + gap, int(rng.integers(ny0 - bh // 2, ny1 - bh // 2 + 1))
        elif side == 1:
            x, y = nx0 - gap - bw, int(rng.integers(ny0 - bh // 2, ny1 - bh // 2 + 1))
        elif side == 2:
            x, y = int(rng.integers(nx0 - bw // 2, nx1 - bw // 2 + 1)), ny1 + gap
        else:
            x, y = int(rng.integers(nx0 - bw // 2, nx1 - bw // 2 + 1)), ny0 - gap - bh
        if x < 0 or y < 0 or x + bw > w or y + bh > h:
            continue
        return paste_at(img, mask, (sx0, sy0, sx1, sy1), x, y)
    return None
