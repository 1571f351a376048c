"""Writing a processed pair (JSON + annotated PNGs) and running a resumable batch.

Every file is written atomically. In a batch, ``DIR/<id>.json`` is the per-pair record of truth: a re-run with
the same ``DIR`` skips pairs whose record is there without an error, and ``DIR/results.jsonl`` is rebuilt from
the records (atomically) as the batch goes.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from .annotate import side_by_side
from .errors import ImgDiffError, OutputError
from .files import write_text_atomic
from .imageio import write_png_atomic
from .imgdiff_format import imgdiff_records, region_image_name
from .pairs import PairItem
from .pipeline import Pipeline, Processed
from .result import SCHEMA

FORMATS = ("result", "img-diff")
RESULTS_FILE = "results.jsonl"
REBUILD_EVERY_S = 2.0


def check_writable_dir(path: str | os.PathLike[str]) -> Path:
    """Prove a folder can be written without creating it yet (bad input must leave no output behind)."""
    p = Path(path)
    if p.exists():
        if not p.is_dir():
            raise OutputError(f"{p}: output path exists and is not a folder")
        if not os.access(p, os.W_OK | os.X_OK):
            raise OutputError(f"{p}: output folder is not writable")
        return p
    parent = p.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{p}: output folder cannot be created ({parent} is not writable)")
    return p


def make_dir(p: Path) -> Path:
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{p}: cannot create output folder ({e.strerror or e})") from None
    return p


def pair_payload(processed: Processed, fmt: str, stem: str) -> dict | list:
    if fmt == "img-diff":
        return imgdiff_records(processed.result, stem)
    return processed.result.to_dict()


def write_pair(processed: Processed, out_dir: Path, fmt: str, stem: str) -> dict | list:
    """Images first, JSON last: a pair's JSON existing means its pictures are complete (resume relies on it)."""
    images, result = processed.images, processed.result
    homography = images.alignment.matrix if images.alignment and images.alignment.method != "none" else None
    if fmt == "img-diff":
        for r in result.regions:
            pic = side_by_side(images.left, images.right_unwarped, [r], homography, numbered=False)
            write_png_atomic(out_dir / region_image_name(stem, r.id), pic)
    else:
        pic = side_by_side(images.left, images.right_unwarped, result.regions, homography)
        write_png_atomic(out_dir / f"{stem}.png", pic)
    payload = pair_payload(processed, fmt, stem)
    write_text_atomic(out_dir / f"{stem}.json", json.dumps(payload, indent=2))
    return payload


def error_record(item: PairItem, message: str) -> dict:
    return {"schema": SCHEMA, "id": item.id, "left": None if item.left is None else str(item.left),
            "right": None if item.right is None else str(item.right), "error": message}


def _read_record(path: Path) -> dict | list | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _lines(record: dict | list) -> list[str]:
    records = record if isinstance(record, list) else [record]
    return [json.dumps(r, ensure_ascii=False) for r in records]


@dataclass
class BatchSummary:
    total: int = 0
    done: int = 0
    skipped: int = 0
    failed: int = 0


def run_batch(pipeline: Pipeline, items: list[PairItem], out_dir: Path, fmt: str = "result",
              progress: Callable[[Iterable], Iterable] | None = None) -> BatchSummary:
    make_dir(out_dir)
    summary = BatchSummary(total=len(items))
    records: dict[str, dict | list] = {}
    last_rebuild = time.monotonic()
    for item in (progress(items) if progress else items):
        stem = item.file_stem
        json_path = out_dir / f"{stem}.json"
        previous = _read_record(json_path) if json_path.exists() else None
        if previous is not None and not (isinstance(previous, dict) and "error" in previous):
            records[item.id] = previous
            summary.skipped += 1
            continue
        if item.error:
            record: dict | list = error_record(item, item.error)
            summary.failed += 1
        else:
            try:
                processed = pipeline.process(item.left, item.right, id=item.id)
                record = write_pair(processed, out_dir, fmt, stem)
                summary.done += 1
            except OutputError:
                raise  # the output folder itself is broken: no later pair can succeed either
            except ImgDiffError as e:
                record, summary.failed = error_record(item, str(e)), summary.failed + 1
            except Exception as e:  # a bug must not cost the rest of a long batch; it is recorded, not hidden
                record = error_record(item, f"internal error: {type(e).__name__}: {e}")
                summary.failed += 1
            if isinstance(record, dict) and "error" in record:
                write_text_atomic(json_path, json.dumps(record, indent=2))
        records[item.id] = record
        if time.monotonic() - last_rebuild > REBUILD_EVERY_S:
            _rebuild(out_dir, records)
            last_rebuild = time.monotonic()
    _rebuild(out_dir, records)
    return summary


def _rebuild(out_dir: Path, records: dict[str, dict | list]) -> None:
    lines = [line for rec in records.values() for line in _lines(rec)]
    write_text_atomic(out_dir / RESULTS_FILE, "".join(line + "\n" for line in lines))
