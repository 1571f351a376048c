"""Writing a processed pair: JSON + annotated PNGs, every file atomically. Batches (resume, results.jsonl)
build on this in :mod:`imgdiff_rt.batch`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from imgdiff_rt.annotate import side_by_side, with_footer
from imgdiff_rt.errors import OutputError
from imgdiff_rt.files import write_text_atomic
from imgdiff_rt.imageio import write_png_atomic
from imgdiff_rt.writers.imgdiff_format import imgdiff_records, region_image_name
from imgdiff_rt.pairs import MASK_SUFFIX
from imgdiff_rt.pipeline import Processed
from imgdiff_rt.weights_report import footer_label

FORMATS = ("result", "img-diff")


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


def write_pair_images(processed: Processed, out_dir: Path, fmt: str, stem: str) -> dict | list:
    """The pair's pictures; returns the JSON payload for the caller to write last (see :func:`write_pair`)."""
    images, result = processed.images, processed.result
    homography = images.alignment.matrix if images.alignment and images.alignment.method != "none" else None
    if fmt == "img-diff":
        for r in result.regions:
            pic = side_by_side(images.left, images.right_unwarped, [r], homography, numbered=False)
            write_png_atomic(out_dir / region_image_name(stem, r.id), pic)
    else:
        pic = side_by_side(images.left, images.right_unwarped, result.regions, homography, ignore=images.ignore)
        # random or tiny weights are said on the picture too: it is what gets shared without the JSON
        write_png_atomic(out_dir / f"{stem}.png", with_footer(pic, footer_label(result.weights)))
        if images.change_mask is not None:  # the regions' pixels, 255 = changed: scored as CD papers score
            write_png_atomic(out_dir / change_mask_name(stem), images.change_mask.astype(np.uint8) * 255)
    return pair_payload(processed, fmt, stem)


def change_mask_name(stem: str) -> str:
    return f"{stem}{MASK_SUFFIX}.png"  # pairs.safe_stem keeps every stem from ending like this


def write_pair(processed: Processed, out_dir: Path, fmt: str, stem: str) -> dict | list:
    """Images first, JSON last: a pair's JSON existing means its pictures are complete (resume relies on it)."""
    payload = write_pair_images(processed, out_dir, fmt, stem)
    write_text_atomic(out_dir / f"{stem}.json", json.dumps(payload, indent=2))
    return payload
