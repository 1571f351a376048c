"""Moved light: a shadow cast from a light that moved, or a patch the light now reaches, changes a surface's
lightness by a smoothly varying gain and leaves its colour and texture alone. A global or coarse-grid light
compensation cannot follow a shadow's shape, so the region stays in the difference. Here each region is tested
on its own: a lightness gain field, smoothed at a scale well under an object's size, is fitted to the region and
its surroundings and applied to the right image; a region that then no longer differs was light, not an object.
An object that appeared, vanished or changed colour has a sharp outline, texture or hue a smooth grey gain
cannot produce."""

from __future__ import annotations

import math

import cv2
import numpy as np

LIGHT_OFFSET = 8.0  # added to lightness before taking ratios (as the light compensation does): dark pixels


def explained_by_light(left: np.ndarray, right: np.ndarray, own: np.ndarray, bbox: tuple[int, int, int, int],
                       sigma: float, residual: callable) -> float:
    """The mean of ``residual(left_window, corrected_right_window)`` over the region's own pixels after a smooth
    lightness gain (Gaussian ``sigma`` px) fitted around the region is applied to the right image."""
    h, w = own.shape
    pad = int(math.ceil(3 * sigma))
    x0, y0, x1, y1 = max(0, bbox[0] - pad), max(0, bbox[1] - pad), min(w, bbox[2] + pad), min(h, bbox[3] + pad)
    lw = left[y0:y1, x0:x1].astype(np.float32)
    rw = right[y0:y1, x0:x1].astype(np.float32)
    ratio = np.log((lw.mean(axis=2) + LIGHT_OFFSET) / (rw.mean(axis=2) + LIGHT_OFFSET))
    gain = np.exp(cv2.GaussianBlur(ratio, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE))
    corrected = np.clip(rw * gain[..., None] + 0.5, 0, 255).astype(np.uint8)
    diff = residual(left[y0:y1, x0:x1], corrected)
    inside = own[y0:y1, x0:x1]
    return float(diff[inside].mean()) if inside.any() else 0.0
