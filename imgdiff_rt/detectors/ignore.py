"""Ignore regions: parts of the picture whose changes never count (timestamps, ads, watermarks, clocks).

Boxes are ``x0,y0,x1,y1`` in left-image pixels, or fractions of the width and height when all four are in
0..1; a mask is a PNG (white = ignore) resized to the image when its size differs. The pixel detector neither
fits light on nor thresholds nor grows a region into an ignored pixel; a region from any detector with at least
:data:`IGNORED_SHARE` of its box ignored is dropped; the settings record what was ignored and the pictures
shade it.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Sequence

import cv2
import numpy as np

from imgdiff_rt.errors import InputError, UsageError
from imgdiff_rt.result import Region

#: a region whose box is at least this share ignored is dropped (the segmenter's boxes can straddle the edge)
IGNORED_SHARE = 0.5
MAX_IGNORE_BOXES = 256  # more than a person draws; a bound on the work per pair
MASK_LEVEL = 128  # grey levels from here up count as white in an ignore mask

Box = tuple[float, float, float, float]


def parse_box(spec: str | Sequence[Any]) -> Box:
    """``"x0,y0,x1,y1"`` (or four numbers) -> a box; UsageError naming the problem otherwise."""
    parts = spec.split(",") if isinstance(spec, str) else list(spec)
    if len(parts) != 4:
        raise UsageError(f"ignore {spec!r}: give x0,y0,x1,y1 (pixels, or fractions 0-1 of the size)",
                         parameter="ignore")
    try:
        values = tuple(float(str(v).strip()) for v in parts)
    except ValueError:
        raise UsageError(f"ignore {spec!r}: x0,y0,x1,y1 must be numbers", parameter="ignore") from None
    if not all(math.isfinite(v) and v >= 0 for v in values):
        raise UsageError(f"ignore {spec!r}: coordinates must be finite and not negative", parameter="ignore")
    x0, y0, x1, y1 = values
    if x1 <= x0 or y1 <= y0:
        raise UsageError(f"ignore {spec!r}: x1 must be above x0 and y1 above y0", parameter="ignore")
    return values  # type: ignore[return-value]


def parse_boxes(value: Any) -> tuple[Box, ...]:
    """The boxes a request field or a pairs-file record gives: ``"x0,y0,x1,y1"`` (several joined by ``;``), four
    numbers (one box), or a list of those; UsageError naming the problem otherwise."""
    if value is None:
        return ()
    if isinstance(value, str):
        value = [part for part in value.split(";") if part.strip()]
    if isinstance(value, (list, tuple)):
        if len(value) > MAX_IGNORE_BOXES:
            raise UsageError(f"ignore: at most {MAX_IGNORE_BOXES} boxes, got {len(value)}", parameter="ignore")
        if len(value) == 4 and all(_is_number(v) for v in value):
            return (parse_box(value),)
        if all(isinstance(v, str) or (isinstance(v, (list, tuple)) and len(v) == 4 and all(map(_is_number, v)))
               for v in value):
            return tuple(parse_box(v) for v in value)
    raise UsageError("ignore: give boxes as \"x0,y0,x1,y1\" or [x0, y0, x1, y1], or a list of them",
                     parameter="ignore")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def is_fractional(box: Box) -> bool:
    return all(v <= 1.0 for v in box)


def pixel_box(box: Box, width: int, height: int) -> tuple[int, int, int, int]:
    """The box in pixels, clipped to the image (fractions are scaled outward, so an edge pixel is included)."""
    x0, y0, x1, y1 = box
    if is_fractional(box):
        x0, x1, y0, y1 = x0 * width, x1 * width, y0 * height, y1 * height
    return (int(min(width, math.floor(x0))), int(min(height, math.floor(y0))),
            int(min(width, math.ceil(x1))), int(min(height, math.ceil(y1))))


@dataclass(frozen=True)
class IgnoreSpec:
    """What to ignore in a pair: boxes and an optional mask file (both may be empty)."""

    boxes: tuple[Box, ...] = ()
    mask: str | None = None

    def __post_init__(self) -> None:
        if len(self.boxes) > MAX_IGNORE_BOXES:
            raise UsageError(f"ignore: at most {MAX_IGNORE_BOXES} boxes, got {len(self.boxes)}", parameter="ignore")

    @classmethod
    def parse(cls, boxes: Iterable[str | Sequence[Any]] = (), mask: str | os.PathLike | None = None) -> IgnoreSpec:
        return cls(tuple(parse_box(b) for b in boxes), None if mask is None else str(mask))

    def __bool__(self) -> bool:
        return bool(self.boxes) or self.mask is not None

    def merged(self, other: IgnoreSpec | None) -> IgnoreSpec:
        """This spec plus ``other`` (a pair's own ignore regions on top of the run's)."""
        if not other:
            return self
        return replace(self, boxes=self.boxes + other.boxes, mask=other.mask or self.mask)

    def to_settings(self) -> dict[str, Any]:
        return {"boxes": [[int(v) if float(v).is_integer() else v for v in b] for b in self.boxes],
                "mask": self.mask}

    def resolve(self, width: int, height: int) -> np.ndarray | None:
        """The ignored pixels at this size (bool HxW), or None when nothing is ignored."""
        if not self:
            return None
        out = np.zeros((height, width), bool)
        for box in self.boxes:
            x0, y0, x1, y1 = pixel_box(box, width, height)
            out[y0:y1, x0:x1] = True
        if self.mask is not None:
            out |= _mask_at(self.mask, width, height)
        return out

    def facts(self, ignored: np.ndarray | None) -> dict[str, Any]:
        """What the result's settings record: the spec, each box in pixels and the share of the image ignored."""
        if ignored is None:
            return {}
        h, w = ignored.shape
        return {**self.to_settings(), "boxes_px": [list(pixel_box(b, w, h)) for b in self.boxes],
                "ignored_share": round(float(ignored.mean()), 6)}


def _mask_at(path: str, width: int, height: int) -> np.ndarray:
    mask = _read_mask(str(Path(path).expanduser()), _mtime(path))
    if mask.shape != (height, width):
        mask = cv2.resize(mask.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST).astype(bool)
    return mask


def _mtime(path: str) -> float:
    try:
        return os.stat(Path(path).expanduser()).st_mtime
    except OSError as e:
        raise InputError(f"{path}: ignore mask cannot be read ({e.strerror or e})") from None


@lru_cache(maxsize=8)
def _read_mask(path: str, _mtime: float) -> np.ndarray:
    """The mask file as bool (white = ignore), read once per file version for a whole batch."""
    from imgdiff_rt.imageio import read_image

    rgb = read_image(path)
    return rgb.max(axis=2) >= MASK_LEVEL


def drop_ignored(regions: Iterable[Region], ignored: np.ndarray | None) -> tuple[Region, ...]:
    """``regions`` without those whose box is at least IGNORED_SHARE ignored, numbered 1..n again."""
    regions = tuple(regions)
    if ignored is None:
        return regions
    kept = []
    for r in regions:
        x0, y0, x1, y1 = r.bbox
        window = ignored[y0:y1, x0:x1]
        if window.size and window.mean() >= IGNORED_SHARE:
            continue
        kept.append(r)
    return tuple(replace(r, id=k + 1) for k, r in enumerate(kept))
