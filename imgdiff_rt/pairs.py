"""Batch inputs: a JSONL file of ``{"id", "left", "right", "truth"?}`` lines (paths relative to the file), or a
folder with ``left/`` and ``right/`` holding matching names (and optionally ``truth/NAME.json`` or a mask)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import PairsFileError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}


@dataclass(frozen=True)
class PairItem:
    id: str
    left: Path | None
    right: Path | None
    truth: Path | None = None
    error: str | None = None  # set when the line describing this pair could not be used

    @property
    def file_stem(self) -> str:
        return safe_stem(self.id)


def safe_stem(pair_id: str) -> str:
    """A file name for an id: anything but letters, digits, '.', '_' and '-' becomes '_'."""
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", pair_id).lstrip(".")
    return stem or "pair"


def _from_jsonl(path: Path) -> list[PairItem]:
    items: list[PairItem] = []
    seen: set[str] = set()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise PairsFileError(f"{path}: cannot read pairs file ({e})") from None
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fallback = f"line-{n}"
        try:
            rec = json.loads(line)
            if not isinstance(rec, dict):
                raise ValueError("a line must be a JSON object")
            fallback = str(rec.get("id") or fallback)
            missing = [k for k in ("left", "right") if not isinstance(rec.get(k), str)]
            if missing:
                raise ValueError(f"missing {' and '.join(repr(k) for k in missing)}")
        except ValueError as e:
            items.append(PairItem(fallback, None, None, error=f"{path}:{n}: malformed pairs line ({e})"))
            continue
        pair_id = str(rec.get("id") or fallback)
        if pair_id in seen:
            items.append(PairItem(f"{pair_id}@line-{n}", None, None,
                                  error=f"{path}:{n}: duplicate id {pair_id!r}"))
            continue
        seen.add(pair_id)
        base = path.parent
        truth = base / rec["truth"] if isinstance(rec.get("truth"), str) else None
        items.append(PairItem(pair_id, base / rec["left"], base / rec["right"], truth))
    return items


def _from_folder(path: Path) -> list[PairItem]:
    left_dir, right_dir, truth_dir = path / "left", path / "right", path / "truth"
    if not left_dir.is_dir() or not right_dir.is_dir():
        raise PairsFileError(f"{path}: a pairs folder must hold left/ and right/ sub-folders")
    rights = {p.stem: p for p in right_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    items = []
    for left in sorted(p for p in left_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        right = rights.get(left.stem)
        truth = None
        if truth_dir.is_dir():
            truth = next((t for t in sorted(truth_dir.glob(left.stem + ".*"))
                          if t.suffix.lower() in IMAGE_SUFFIXES | {".json"}), None)
        if right is None:
            items.append(PairItem(left.stem, left, None, error=f"{right_dir}: no image named {left.stem}.*"))
        else:
            items.append(PairItem(left.stem, left, right, truth))
    return items


def load_pairs(path: str | Path) -> list[PairItem]:
    p = Path(path)
    if not p.exists():
        raise PairsFileError(f"{p}: pairs file or folder not found")
    items = _from_folder(p) if p.is_dir() else _from_jsonl(p)
    if not items:
        raise PairsFileError(f"{p}: holds no pairs")
    return items
