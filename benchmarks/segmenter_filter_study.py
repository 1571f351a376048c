"""--filter segmenter measured on the default pixel detector's regions (docs/detection.md): each region's
segmenter-feature similarity is computed once, then scored at several thresholds on the synthetic, jitter and
CLEVR-Change sets of detection_sets.py.

    nice python benchmarks/segmenter_filter_study.py --per-photo 5
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from detection_sets import SHARED, clevr_set, synthetic_set  # noqa: E402
from imgdiff_rt.evaluation.evaluate import Tally  # noqa: E402
from imgdiff_rt.pipeline import Pipeline  # noqa: E402
from imgdiff_rt.detectors.model.segmenter_features import SegmenterFeatures, region_similarities  # noqa: E402

THRESHOLDS = (0.95, 0.97, 0.98, 0.99, 1.01)  # 1.01 keeps every region: the pixel detector alone


def similarities(pipe: Pipeline, features: SegmenterFeatures, left, right) -> tuple[list, np.ndarray]:
    done = pipe.process(left, right)
    im = done.images
    registered = im.right if im.valid is None else np.where(im.valid[..., None], im.right, im.left)
    boxes = [r.bbox for r in done.result.regions]
    if not boxes:
        return boxes, np.zeros(0)
    (lm, rm), (lb, _) = features.maps([im.left, registered])
    return boxes, region_similarities(lm, rm, boxes, lb, features.imgsz)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-photo", type=int, default=5)
    args = ap.parse_args()
    features = SegmenterFeatures(SHARED.parent / "models" / "yolov8n-seg-int8.onnx")
    pipe = Pipeline()
    sets = {"synth-l1": synthetic_set(1, args.per_photo), "synth-l2": synthetic_set(2, args.per_photo),
            "jitter-l1": synthetic_set(1, args.per_photo, jitter=True)}
    cells: dict[float, list[str]] = {t: [] for t in THRESHOLDS}
    for name, pairs in sets.items():
        scored = [(similarities(pipe, features, left, right), truth) for left, right, truth, *_ in pairs]
        for t in THRESHOLDS:
            tally = Tally()
            for (boxes, sims), truth in scored:
                tally.add([b for b, s in zip(boxes, sims) if s < t], truth, 0.0)
            cells[t].append(f"{name} {tally.precision:.2f}/{tally.recall:.2f}")
    triples = [(similarities(pipe, features, b, s)[1], similarities(pipe, features, b, n)[1])
               for b, s, n in clevr_set()]
    for t in THRESHOLDS:
        found = np.mean([bool((s < t).any()) for s, _ in triples])
        flagged = np.mean([bool((n < t).any()) for _, n in triples])
        print(f"threshold {t}: clevr {found:.2f}/{flagged:.2f} | " + " | ".join(cells[t]), flush=True)


if __name__ == "__main__":
    main()
