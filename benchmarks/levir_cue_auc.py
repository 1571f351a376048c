"""How much each per-pixel cue says about LEVIR-CD's building changes: the ROC AUC of the cue against the truth
masks, pooled over the 10 pairs with changed pixels (0.5 = no information). docs/detection.md quotes the table.

    nice python benchmarks/levir_cue_auc.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
from scipy.stats import rankdata

sys.path.insert(0, str(Path(__file__).resolve().parent))
from detection_sets import levir_set  # noqa: E402

from imgdiff_rt.detectors.pixel.photometric import compensate  # noqa: E402
from imgdiff_rt.detectors.pixel.detector import difference_map  # noqa: E402


def auc(truth: np.ndarray, score: np.ndarray) -> float:
    ranks = rankdata(score)
    pos = int(truth.sum())
    neg = truth.size - pos
    return float((ranks[truth].sum() - pos * (pos + 1) / 2) / (pos * neg))


def _lab(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(cv2.GaussianBlur(rgb, (0, 0), 1.5).astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)


def cues(left: np.ndarray, right: np.ndarray) -> dict[str, np.ndarray]:
    fixed, _ = compensate(left, right)
    la, lb = _lab(left), _lab(fixed)
    return {
        "deltaE, as shot": difference_map(left, right, "lab", 1.5, 0),
        "deltaE, light compensated": difference_map(left, fixed, "lab", 1.5, 0),
        "deltaE, compensated, 2 px tolerant": difference_map(left, fixed, "lab", 1.5, 2),
        "chroma difference": np.hypot(la[..., 1] - lb[..., 1], la[..., 2] - lb[..., 2]),
        "lightness difference": np.abs(la[..., 0] - lb[..., 0]),
        "brighter in the right image": lb[..., 0] - la[..., 0],
    }


def main() -> None:
    pooled: dict[str, tuple[list, list]] = {}
    for left, right, _, truth in levir_set():
        if not truth.any():
            continue
        for name, cue in cues(left, right).items():
            pooled.setdefault(name, ([], []))
            pooled[name][0].append(truth.ravel())
            pooled[name][1].append(cue.ravel())
    print("| cue | ROC AUC |\n|---|---|")
    for name, (truths, scores) in pooled.items():
        print(f"| {name} | {auc(np.concatenate(truths), np.concatenate(scores)):.3f} |")


if __name__ == "__main__":
    main()
