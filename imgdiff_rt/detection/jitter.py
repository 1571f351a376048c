"""Synthetic capture jitter for the right image of a pair: a small viewpoint change (a random homography plus
a smooth displacement field standing in for parallax), a light change (per-channel gain and offset, gamma, a
slowly varying illumination gradient) and sensor noise. Deterministic for a seed.

The viewpoint warp maps right-image pixels to new positions; ``move_box`` carries a box along the same warp,
so truth drawn on the unjittered right image can be placed on the jittered one.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

SHIFT_SHARE = 0.012  # corner displacement of the homography, as a share of the longer side
PARALLAX_PX = 1.5  # amplitude of the smooth displacement field
GAIN_RANGE = (0.8, 1.2)
CHANNEL_GAIN_SPREAD = 0.05  # white-balance drift between channels
OFFSET_RANGE = (-12.0, 12.0)
GAMMA_RANGE = (0.85, 1.15)
GRADIENT_SHARE = 0.12  # illumination varies by up to this much across the image
NOISE_SIGMA = 2.5


@dataclass(frozen=True)
class Jitter:
    """The sampled jitter: where each output pixel samples the input (``map_x``, ``map_y``) and what was done."""

    map_x: np.ndarray
    map_y: np.ndarray
    facts: dict


def sample_jitter(width: int, height: int, rng: np.random.Generator) -> Jitter:
    side = max(width, height)
    corners = np.float32([[0, 0], [width, 0], [width, height], [0, height]])
    moved = corners + rng.uniform(-1, 1, (4, 2)).astype(np.float32) * SHIFT_SHARE * side
    # out_to_in: output pixel -> input pixel (what remap wants)
    out_to_in = cv2.getPerspectiveTransform(moved, corners)
    gx, gy = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    pts = cv2.perspectiveTransform(np.stack([gx, gy], 2).reshape(-1, 1, 2), out_to_in).reshape(height, width, 2)
    coarse = rng.uniform(-1, 1, (2, 4, 4)).astype(np.float32) * PARALLAX_PX
    px = cv2.resize(coarse[0], (width, height), interpolation=cv2.INTER_CUBIC)
    py = cv2.resize(coarse[1], (width, height), interpolation=cv2.INTER_CUBIC)
    facts = {"corner_shift_px": round(float(np.abs(moved - corners).max()), 2), "parallax_px": PARALLAX_PX}
    return Jitter(pts[..., 0] + px, pts[..., 1] + py, facts)


def apply_light(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    h, w = image.shape[:2]
    gain = rng.uniform(*GAIN_RANGE) * (1 + rng.uniform(-1, 1, 3) * CHANNEL_GAIN_SPREAD)
    offset = rng.uniform(*OFFSET_RANGE)
    gamma = rng.uniform(*GAMMA_RANGE)
    angle = rng.uniform(0, 2 * np.pi)
    gx, gy = np.meshgrid(np.linspace(-0.5, 0.5, w), np.linspace(-0.5, 0.5, h))
    gradient = 1 + GRADIENT_SHARE * (np.cos(angle) * gx + np.sin(angle) * gy)
    x = (image.astype(np.float32) / 255.0) ** gamma * 255.0
    x = x * gain[None, None, :] * gradient[..., None] + offset
    x = x + rng.normal(0, NOISE_SIGMA, x.shape)
    facts = {"gain": [round(float(g), 3) for g in gain], "offset": round(float(offset), 2),
             "gamma": round(float(gamma), 3), "gradient": GRADIENT_SHARE, "noise_sigma": NOISE_SIGMA}
    return np.clip(x + 0.5, 0, 255).astype(np.uint8), facts


def jitter_image(image: np.ndarray, seed: int) -> tuple[np.ndarray, Jitter, dict]:
    """The jittered image, the warp used, and the facts of the light change."""
    rng = np.random.default_rng([seed, 0x717])
    h, w = image.shape[:2]
    warp = sample_jitter(w, h, rng)
    warped = cv2.remap(image, warp.map_x, warp.map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    lit, light = apply_light(warped, rng)
    return lit, warp, light


def move_box(box: tuple[int, int, int, int], warp: Jitter) -> tuple[int, int, int, int]:
    """The box that holds ``box``'s input pixels after the warp (input -> output is the inverse map)."""
    x0, y0, x1, y1 = box
    h, w = warp.map_x.shape
    inside = ((warp.map_x >= x0) & (warp.map_x < x1) & (warp.map_y >= y0) & (warp.map_y < y1))
    ys, xs = np.nonzero(inside)
    if len(xs) == 0:
        return box
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
