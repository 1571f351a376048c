"""Measure the pixel detector on every set together (benchmarks/detection_sets.py) for a list of settings;
the defaults in imgdiff_rt/detectors/pixel/detector.py and the table in docs/detection.md come from this script.

    nice python benchmarks/tune_pixel_detector.py            # defaults only
    nice python benchmarks/tune_pixel_detector.py --grid     # the settings tried for docs/detection.md

Columns: synthetic sets P/R (pooled, one-to-one box matching as `eval`); CLEVR-Change share of semantic pairs
with a region ("found") and of nonsemantic pairs with a region ("flagged"); LEVIR-CD pooled pixel F1 of the
change mask and building recall (one-to-one, IoU >= 0.1); median ms per synthetic (512 px) pair in-process.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from detection_sets import all_sets  # noqa: E402

from imgdiff_rt.detectors.registration import DEFAULT_ALIGN  # noqa: E402
from imgdiff_rt.evaluation.evaluate import PixelTally, Tally  # noqa: E402
from imgdiff_rt.pipeline import Pipeline  # noqa: E402
from imgdiff_rt.detectors.pixel.detector import PixelConfig  # noqa: E402


def score_boxes(pipeline: Pipeline, pairs: list) -> dict:
    """Pooled P/R/F1; for sets whose changes carry tags, how many of each tag were missed ("missed")."""
    tally = Tally()
    missed: dict[str, list[int]] = {}
    for left, right, truth, *tags in pairs:
        t = time.perf_counter()
        res = pipeline(left, right)
        matches = tally.add([r.bbox for r in res.regions], truth, (time.perf_counter() - t) * 1e3)
        found = {j for _, j, _ in matches}
        for j, change_tags in enumerate(tags[0] if tags else ()):
            for tag in change_tags:
                counts = missed.setdefault(tag, [0, 0])
                counts[0] += j not in found
                counts[1] += 1
    summary = tally.summary()
    if any(n for _, n in missed.values()):
        summary["missed"] = {tag: f"{m}/{n}" for tag, (m, n) in sorted(missed.items())}
    return summary


def score_levir(pipeline: Pipeline, pairs: list) -> dict:
    pixels, strict = PixelTally(), Tally(allow_centre=False)
    for left, right, truth, truth_mask in pairs:
        done = pipeline.process(left, right)
        mask = done.images.change_mask if done.images.change_mask is not None else np.zeros_like(truth_mask)
        pixels.add(mask, truth_mask)
        strict.add([r.bbox for r in done.result.regions], truth)
    return {**pixels.summary(), "building_recall": round(strict.recall, 4),
            "building_precision": round(strict.precision, 4)}


def score_clevr(pipeline: Pipeline, triples: list) -> dict:
    found = sum(bool(pipeline(b, s).regions) for b, s, _ in triples)
    flagged = sum(bool(pipeline(b, n).regions) for b, _, n in triples)
    return {"found": round(found / len(triples), 3), "flagged": round(flagged / len(triples), 3)}


def measure(pipeline: Pipeline, sets: dict) -> dict:
    row = {}
    for name, pairs in sets.items():
        if name == "clevr":
            row[name] = score_clevr(pipeline, pairs)
        elif name == "levir":
            row[name] = score_levir(pipeline, pairs)
        else:
            row[name] = score_boxes(pipeline, pairs)
    return row


def format_row(label: str, row: dict) -> str:
    cells = []
    for name, s in row.items():
        if name == "clevr":
            cells.append(f"clevr {s['found']:.2f}/{s['flagged']:.2f}")
        elif name == "levir":
            cells.append(f"levir F1 {s['f1']:.3f} bR {s['building_recall']:.2f}")
        else:
            cells.append(f"{name} {s['precision']:.2f}/{s['recall']:.2f}"
                         + (f" (F1 {s['f1']:.3f}; missed {s['missed']})" if "missed" in s else ""))
    ms = row.get("synth-l1", {}).get("median_ms")  # (F1 and missed kinds: sets whose changes carry tags)
    reshot_ms = row.get("synth-jitter-l1", {}).get("median_ms")
    return f"{label} | " + " | ".join(cells) + (f" | {ms:.0f} ms" if ms else "") + \
        (f" | re-shot {reshot_ms:.0f} ms" if reshot_ms else "")


#: the pre-issue-13 detector, rebuilt from today's parts (no registration, no light compensation, plain
#: difference, connected components merged by box distance)
BEFORE = {"align": "none", "pixel": {"tolerance_px": 0, "unresampled_tolerance_px": 0, "photometric": "none",
                                     "objects": "blobs", "merge": "box", "merge_gap": 0.02, "noise_k": 0.0,
                                     "registered_min_area": 0.0, "registered_min_mean": 0.0,
                                     "residual_tolerance_k": 0.0, "residual_min_mean_per_px": 0.0,
                                     "residual_min_area_per_px": 0.0, "both_views_residual_px": 1e9}}

NO_RESIDUAL_GATES = {"residual_tolerance_k": 0.0, "residual_min_mean_per_px": 0.0, "residual_min_area_per_px": 0.0,
                     "both_views_residual_px": 1e9}
#: the first pass's defaults (docs/detection.md, row D1): either frame, caps deltaE 17.5 and 0.3%
FIRST_PASS = {"both_views_residual_px": 1e9, "residual_min_mean_cap": 17.5, "residual_min_area_cap": 0.003}


def _first_pass(**change) -> dict:
    return {"align": DEFAULT_ALIGN, "pixel": {**FIRST_PASS, **change}}


GRID = [  # (label, Pipeline keyword arguments); PixelConfig fields go in "pixel". First row: the defaults.
    ("defaults (align auto)", {"align": DEFAULT_ALIGN}),
    # puzzle and moved-light rows: each turns one of those steps off
    ("no growth into the sharp difference", {"align": DEFAULT_ALIGN, "pixel": {"grow_k": 0.0}}),
    ("box merge on every pair", {"align": DEFAULT_ALIGN, "pixel": {"merge_resampled_only": False}}),
    ("no moved-light test", {"align": DEFAULT_ALIGN, "pixel": {"shading_sigma": 0.0}}),
    ("moved-light test at 2% of the diagonal", {"align": DEFAULT_ALIGN, "pixel": {"shading_sigma": 0.02}}),
    ("moved-light share 0.25", {"align": DEFAULT_ALIGN, "pixel": {"shading_share": 0.25}}),
    ("either view, caps 17.5 / 0.3% (first pass)", _first_pass()),
    ("either view", {"align": DEFAULT_ALIGN, "pixel": {"both_views_residual_px": 1e9}}),
    ("both views always", {"align": DEFAULT_ALIGN, "pixel": {"both_views_residual_px": 0.0}}),
    ("both views from 0.5 px", {"align": DEFAULT_ALIGN, "pixel": {"both_views_residual_px": 0.5}}),
    # the first pass's table: each row changes one thing from its defaults
    ("no registration, light compensation, tolerance or gates", BEFORE),
    ("align flow, no region gates", {"align": "flow", "pixel": {"noise_k": 0.0, "registered_min_area": 0.0,
                                                                "registered_min_mean": 0.0, **NO_RESIDUAL_GATES}}),
    ("no residual gates (fixed area 0.05%)", {"align": DEFAULT_ALIGN, "pixel": NO_RESIDUAL_GATES}),
    ("no residual gates, fixed area 0.3% (previous defaults)",
     {"align": DEFAULT_ALIGN, "pixel": {**NO_RESIDUAL_GATES, "registered_min_area": 0.003}}),
    ("residual tolerance only", _first_pass(residual_min_mean_per_px=0.0, residual_min_area_per_px=0.0)),
    ("residual mean cap 20", _first_pass(residual_min_mean_cap=20.0)),
    ("residual area cap 0.5%", _first_pass(residual_min_area_cap=0.005)),
    ("fixed area 0.1%", _first_pass(registered_min_area=0.001)),
    ("noise_k 6", _first_pass(noise_k=6.0)),
    ("align homography", {**_first_pass(), "align": "homography"}),
    ("align none", {**_first_pass(), "align": "none"}),
    ("photometric global", _first_pass(photometric="global")),
    ("objects blobs + box merge", _first_pass(objects="blobs", merge="box", merge_gap=0.02)),
    ("unresampled tolerance 2", _first_pass(unresampled_tolerance_px=2)),
    ("noise gate on every pair", _first_pass(gate_resampled_only=False)),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--grid", action="store_true", help="every setting in GRID, not only the defaults")
    ap.add_argument("--rows", default=None, help="comma-separated GRID row numbers to run (0 = defaults)")
    ap.add_argument("--per-photo", type=int, default=10, help="synthetic pairs per photo and set")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    args = ap.parse_args()
    sets = all_sets(args.per_photo)
    rows = {}
    chosen = GRID if args.grid else GRID[:1]
    if args.rows:
        chosen = [GRID[int(i)] for i in args.rows.split(",")]
    for label, kwargs in chosen:
        pixel = PixelConfig(**kwargs.get("pixel", {}))
        pipe = Pipeline(pixel=pixel, **{k: v for k, v in kwargs.items() if k != "pixel"})
        rows[label] = measure(pipe, sets)
        print(format_row(label, rows[label]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
