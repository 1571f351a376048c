"""Pixel-exact pairs (screenshot-like: only the changed pixels differ) at any size, with exact truth: scikit-image's
astronaut resized to the size, five random rectangles repainted in the right image (about 1% of the pixels).
The classical-mode cells compare imgdiff-rt with odiff and pixelmatch on them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: the sizes the classical cells run at: name -> (width, height)
SIZES = {"1mp": (1280, 800), "8mp": (3840, 2160), "8k": (7680, 4320)}
PATCHES = 5
CHANGED_SHARE = 0.01  # of the image, over all patches together


@dataclass(frozen=True)
class ExactPair:
    name: str
    left: Path
    right: Path
    truth: list[tuple[int, int, int, int]]  # x0, y0, x1, y1 (exclusive)


def make_pair(width: int, height: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list]:
    """(left, right, truth boxes): ``right`` is ``left`` with PATCHES rectangles repainted (flat colour plus a
    gradient, so a patch differs in every pixel)."""
    import cv2
    from skimage import data as samples

    rng = np.random.default_rng(seed)
    left = cv2.resize(samples.astronaut(), (width, height), interpolation=cv2.INTER_LINEAR)
    right = left.copy()
    side = int(np.sqrt(CHANGED_SHARE * width * height / PATCHES))
    truth = []
    while len(truth) < PATCHES:
        w, h = int(side * rng.uniform(0.7, 1.3)), int(side * rng.uniform(0.7, 1.3))
        x0, y0 = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
        box = (x0, y0, x0 + w, y0 + h)
        if any(not (box[2] + side <= b[0] or b[2] + side <= box[0] or box[3] + side <= b[1] or b[3] + side <= box[1])
               for b in truth):
            continue  # patches apart by a patch side: separate regions for every tool
        colour = rng.integers(0, 256, 3)
        ramp = np.linspace(0, 60, w, dtype=np.float32)[None, :, None]
        patch = np.clip(colour[None, None, :] + ramp, 0, 255).astype(np.uint8)
        patch = np.ascontiguousarray(np.broadcast_to(patch, (h, w, 3)))
        same = (patch == left[y0:y0 + h, x0:x0 + w]).all(axis=2)
        patch[same] = 255 - patch[same]  # every pixel of the patch really differs
        right[y0:y0 + h, x0:x0 + w] = patch
        truth.append(box)
    return left, right, truth


def write_pairs(folder: Path, sizes: dict[str, tuple[int, int]] | None = None, seed: int = 0) -> list[ExactPair]:
    """The pairs as PNG files under ``folder`` (made once; an existing file is reused)."""
    import json

    from imgdiff_rt.imageio import write_png_atomic

    pairs = []
    for name, (width, height) in (sizes or SIZES).items():
        sub = folder / name
        files = sub / "left.png", sub / "right.png", sub / "truth.json"
        if not all(f.is_file() for f in files):
            sub.mkdir(parents=True, exist_ok=True)
            left, right, truth = make_pair(width, height, seed)
            write_png_atomic(files[0], left)
            write_png_atomic(files[1], right)
            files[2].write_text(json.dumps({"boxes": truth}))
        truth = [tuple(b) for b in json.loads(files[2].read_text())["boxes"]]
        pairs.append(ExactPair(name, files[0], files[1], truth))
    return pairs
