"""The pixel detector's threshold: a fixed difference, Otsu's or a percentile of the pair's difference (never
under a noise floor), and the noise gate that keeps a re-shot pair's own noise from counting as change."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from imgdiff_rt.errors import UsageError


@dataclass(frozen=True)
class Threshold:
    kind: str  # "fixed", "otsu" or "percentile"
    value: float | None = None

    @classmethod
    def parse(cls, spec: str | float | int) -> Threshold:
        if isinstance(spec, (int, float)):
            return cls._fixed(float(spec), str(spec))
        text = str(spec).strip().lower()
        if text == "otsu":
            return cls("otsu")
        m = re.fullmatch(r"percentile:([0-9]*\.?[0-9]+)", text)
        if m:
            p = float(m.group(1))
            if not 0.0 < p < 100.0:
                raise UsageError(f"threshold {spec!r}: the percentile must be between 0 and 100")
            return cls("percentile", p)
        try:
            return cls._fixed(float(text), spec)
        except ValueError:
            raise UsageError(
                f"threshold {spec!r}: use a number, 'otsu' or 'percentile:P' (for example percentile:99)"
            ) from None

    @classmethod
    def _fixed(cls, v: float, spec: Any) -> Threshold:
        if not math.isfinite(v) or v <= 0:
            raise UsageError(f"threshold {spec!r}: a fixed threshold must be a positive number")
        return cls("fixed", v)

    def __str__(self) -> str:
        if self.kind == "fixed":
            return f"{self.value:g}"
        return "otsu" if self.kind == "otsu" else f"percentile:{self.value:g}"


def threshold_value(diff: np.ndarray, threshold: Threshold, noise_floor: float,
                    valid: np.ndarray | None = None) -> float:
    values = diff[valid] if valid is not None else diff.ravel()
    if threshold.kind == "fixed":
        return float(threshold.value)  # exactly what the user asked for
    if values.size == 0:
        return float("inf")
    if threshold.kind == "percentile":
        t = float(np.percentile(values, threshold.value))
    else:
        top = max(float(values.max()), 1e-6)
        scaled = np.clip(values / top * 255.0, 0, 255).astype(np.uint8).reshape(-1, 1)
        t8, _ = cv2.threshold(scaled, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        t = float(t8) / 255.0 * top
    return max(t, noise_floor)


def noise_threshold(diff: np.ndarray, valid: np.ndarray | None, k: float) -> float:
    """median + k robust sigmas (1.4826 MAD) of the difference: how far above its own noise a pair must differ.
    Pixel-exact pairs have no noise (0); re-shot ones (sensor noise, JPEG, residual misregistration) do."""
    values = (diff[valid] if valid is not None else diff.ravel())[::3]
    if values.size == 0:
        return 0.0
    med = float(np.median(values))
    return med + k * 1.4826 * float(np.median(np.abs(values - med)))
