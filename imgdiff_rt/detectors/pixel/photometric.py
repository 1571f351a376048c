"""Photometric compensation: make the right image's light match the left one before differencing, so that
exposure, white balance and slowly varying illumination are not reported as changes.

Two robust steps, per colour channel: a global gain and offset fitted by trimmed least squares (pixels that
really changed are the largest residuals and are left out of the refit), then a slowly varying gain field from
the median left/right ratio in coarse cells (a change smaller than half a cell does not move the median).
"""

from __future__ import annotations

import cv2
import numpy as np

from imgdiff_rt.detectors.pixel.flow import smooth

GRID_CELLS = 6  # cells along the longer side for the slowly varying gain
TRIM_QUANTILE = 0.5  # each refit keeps the pixels whose residual is under this quantile
FIT_ROUNDS = 3
GAIN_LIMITS = (0.5, 2.0)  # a light change beyond these is not compensated (it is more likely a real change)


def _affine_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """y ~ gain * x + offset by trimmed least squares: start from "same light" (gain 1, the median offset), then
    refit on the pixels the current fit explains best. Changed pixels are the largest residuals from the first
    step on, so a change covering less than half the image cannot pull the fit."""
    if x.size < 16:  # (almost) no overlap to fit on: leave the light as it is
        return 1.0, 0.0
    gain, offset = 1.0, float(np.median(y - x))
    for _ in range(FIT_ROUNDS):
        residual = np.abs(y - (gain * x + offset))
        k = int(TRIM_QUANTILE * (residual.size - 1))
        keep = residual <= np.partition(residual, k)[k]  # the TRIM_QUANTILE quantile, without interpolation
        xs, ys = x[keep], y[keep]
        var = float(xs.var())
        if xs.size < 16 or var < 1e-6:
            return gain, offset
        gain = float(np.clip(((xs - xs.mean()) * (ys - ys.mean())).mean() / var, *GAIN_LIMITS))
        offset = float(ys.mean() - gain * xs.mean())
    return gain, offset


def unchanged_pixels(left: np.ndarray, right: np.ndarray, levels: int = 0) -> np.ndarray:
    """Per pixel of two uint8 RGB images (or pixel lists): no channel differs by more than ``levels``."""
    return np.abs(left.astype(np.int16) - right).max(axis=-1) <= levels


def _mostly_identical(left_px: np.ndarray, right_px: np.ndarray) -> bool:
    same = unchanged_pixels(left_px, right_px)
    return same.size > 0 and float(same.mean()) >= 0.5


def _cell_medians(ratio: np.ndarray, valid: np.ndarray, cells: tuple[int, int]) -> np.ndarray:
    rows, cols = cells
    h, w = ratio.shape
    grid = np.ones((rows, cols), np.float32)
    for i in range(rows):
        for j in range(cols):
            ys, ye = i * h // rows, (i + 1) * h // rows
            xs, xe = j * w // cols, (j + 1) * w // cols
            vals = ratio[ys:ye, xs:xe][valid[ys:ye, xs:xe]]
            if vals.size >= 16:
                grid[i, j] = float(np.median(vals))
    return grid


def compensate(left: np.ndarray, right: np.ndarray, valid: np.ndarray | None = None,
               local: bool = True) -> tuple[np.ndarray, dict]:
    """``right`` (HxWx3 uint8) with its light matched to ``left``; and the fitted gains/offsets (for the record).

    ``valid`` limits the fit to where the right image has content (after registration); ``local=False`` fits
    the global gain and offset only."""
    h, w = left.shape[:2]
    mask = np.ones((h, w), bool) if valid is None else valid
    step = max(1, int(np.sqrt(h * w / 40000)))  # fit on ~40k pixels: plenty for two numbers per channel
    sub = mask[::step, ::step]
    if _mostly_identical(left[::step, ::step][sub], right[::step, ::step][sub]):
        # more than half the pixels are exactly the same: the light did not change (an edited copy, a fixed
        # camera's lossless frames), and every fit below would return "no change" after all that work
        return right, {"gain": [1.0] * 3, "offset": [0.0] * 3, "note": "most pixels identical: light unchanged"}
    lf, rf = left.astype(np.float32), right.astype(np.float32)
    out = np.empty_like(rf)
    gains, offsets = [], []
    for c in range(3):
        g, o = _affine_fit(rf[::step, ::step, c][sub], lf[::step, ::step, c][sub])
        out[..., c] = rf[..., c] * g + o
        gains.append(round(g, 4))
        offsets.append(round(o, 2))
    if not local:
        return np.clip(out + 0.5, 0, 255).astype(np.uint8), {"gain": gains, "offset": offsets}
    longer = max(h, w)
    cells = (max(1, round(GRID_CELLS * h / longer)), max(1, round(GRID_CELLS * w / longer)))
    # cell medians of the left/right lightness ratio, on the same subsample as the fit
    lum_l = lf[::step, ::step].mean(axis=2) + 8.0
    lum_r = np.clip(out[::step, ::step].mean(axis=2), 0, None) + 8.0  # +8: dark pixels would make it explode
    grid = _cell_medians(lum_l / lum_r, sub, cells)
    grid = np.clip(cv2.medianBlur(grid, 3) if min(cells) >= 3 else grid, *GAIN_LIMITS)
    field = cv2.resize(grid, (w, h), interpolation=cv2.INTER_LINEAR)
    field = smooth(field, longer / (2.0 * GRID_CELLS))
    out = np.clip(out * field[..., None] + 0.5, 0, 255).astype(np.uint8)
    facts = {"gain": gains, "offset": offsets,
             "local_gain_range": [round(float(field.min()), 3), round(float(field.max()), 3)]}
    return out, facts
