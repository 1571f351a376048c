"""Synthetic capture jitter for the right image of a pair: a small viewpoint change (a random homography plus
a smooth displacement field standing in for parallax), a light change (per-channel gain and offset, gamma, a
slowly varying illumination gradient) and sensor noise. Deterministic for a seed.

Two strengths: ``mild``, a steady hand; ``strong``, what a rendered scene's camera and light jitter do
(CLEVR-Change's nonsemantic pairs): a zoom in or out, parallax of several pixels that varies over shorter
distances, and a moved light (a soft shadow appears, another patch brightens).

The viewpoint warp maps right-image pixels to new positions; ``move_box`` carries a box along the same warp,
so truth drawn on the unjittered right image can be placed on the jittered one.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Strength:
    shift_share: float  # corner displacement of the homography, as a share of the longer side
    parallax_px: float  # amplitude of the smooth displacement field
    parallax_cells: int  # control points per side of that field (more: parallax varies over shorter distances)
    zoom: tuple[float, float]  # relative scale change about a random centre, in or out
    lights: int  # moved-light patches: a soft shadow, then a brightened patch, ...


JITTER_STRENGTHS = {"mild": Strength(0.012, 1.5, 4, (0.0, 0.0), 0),
                    "strong": Strength(0.012, 4.0, 6, (0.03, 0.07), 2)}
LIGHT_PATCH_SHARE = (0.06, 0.14)  # a moved light's patch: axes as a share of the longer side
LIGHT_PATCH_GAIN = (0.15, 0.35)  # how much it darkens (a shadow) or brightens
LIGHT_PATCH_SOFTNESS = 0.25  # penumbra: Gaussian sigma as a share of the patch's shorter axis
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


def sample_jitter(width: int, height: int, rng: np.random.Generator, strength: Strength = JITTER_STRENGTHS["mild"],
                  ) -> Jitter:
    side = max(width, height)
    corners = np.float32([[0, 0], [width, 0], [width, height], [0, height]])
    zoom, scaled = 1.0, corners
    if strength.zoom[1] > 0:  # (mild draws nothing here: its pairs stay those measured before)
        zoom = 1.0 + float(rng.uniform(*strength.zoom)) * (1 if rng.random() < 0.5 else -1)
        centre = np.float32([width, height]) * rng.uniform(0.35, 0.65, 2).astype(np.float32)
        scaled = centre + (corners - centre) * zoom
    moved = scaled + rng.uniform(-1, 1, (4, 2)).astype(np.float32) * strength.shift_share * side
    # out_to_in: output pixel -> input pixel (what remap wants)
    out_to_in = cv2.getPerspectiveTransform(moved, corners)
    gx, gy = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    pts = cv2.perspectiveTransform(np.stack([gx, gy], 2).reshape(-1, 1, 2), out_to_in).reshape(height, width, 2)
    cells = strength.parallax_cells
    coarse = rng.uniform(-1, 1, (2, cells, cells)).astype(np.float32) * strength.parallax_px
    px = cv2.resize(coarse[0], (width, height), interpolation=cv2.INTER_CUBIC)
    py = cv2.resize(coarse[1], (width, height), interpolation=cv2.INTER_CUBIC)
    facts = {"corner_shift_px": round(float(np.abs(moved - corners).max()), 2),
             "parallax_px": strength.parallax_px, "zoom": round(zoom, 4)}
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


def moved_light(image: np.ndarray, count: int, rng: np.random.Generator) -> tuple[np.ndarray, list]:
    """Soft-edged elliptical patches darkened (a shadow cast from the moved light) and brightened (where one
    was): lightness changes no object made."""
    h, w = image.shape[:2]
    gain = np.ones((h, w), np.float32)
    patches = []
    for k in range(count):
        axes = rng.uniform(*LIGHT_PATCH_SHARE, 2) * max(h, w) / 2
        centre = (int(rng.uniform(0.15, 0.85) * w), int(rng.uniform(0.15, 0.85) * h))
        patch = np.zeros((h, w), np.float32)
        cv2.ellipse(patch, centre, (int(axes[0]), int(axes[1])), float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
        patch = cv2.GaussianBlur(patch, (0, 0), LIGHT_PATCH_SOFTNESS * float(axes.min()))
        amount = float(rng.uniform(*LIGHT_PATCH_GAIN)) * (-1 if k % 2 == 0 else 1)
        gain *= 1.0 + amount * patch
        patches.append({"centre": list(centre), "gain": round(1.0 + amount, 3)})
    lit = np.clip(image.astype(np.float32) * gain[..., None] + 0.5, 0, 255).astype(np.uint8)
    return lit, patches


def jitter_image(image: np.ndarray, seed: int, strength: str = "mild") -> tuple[np.ndarray, Jitter, dict]:
    """The jittered image, the warp used, and the facts of the light change."""
    rng = np.random.default_rng([seed, 0x717])
    h, w = image.shape[:2]
    spec = JITTER_STRENGTHS[strength]
    warp = sample_jitter(w, h, rng, spec)
    warped = cv2.remap(image, warp.map_x, warp.map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    lit, light = apply_light(warped, rng)
    if spec.lights:
        lit, patches = moved_light(lit, spec.lights, rng)
        light = {**light, "moved_light": patches}
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
