"""Colour names people agree with, from pixels.

Each pixel is placed in Oklab (a perceptual space whose hue angle stays constant along a colour's lightness,
unlike CIELAB's, where a dark blue drifts towards purple) and named with the basic colour terms: an achromatic
zone (black, gray, white) by chroma, then hue sectors, with lightness telling brown from orange, pink from red and
adding "dark" / "light". A surface is named by the mode of its pixels' hues, not by their mean: the mean over a
rendered or photographed object mixes its lit and shaded sides, specular highlights and the background between
its parts, and lands on a grey-brown nobody would use.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# sRGB (linear) -> LMS -> Oklab (Björn Ottosson's published matrices)
_M1 = np.array([[0.4122214708, 0.5363325363, 0.0514459929],
                [0.2119034982, 0.6806995451, 0.1073969566],
                [0.0883024619, 0.2817188376, 0.6299787005]], np.float32)
_M2 = np.array([[0.2104542553, 0.7936177850, -0.0040720468],
                [1.9779984951, -2.4285922050, 0.4505937099],
                [0.0259040371, 0.7827717662, -0.8086757660]], np.float32)
_LINEAR = np.where(np.arange(256) / 255.0 <= 0.04045, np.arange(256) / 255.0 / 12.92,
                   ((np.arange(256) / 255.0 + 0.055) / 1.055) ** 2.4).astype(np.float32)

ACHROMATIC_CHROMA = 0.04  # Oklab chroma under which a colour reads as black, gray or white
BLACK_L, WHITE_L = 0.30, 0.92  # Oklab lightness bounds of gray
DARK_L, LIGHT_L = 0.35, 0.80  # a chromatic colour below / above this lightness gets "dark" / "light"
# Hue sectors (Oklab hue angle in degrees where each starts, and its term); red's sector wraps past 360.
HUE_SECTORS = ((45.0, "orange"), (90.0, "yellow"), (125.0, "green"), (175.0, "cyan"), (220.0, "blue"),
               (290.0, "purple"), (345.0, "red"))
BROWN_MAX_L = 0.65  # orange hues darker than this read as brown
BEIGE_MAX_CHROMA = 0.10  # light orange hues weaker than this read as beige
PINK_MIN_L = 0.72  # red hues lighter than this read as pink when weak or bluish
PINK_MAX_CHROMA = 0.16
CHROMATIC_SHARE = 0.3  # a surface with at least this share of chromatic pixels is named by their hue
HUE_WINDOW = 30.0  # degrees either side of the hue mode that belong to the named colour
MIN_PIXELS = 24  # fewer pixels than this: too small to name a colour
TOO_DARK_L = 0.18  # a tinted surface darker than this (median Oklab L) is too dark to tell its hue
NO_MODIFIER = ("yellow", "cyan", "pink", "white", "black", "beige")


def oklab(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 sRGB -> (..., 3) float32 Oklab (L 0..1, a, b about -0.4..0.4), by OpenCV's per-pixel
    table and matrix kernels (a description converts every region's window)."""
    arr = np.asarray(rgb, np.uint8)
    pixels = np.ascontiguousarray(arr.reshape(-1, 1, 3))
    if pixels.size == 0:
        return np.zeros(arr.shape, np.float32)
    lms = cv2.pow(np.maximum(cv2.transform(cv2.LUT(pixels, _LINEAR), _M1), 0.0), 1.0 / 3.0)
    return cv2.transform(lms, _M2).reshape(arr.shape)


def oklab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """(..., 3) Oklab -> (..., 3) uint8 sRGB, clipped to the gamut."""
    lms = np.asarray(lab, np.float32) @ np.linalg.inv(_M2).T.astype(np.float32)
    lin = np.clip((lms ** 3) @ np.linalg.inv(_M1).T.astype(np.float32), 0.0, 1.0)
    srgb = np.where(lin <= 0.0031308, lin * 12.92, 1.055 * np.power(lin, 1 / 2.4) - 0.055)
    return np.clip(srgb * 255.0 + 0.5, 0, 255).astype(np.uint8)


def lch(lab: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lightness, chroma and hue angle in degrees (0..360) of Oklab values."""
    return lab[..., 0], np.hypot(lab[..., 1], lab[..., 2]), np.degrees(np.arctan2(lab[..., 2], lab[..., 1])) % 360


# A typical colour of each chromatic term (Oklab hue in degrees, chroma, lightness range): what synth paints when
# it recolours a region to a named colour, so the words can be scored.
TYPICAL = {"red": (29.0, 0.18, (0.45, 0.62)), "orange": (62.0, 0.16, (0.70, 0.80)),
           "yellow": (105.0, 0.17, (0.85, 0.94)), "green": (142.0, 0.15, (0.45, 0.70)),
           "cyan": (195.0, 0.12, (0.70, 0.85)), "blue": (262.0, 0.17, (0.40, 0.62)),
           "purple": (315.0, 0.16, (0.40, 0.62)), "brown": (58.0, 0.09, (0.40, 0.55)),
           "pink": (355.0, 0.12, (0.78, 0.86))}


def hue_term(hue: float, light: float, chroma: float) -> str:
    """The basic colour term of one chromatic colour (Oklab hue in degrees, lightness, chroma)."""
    term = next((name for start, name in reversed(HUE_SECTORS) if hue >= start), "red")
    if term == "red" and light >= PINK_MIN_L and (chroma < PINK_MAX_CHROMA or hue >= HUE_SECTORS[-1][0]):
        return "pink"
    if term == "orange" and light < BROWN_MAX_L:
        return "brown"
    if term == "orange" and chroma < BEIGE_MAX_CHROMA:
        return "beige"
    return term


def gray_term(light: float) -> str:
    return "black" if light < BLACK_L else "white" if light > WHITE_L else "gray"


@dataclass(frozen=True)
class ColourName:
    """A surface's colour: the basic term people use, a lightness modifier, and how it was decided."""

    term: str | None  # None: too small or too dark to name
    modifier: str = ""  # "dark", "light" or ""
    share: float = 0.0  # share of the surface's pixels that carry the named colour
    reason: str = ""  # why no name (term None)

    @property
    def words(self) -> str:
        if self.term is None:
            return "unnamed"
        return f"{self.modifier} {self.term}".strip()

    def to_dict(self) -> dict:
        out = {"name": self.term, "words": self.words if self.term else None, "share": round(self.share, 3)}
        return {**out, **({"unnamed_because": self.reason} if self.reason else {})}


def _modifier(term: str, light: float) -> str:
    if term in NO_MODIFIER:
        return ""
    if term == "gray":
        return "dark" if light < DARK_L else "light" if light > LIGHT_L else ""
    return "dark" if light < DARK_L else "light" if light > LIGHT_L else ""


def _hue_mode(hue: np.ndarray, weight: np.ndarray) -> float:
    """The circular mode of hue angles: a 10-degree histogram weighted by chroma, smoothed over its neighbours."""
    hist = np.bincount((hue // 10).astype(np.int64) % 36, weights=weight, minlength=36)
    smooth = hist + 0.5 * (np.roll(hist, 1) + np.roll(hist, -1))
    peak = int(np.argmax(smooth))
    near = np.abs((hue - (peak * 10 + 5) + 180) % 360 - 180) <= HUE_WINDOW
    angles = np.radians(hue[near])
    w = weight[near]
    return float(np.degrees(np.arctan2((w * np.sin(angles)).sum(), (w * np.cos(angles)).sum())) % 360)


def name_surface(lab: np.ndarray) -> ColourName:
    """Name the colour of an (N, 3) set of Oklab pixels: the hue mode of the chromatic pixels when enough are
    chromatic, else black, gray or white by the median lightness of the achromatic ones."""
    if len(lab) < MIN_PIXELS:
        return ColourName(None, reason="too small")
    light, chroma, hue = lch(lab)
    chromatic = chroma >= ACHROMATIC_CHROMA
    share = float(chromatic.mean())
    if float(np.median(light)) < TOO_DARK_L and share >= CHROMATIC_SHARE:
        return ColourName(None, reason="too dark")  # a tint this dark is mostly noise and compression
    if share >= CHROMATIC_SHARE:
        mode = _hue_mode(hue[chromatic], chroma[chromatic])
        near = chromatic & (np.abs((hue - mode + 180) % 360 - 180) <= HUE_WINDOW)
        l_med, c_med = float(np.median(light[near])), float(np.median(chroma[near]))
        term = hue_term(mode, l_med, c_med)
        return ColourName(term, _modifier(term, l_med), float(near.mean()))
    l_med = float(np.median(light[~chromatic]))
    term = gray_term(l_med)
    return ColourName(term, _modifier(term, l_med), 1.0 - share)
