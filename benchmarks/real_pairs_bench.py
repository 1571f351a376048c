#!/usr/bin/env python
"""Detection on real pairs with the real pretrained segmenter: the Img-Diff method as published (every candidate
box through CLIP in PyTorch eager fp32, no pixel gate) against the product's default (ONNX Runtime, default
pixel gate), alternated round by round with the benchmark harness, one call = every pair of the set.

    python benchmarks/real_pairs_bench.py --models /tmp/real --out benchmarks/results/real-pairs

The bundle must hold the registered pretrained segmenter (``--segmenter-onnx ../shared/models/...``) and a
real-size CLIP (random weights here: same compute, timing only). Both sides segment with that segmenter on
ONNX Runtime (its only weights are the int8 ONNX file; a PyTorch module of it does not exist), so the ratio
is CLIP's and the gate's part of the work; the per-stage table says where the time goes. Kept regions are
compared pair by pair (with random CLIP weights this checks the mechanics, not accuracy).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from imgdiff_rt.bench.harness import Workload, measure_alternated  # noqa: E402
from imgdiff_rt.bench.stats import paired_ratios  # noqa: E402
from imgdiff_rt.imageio import read_image  # noqa: E402
from imgdiff_rt.runtime.detect import ModelDetector, SegmentConfig  # noqa: E402
from imgdiff_rt.runtime.session import open_session  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"


def pair_sets(tmp: Path, synth: int, levir: int, clevr: int) -> dict[str, list]:
    sets = {"example": [(ROOT / "examples/left.png", ROOT / "examples/right.png")]}
    if synth:
        subprocess.run([sys.executable, "-c", "from imgdiff_rt.cli.main import cli; cli()", "synth",
                        "skimage:astronaut", "--out", str(tmp / "synth"), "--count", str(synth), "--seed", "11"],
                       check=True, capture_output=True, cwd=ROOT)
        sets["synth"] = [(t.parent / "left.png", t.parent / "right.png")
                         for t in sorted((tmp / "synth").rglob("truth.json"))]
    names = sorted((SHARED / "levir-cd" / "A").glob("*.png"))[:levir]
    sets["levir-cd"] = [(a, SHARED / "levir-cd" / "B" / a.name) for a in names]
    before = sorted((SHARED / "clevr-change" / "before").glob("*.png"))[:clevr]
    sets["clevr-semantic"] = [(b, SHARED / "clevr-change" / "semantic" / b.name) for b in before]
    return {k: v for k, v in sets.items() if v}


def detectors(models: str, precision: str) -> dict[str, ModelDetector]:
    reference = ModelDetector(models, "onnx", "fp32", SegmentConfig(pixel_gate=None))
    reference.clip.close()  # Img-Diff as published: CLIP in PyTorch eager, every candidate
    reference.clip = open_session(reference.bundle, "clip_image", "torch", "fp32")
    product = ModelDetector(models, "onnx", precision)  # the product's defaults (pixel gate included)
    return {"reference": reference, "product": product}


def workload(name: str, detector: ModelDetector, pairs: list, log: list) -> Workload:
    def run():
        rows = []
        for left, right in pairs:
            detector._cache.clear()  # every pair from scratch, as a new pair would be
            regions, report = detector.detect(left, right)
            rows.append({"regions": [r.bbox for r in regions], **report.timings_ms,
                         "candidates": report.facts["candidates"],
                         "clip_boxes": report.facts.get("clip_boxes", report.facts["candidates"])})
        log.append(rows)

    return Workload(name, run, items=len(pairs), unit="pair")


def bench_set(name: str, pairs: list, dets: dict, runs: int) -> dict:
    images = [(read_image(a), read_image(b)) for a, b in pairs]
    images = [(a, b) for a, b in images if a.shape == b.shape]
    logs = {k: [] for k in dets}
    measured = measure_alternated([workload(k, d, images, logs[k]) for k, d in dets.items()], runs)
    ref, prod = logs["reference"][-1], logs["product"][-1]
    same = sum(r["regions"] == p["regions"] for r, p in zip(ref, prod))
    stage = {k: {s: round(float(np.median([sum(row.get(s, 0) for row in call) for call in logs[k]])), 1)
                 for s in ("segment", "clip")} for k in dets}
    return {"set": name, "pairs": len(images), "runs": runs,
            "median_ms": {k: measured[k]["median_ms"] for k in dets},
            "speedup": paired_ratios(measured["reference"]["times_ms"], measured["product"]["times_ms"]),
            "stage_ms": stage, "candidates": sum(r["candidates"] for r in ref),
            "clip_boxes": {"reference": sum(r["clip_boxes"] for r in ref),
                           "product": sum(r["clip_boxes"] for r in prod)},
            "pairs_with_same_regions": same}


def render(rows: list[dict], precision: str) -> str:
    lines = [f"| set | pairs | candidates | CLIP boxes ref / product | reference ms (segment / clip) | "
             f"product ms (segment / clip) | speed-up (median, paired) | same kept regions |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        s = r["stage_ms"]
        lines.append(f"| {r['set']} | {r['pairs']} | {r['candidates']} | {r['clip_boxes']['reference']} / "
                     f"{r['clip_boxes']['product']} | {r['median_ms']['reference']:.0f} ({s['reference']['segment']:.0f}"
                     f" / {s['reference']['clip']:.0f}) | {r['median_ms']['product']:.0f} "
                     f"({s['product']['segment']:.0f} / {s['product']['clip']:.0f}) | "
                     f"x{r['speedup']['median']:.2f} | {r['pairs_with_same_regions']}/{r['pairs']} |")
    return "\n".join(lines) + f"\n\nproduct: ONNX Runtime {precision}, default pixel gate; reference: CLIP in " \
                              "PyTorch eager fp32, no gate; both: the pretrained int8 segmenter on ONNX Runtime."


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", required=True)
    ap.add_argument("--precision", default="fp32", help="the product's precision (the CLI default is fp32)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--synth", type=int, default=3)
    ap.add_argument("--levir", type=int, default=3)
    ap.add_argument("--clevr", type=int, default=3)
    ap.add_argument("--out", default=None, help="folder for results.json and report.md")
    args = ap.parse_args()
    dets = detectors(args.models, args.precision)
    with tempfile.TemporaryDirectory() as tmp:
        rows = [bench_set(name, pairs, dets, args.runs)
                for name, pairs in pair_sets(Path(tmp), args.synth, args.levir, args.clevr).items()]
    table = render(rows, args.precision)
    print(table)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(rows, indent=1))
        (out / "report.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
