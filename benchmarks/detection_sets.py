"""The measurement sets behind the pixel detector's defaults (docs/detection.md), loaded into memory once:
synthetic pairs (levels 1 and 2, their JPEG-85 copies, re-shot copies with mild viewpoint/light jitter and with
strong jitter - zoom, more parallax, a moved light -, and the magazine-puzzle level 3 with each change's shape)
made from the scikit-image photos, CLEVR-Change (semantic vs nonsemantic) and LEVIR-CD (building masks) from
../shared. A synthetic pair is (left, right, truth boxes, tags): tags name each change's shape ("object",
"border", "thin", "adjacent") and "faint" for low-contrast ones, so a score can say which kinds are missed."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from skimage import data

from imgdiff_rt.evaluation.evaluate import load_truth
from imgdiff_rt.imageio import read_image
from imgdiff_rt.evaluation.synth import synthesize

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry")
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _tags(change: dict) -> tuple[str, ...]:
    return (change.get("shape", "object"),) + (("faint",) if change.get("faint") else ())


def synthetic_set(level: int, per_photo: int = 10, spots: int | None = 3, jitter: bool | str = False) -> list:
    pairs = []
    for name in PHOTOS:
        img = read_image(np.asarray(getattr(data, name)()))
        for seed in range(per_photo):
            p = synthesize(img, spots=spots, level=level, seed=seed, jitter=jitter)
            changes = p.truth["changes"]
            pairs.append((p.left, p.right, [tuple(c["bbox"]) for c in changes], [_tags(c) for c in changes]))
    return pairs


def jpeg_copy(pairs: list, quality: int = 85) -> list:
    """The same pairs after JPEG compression of both images: the noise real photos carry."""
    def jpeg(arr):
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(arr, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
        return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return [(jpeg(left), jpeg(right), *rest) for left, right, *rest in pairs]


def levir_set() -> list:
    """(left, right, truth boxes, truth mask) for each LEVIR-CD pair with a mask."""
    root = SHARED / "levir-cd"
    out = []
    for mask in sorted((root / "label").glob("*.png")):
        left, right = read_image(root / "A" / mask.name), read_image(root / "B" / mask.name)
        truth_mask = read_image(mask)[:, :, 0] > 127
        out.append((left, right, load_truth(mask, (left.shape[1], left.shape[0])), truth_mask))
    return out


def clevr_set() -> list:
    """(before, semantic, nonsemantic) images for each CLEVR-Change triple."""
    root = SHARED / "clevr-change"
    ids = sorted(p.stem for p in (root / "before").glob("*.png"))
    return [tuple(read_image(root / part / f"{i}.png") for part in ("before", "semantic", "nonsemantic"))
            for i in ids]


def all_sets(per_photo: int = 10) -> dict:
    sets = {"synth-l1": synthetic_set(1, per_photo), "synth-l2": synthetic_set(2, per_photo)}
    sets["synth-l1-jpeg85"] = jpeg_copy(sets["synth-l1"])
    sets["synth-l2-jpeg85"] = jpeg_copy(sets["synth-l2"])
    sets["synth-jitter-l1"] = synthetic_set(1, per_photo, jitter=True)
    sets["synth-jitter-l2"] = synthetic_set(2, per_photo, jitter=True)
    sets["synth-puzzle"] = synthetic_set(3, per_photo, spots=None)
    sets["synth-jitter-strong-l1"] = synthetic_set(1, per_photo, jitter="strong")
    if (SHARED / "clevr-change").exists():
        sets["clevr"] = clevr_set()
    if (SHARED / "levir-cd").exists():
        sets["levir"] = levir_set()
    return sets
