"""The one result type that flows through the pipeline, and its JSON contract ("imgdiff-rt/result/v1").

Every stage takes a :class:`Result` and returns a new one (the dataclasses are frozen); the JSON written by
``Result.to_json()`` is the documented contract the CLI, the batch files and later services share.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA = "imgdiff-rt/result/v1"


@dataclass(frozen=True)
class Region:
    """One changed area. ``bbox`` is (x0, y0, x1, y1) in left-image pixels, x1/y1 exclusive."""

    id: int
    bbox: tuple[int, int, int, int]
    score: float
    area: int
    source: str = "pixel"
    similarity: float | None = None
    caption_left: str | None = None
    caption_right: str | None = None
    description: str | None = None
    mean_diff: float | None = None
    peak_diff: float | None = None
    mask: dict | None = None  # the region's pixels: COCO uncompressed RLE over the left image (detection.masks)
    change: dict | None = None  # what the description was built from: kind, each side's colour (words.kinds)

    def bbox_norm(self, size: tuple[int, int]) -> list[float]:
        w, h = size
        x0, y0, x1, y1 = self.bbox
        return [round(x0 / w, 6), round(y0 / h, 6), round(x1 / w, 6), round(y1 / h, 6)]

    def to_dict(self, size: tuple[int, int]) -> dict[str, Any]:
        return {
            "id": self.id,
            "bbox": [int(v) for v in self.bbox],
            "bbox_norm": self.bbox_norm(size),
            "score": round(float(self.score), 6),
            "area": int(self.area),
            "source": self.source,
            "similarity": None if self.similarity is None else round(float(self.similarity), 6),
            "caption_left": self.caption_left,
            "caption_right": self.caption_right,
            "description": self.description,
            "mean_diff": None if self.mean_diff is None else round(float(self.mean_diff), 4),
            "peak_diff": None if self.peak_diff is None else round(float(self.peak_diff), 4),
            "mask": self.mask,
            "change": self.change,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Region:
        return cls(
            id=int(d["id"]),
            bbox=tuple(int(v) for v in d["bbox"]),  # type: ignore[arg-type]
            score=float(d["score"]),
            area=int(d["area"]),
            source=d.get("source", "pixel"),
            similarity=d.get("similarity"),
            caption_left=d.get("caption_left"),
            caption_right=d.get("caption_right"),
            description=d.get("description"),
            mean_diff=d.get("mean_diff"),
            peak_diff=d.get("peak_diff"),
            mask=d.get("mask"),
            change=d.get("change"),
        )


@dataclass(frozen=True)
class Result:
    """Everything known about one image pair. Stages return a copy with their part filled in."""

    id: str
    left: str | None
    right: str | None
    size: tuple[int, int]
    regions: tuple[Region, ...] = ()
    description: str | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    weights: dict[str, Any] = field(default_factory=dict)  # what each graph that ran was (weights_report)
    warnings: tuple[str, ...] = ()  # why the answer may be unsure (words.caveats); empty when all is well

    def replace(self, **changes: Any) -> Result:
        return dataclasses.replace(self, **changes)

    def with_timing(self, stage: str, ms: float) -> Result:
        return self.replace(timings_ms={**self.timings_ms, stage: round(float(ms), 3)})

    def with_settings(self, **items: Any) -> Result:
        return self.replace(settings={**self.settings, **items})

    def with_warning(self, text: str) -> Result:
        return self if text in self.warnings else self.replace(warnings=(*self.warnings, text))

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "id": self.id,
            "left": self.left,
            "right": self.right,
            "size": [int(self.size[0]), int(self.size[1])],
            "regions": [r.to_dict(self.size) for r in self.regions],
            "description": self.description,
            "warnings": list(self.warnings),
            "timings_ms": dict(self.timings_ms),
            "settings": dict(self.settings),
            "weights": dict(self.weights),
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Result:
        if d.get("schema") != SCHEMA:
            raise ValueError(f"not an {SCHEMA} record (schema={d.get('schema')!r})")
        return cls(
            id=d["id"],
            left=d.get("left"),
            right=d.get("right"),
            size=(int(d["size"][0]), int(d["size"][1])),
            regions=tuple(Region.from_dict(r) for r in d.get("regions", [])),
            description=d.get("description"),
            warnings=tuple(str(w) for w in d.get("warnings", ())),
            timings_ms=dict(d.get("timings_ms", {})),
            settings=dict(d.get("settings", {})),
            weights=dict(d.get("weights", {})),
        )


def source_name(source: Any) -> str | None:
    """The path a result records for an image (None for arrays and images in memory)."""
    return str(source) if isinstance(source, (str, os.PathLike)) else None


def default_pair_id(left: Any, right: Any) -> str:
    """A pair's id from its two paths: the shared stem, else the shared folder, else both stems."""
    if isinstance(left, (str, os.PathLike)) and isinstance(right, (str, os.PathLike)):
        a, b = Path(left), Path(right)
        if a.stem == b.stem:
            return a.stem
        if a.parent == b.parent and a.parent.name:
            return a.parent.name  # e.g. pair1/left.png + pair1/right.png -> "pair1"
        return f"{a.stem}__{b.stem}"
    return "pair"
