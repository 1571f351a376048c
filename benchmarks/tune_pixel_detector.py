"""Measure the pixel detector's precision/recall over a grid of settings, on synthetic pairs made from the
scikit-image sample photos and on ../shared (LEVIR-CD masks; CLEVR-Change false alarms). The defaults in
imgdiff_rt/pixel_detector.py and docs/pixel-detector.md come from this script's output.

    python benchmarks/tune_pixel_detector.py [--quick]
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import cv2
import numpy as np
from skimage import data

from imgdiff_rt.evaluate import Tally, load_truth
from imgdiff_rt.imageio import read_image
from imgdiff_rt.pipeline import Pipeline
from imgdiff_rt.pixel_detector import PixelConfig
from imgdiff_rt.synth import synthesize

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry")
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def synthetic_set(level: int, per_photo: int = 10, spots: int = 3) -> list:
    pairs = []
    for name in PHOTOS:
        img = read_image(np.asarray(getattr(data, name)()))
        for seed in range(per_photo):
            p = synthesize(img, spots=spots, level=level, seed=seed)
            pairs.append((p.left, p.right, [tuple(c["bbox"]) for c in p.truth["changes"]]))
    return pairs


def jpeg_copy(pairs: list, quality: int = 85) -> list:
    """The same pairs after JPEG compression of both images: the noise real photos carry."""
    def jpeg(arr):
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(arr, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
        return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return [(jpeg(left), jpeg(right), truth) for left, right, truth in pairs]


def levir_set() -> list:
    root = SHARED / "levir-cd"
    out = []
    for mask in sorted((root / "label").glob("*.png")):
        left, right = read_image(root / "A" / mask.name), read_image(root / "B" / mask.name)
        out.append((left, right, load_truth(mask, (left.shape[1], left.shape[0]))))
    return out


def score(pipeline: Pipeline, pairs: list) -> dict:
    tally = Tally()
    for left, right, truth in pairs:
        t = time.perf_counter()
        res = pipeline(left, right)
        tally.add([r.bbox for r in res.regions], truth, (time.perf_counter() - t) * 1e3)
    return tally.summary()


def clevr_false_alarms(pipeline: Pipeline) -> tuple[float, float]:
    root = SHARED / "clevr-change"
    ids = sorted(p.stem for p in (root / "before").glob("*.png"))
    found = alarms = 0
    for i in ids:
        before = root / "before" / f"{i}.png"
        found += bool(pipeline(before, root / "semantic" / f"{i}.png").regions)
        alarms += bool(pipeline(before, root / "nonsemantic" / f"{i}.png").regions)
    return found / len(ids), alarms / len(ids)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="defaults only, no grid")
    args = ap.parse_args()
    sets = {"synth-l1": synthetic_set(1), "synth-l2": synthetic_set(2)}
    sets["synth-l1-jpeg85"] = jpeg_copy(sets["synth-l1"])
    if (SHARED / "levir-cd").exists():
        sets["levir"] = levir_set()
    grid = [dict()] if args.quick else [
        dict(threshold=t, blur_sigma=b, close_px=c, merge_gap=g)
        for t, b, c, g in itertools.product(["8", "10", "12", "14", "otsu"], [1.5], [9, 15], [0.02])
    ] + [dict(threshold="10", blur_sigma=b, close_px=9, merge_gap=g)
         for b, g in [(1.0, 0.02), (2.5, 0.02), (1.5, 0.0), (1.5, 0.04)]]
    print("settings | " + " | ".join(f"{k} P/R/F1" for k in sets))
    for params in grid:
        cfg = PixelConfig(**{**params, "merge": "none" if params.get("merge_gap") == 0 else "box"})
        pipe = Pipeline(pixel=cfg)
        cells = []
        for name, pairs in sets.items():
            s = score(pipe, pairs)
            cells.append(f"{s['precision']:.3f}/{s['recall']:.3f}/{s['f1']:.3f} ({s['median_ms']:.0f} ms)")
        print(f"{params or 'defaults'} | " + " | ".join(cells), flush=True)
        if (SHARED / "clevr-change").exists():
            for align in (False, True):
                found, alarms = clevr_false_alarms(Pipeline(pixel=cfg, align=align))
                print(f"    clevr align={align}: semantic pairs with a region {found:.2f}, "
                      f"nonsemantic pairs with a region {alarms:.2f}", flush=True)


if __name__ == "__main__":
    main()
