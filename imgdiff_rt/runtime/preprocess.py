"""Array-in, array-out preprocessing shared by the local pipeline and Triton's Python-backend models.

``letterbox_batch`` turns RGB images into the segmenter's input (Ultralytics' letterbox: aspect kept, grey
114 padding, centred, RGB 0..1) and returns how to map boxes back; ``clip_pixels`` turns crops into CLIP's
input (shortest side resized, centre crop, mean/std), as the bundle's CLIP image processor does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from imgdiff_rt.models.specs import CLIP_MEAN, CLIP_STD

LETTERBOX_PAD = 114  # Ultralytics' letterbox grey (export/quantize.py calibrates through letterbox() here)


@dataclass(frozen=True)
class Letterbox:
    """How one image was placed in the square input: ``input = original * ratio + (left, top)``."""

    ratio: float
    left: int
    top: int
    width: int  # original size
    height: int

    def boxes_to_original(self, boxes: np.ndarray) -> np.ndarray:
        """(N, 4) xyxy in input pixels -> original pixels, clipped to the image."""
        b = (np.asarray(boxes, np.float32).reshape(-1, 4) - [self.left, self.top, self.left, self.top]) / self.ratio
        b[:, [0, 2]] = b[:, [0, 2]].clip(0, self.width)
        b[:, [1, 3]] = b[:, [1, 3]].clip(0, self.height)
        return b


def _rgb_uint8(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    image = np.ascontiguousarray(image[..., :3])
    if image.dtype != np.uint8:
        image = np.clip(image * (255.0 if image.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    return image


def letterbox(image: np.ndarray, imgsz: int) -> tuple[np.ndarray, Letterbox]:
    """RGB (H, W, 3) -> float32 (3, imgsz, imgsz) in 0..1 and its Letterbox."""
    image = _rgb_uint8(image)
    h, w = image.shape[:2]
    ratio = min(imgsz / h, imgsz / w)
    nh, nw = max(1, round(h * ratio)), max(1, round(w * ratio))
    resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    canvas = np.full((imgsz, imgsz, 3), LETTERBOX_PAD, np.uint8)
    top, left = (imgsz - nh) // 2, (imgsz - nw) // 2
    canvas[top:top + nh, left:left + nw] = resized
    return canvas.transpose(2, 0, 1).astype(np.float32) / 255.0, Letterbox(ratio, left, top, w, h)


def letterbox_batch(images: Sequence[np.ndarray], imgsz: int) -> tuple[np.ndarray, list[Letterbox]]:
    """Several RGB images -> one (N, 3, imgsz, imgsz) batch (Img-Diff segments both images together)."""
    done = [letterbox(im, imgsz) for im in images]
    return np.stack([d[0] for d in done]), [d[1] for d in done]


def clip_pixels(crops: Sequence[np.ndarray], image_size: int, mean: Sequence[float] = CLIP_MEAN,
                std: Sequence[float] = CLIP_STD) -> np.ndarray:
    """RGB uint8 crops of any size -> float32 (N, 3, S, S): shortest side to S (bicubic), centre crop,
    rescale to 0..1, normalise. A crop under 1 px a side is padded to 1 px so nothing is empty."""
    out = np.empty((len(crops), 3, image_size, image_size), np.float32)
    m, s = np.asarray(mean, np.float32), np.asarray(std, np.float32)
    for i, crop in enumerate(crops):
        crop = _rgb_uint8(crop)
        h, w = max(1, crop.shape[0]), max(1, crop.shape[1])
        if crop.size == 0:
            crop = np.zeros((h, w, 3), np.uint8)
        scale = image_size / min(h, w)
        nh, nw = max(image_size, round(h * scale)), max(image_size, round(w * scale))
        resized = cv2.resize(crop, (nw, nh), interpolation=cv2.INTER_CUBIC)
        top, left = (nh - image_size) // 2, (nw - image_size) // 2
        square = resized[top:top + image_size, left:left + image_size].astype(np.float32) / 255.0
        out[i] = ((square - m) / s).transpose(2, 0, 1)
    return out


def clip_norm_from(folder: str | Path | None) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) from a bundle folder's preprocessor_config.json, else OpenAI CLIP's."""
    file = Path(folder) / "preprocessor_config.json" if folder else None
    if file is not None and file.is_file():
        try:
            cfg = json.loads(file.read_text(encoding="utf-8"))
            return tuple(cfg["image_mean"]), tuple(cfg["image_std"])
        except (OSError, ValueError, KeyError, TypeError, RecursionError):
            pass
    return CLIP_MEAN, CLIP_STD
