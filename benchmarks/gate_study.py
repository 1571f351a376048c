#!/usr/bin/env python
"""How the pixel gate was chosen: on every pair in ../shared (the bundled example, LEVIR-CD, CLEVR-Change
semantic and non-semantic) and on synth pairs (clean and --jitter), run the segment detector (real pretrained
segmenter registered in the bundle) and the hybrid candidates, with no gate, a gate of 0 and each gate
studied. Reports per set: candidate boxes, boxes CLIP still sees, the smallest difference of a box that holds a
true change (truth boxes / masks), and pairs whose kept regions changed against the ungated method.

    python benchmarks/gate_study.py --models /tmp/segtiny --out benchmarks/results/gate_study.json

The bundle's CLIP decides which regions are kept; with random weights (all this machine has) the kept-region
comparison checks the mechanics, and the truth-box margin is what bounds the gate. Prints one Markdown table.
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

from imgdiff_rt.evaluation.evaluate import load_truth  # noqa: E402
from imgdiff_rt.imageio import read_image  # noqa: E402
from imgdiff_rt.detectors.pixel.detector import PixelConfig, detect_pixels  # noqa: E402
from imgdiff_rt.detectors.model import gate as G  # noqa: E402
from imgdiff_rt.detectors.model.detector import ModelDetector, SegmentConfig  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
SYNTH = (("skimage:astronaut", ""), ("skimage:coffee", ""), ("skimage:chelsea", ""),
         ("skimage:astronaut", "--jitter"), ("skimage:coffee", "--jitter"))


def shared_pairs() -> dict[str, list[tuple[Path, Path, Path | None]]]:
    levir = SHARED / "levir-cd"
    clevr = SHARED / "clevr-change"
    sets = {"example": [(ROOT / "examples/left.png", ROOT / "examples/right.png", ROOT / "examples/truth.json")],
            "levir-cd": [(a, levir / "B" / a.name, (levir / "label" / a.name) if (levir / "label" / a.name).exists()
                          else None) for a in sorted((levir / "A").glob("*.png"))],
            "clevr-semantic": [(b, clevr / "semantic" / b.name, None) for b in sorted((clevr / "before").glob("*.png"))],
            "clevr-nonsemantic": [(b, clevr / "nonsemantic" / b.name, None)
                                  for b in sorted((clevr / "before").glob("*.png"))]}
    return sets


def synth_pairs(folder: Path, count: int) -> dict[str, list]:
    out: dict[str, list] = {"synth": [], "synth-jitter": []}
    for image, flag in SYNTH:
        dest = folder / (image.split(":")[1] + (flag or "-clean"))
        cmd = [sys.executable, "-c", "from imgdiff_rt.cli.main import cli; cli()", "synth", image, "--out",
               str(dest), "--count", str(count)] + ([flag] if flag else [])
        subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
        for truth in sorted(dest.rglob("truth.json")):
            out["synth-jitter" if flag else "synth"].append((truth.parent / "left.png", truth.parent / "right.png",
                                                              truth))
    return out


def _overlaps(box, truths) -> bool:
    return any(box[0] < t[2] and t[0] < box[2] and box[1] < t[3] and t[1] < box[3] for t in truths)


def study_pair(detectors: dict, left: np.ndarray, right: np.ndarray, truths: list) -> dict:
    pixel_regions = list(detect_pixels(left, right, PixelConfig()).regions)
    row: dict = {}
    for mode, extra in (("segment", ()), ("hybrid", pixel_regions)):
        runs = {}
        for name, det in detectors.items():
            regions, report = det.detect(left, right, extra)
            runs[name] = ([(r.bbox, round(r.similarity, 5)) for r in regions], report.facts)
        facts = runs["none"][1]
        candidates = facts["candidates"]
        boxes = _candidate_boxes(detectors["none"], left, right, extra)
        diffs = G.box_differences(G.difference_table(left, right), boxes) if len(boxes) else np.zeros(0)
        true_diffs = [float(d) for b, d in zip(boxes.tolist(), diffs) if _overlaps(b, truths)]
        row[mode] = {"candidates": candidates,
                     "clip_boxes": {n: r[1]["clip_boxes"] for n, r in runs.items()},
                     "changed_regions": {n: r[0] != runs["none"][0] for n, r in runs.items() if n != "none"},
                     "min_true_change_difference": min(true_diffs) if true_diffs else None,
                     "differences": [round(float(d), 3) for d in diffs]}
    return row


def _candidate_boxes(detector: ModelDetector, left, right, extra) -> np.ndarray:
    from imgdiff_rt.detectors.model.proposals import gather_proposals

    cfg, h, w = detector.config, left.shape[0], left.shape[1]
    seg_left, seg_right = detector.segment([left, right])
    boxes, _ = gather_proposals([seg_left.boxes, seg_right.boxes], [seg_left.scores, seg_right.scores], w, h,
                                min_area_fraction=cfg.min_area_fraction, iou=cfg.dedup_iou,
                                limit=cfg.max_candidates)
    if extra:
        boxes = np.concatenate([boxes, np.array([r.bbox for r in extra], np.int64).reshape(-1, 4)])
    return boxes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", required=True, help="bundle with the segmenter and CLIP")
    ap.add_argument("--gates", default="0,0.5,1,2,4", help="gates to study (mean pixel difference)")
    ap.add_argument("--synth-count", type=int, default=3)
    ap.add_argument("--limit", type=int, default=None, help="at most this many pairs per set")
    ap.add_argument("--out", default=None, help="write the per-pair JSON here")
    args = ap.parse_args()
    gates = [float(g) for g in args.gates.split(",")]
    detectors = {"none": ModelDetector(args.models, config=SegmentConfig(pixel_gate=None))}
    detectors.update({f"{g:g}": ModelDetector(args.models, config=SegmentConfig(pixel_gate=g)) for g in gates})
    with tempfile.TemporaryDirectory() as tmp:
        sets = {**shared_pairs(), **synth_pairs(Path(tmp), args.synth_count)}
        results = {}
        for name, pairs in sets.items():
            rows = []
            for lp, rp, tp in pairs[:args.limit]:
                left, right = read_image(lp), read_image(rp)
                if left.shape != right.shape:
                    continue
                truths = load_truth(tp, (left.shape[1], left.shape[0])) if tp else []
                rows.append({"pair": lp.parent.name + "/" + lp.name, **study_pair(detectors, left, right, truths)})
            results[name] = rows
    print(_table(results, gates))
    if args.out:
        Path(args.out).write_text(json.dumps({"gates": gates, "sets": results}, indent=1))


def _table(results: dict, gates: list[float]) -> str:
    names = [f"{g:g}" for g in gates]
    lines = ["| set | mode | pairs | candidate boxes | CLIP boxes, no gate | "
             + " | ".join(f"CLIP boxes, gate {n}" for n in names)
             + " | min difference of a true-change box | pairs with changed kept regions (per gate) |",
             "|---|---|---:|---:|---:|" + "---:|" * len(gates) + "---:|---|"]
    for name, rows in results.items():
        for mode in ("segment", "hybrid"):
            r = [row[mode] for row in rows]
            sent = [sum(x["clip_boxes"][n] for x in r) for n in ["none", *names]]
            true_min = [x["min_true_change_difference"] for x in r if x["min_true_change_difference"] is not None]
            changed = ", ".join(f"{n}: {sum(x['changed_regions'][n] for x in r)}" for n in names)
            lines.append(f"| {name} | {mode} | {len(r)} | {sum(x['candidates'] for x in r)} | "
                         + " | ".join(str(v) for v in sent)
                         + f" | {f'{min(true_min):.2f}' if true_min else '-'} | {changed} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
