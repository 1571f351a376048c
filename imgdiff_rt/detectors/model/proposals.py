"""Candidate boxes for the CLIP filter: boxes from both images, filtered, de-duplicated, cropped on both sides.

Img-Diff's rule: every box found in either image is a candidate (an object that appeared is only in the right
image's segmentation, one that vanished only in the left's); boxes under 1/400 of the image area are dropped;
overlapping candidates (IoU >= 0.5) are merged into the best-scoring one; the same box is cropped from both
images so CLIP compares like with like.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from imgdiff_rt.runtime.segment_decode import box_iou

MIN_AREA_FRACTION = 1 / 400  # Img-Diff: boxes smaller than this share of the image are noise
DEDUP_IOU = 0.5


def integer_boxes(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Float xyxy -> int xyxy inside the image (x1/y1 exclusive), at least 1 px a side."""
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    x0 = np.floor(b[:, 0]).clip(0, width - 1)
    y0 = np.floor(b[:, 1]).clip(0, height - 1)
    x1 = np.maximum(np.ceil(b[:, 2]).clip(0, width), x0 + 1)
    y1 = np.maximum(np.ceil(b[:, 3]).clip(0, height), y0 + 1)
    return np.stack([x0, y0, x1, y1], axis=1).astype(np.int64)


def gather_proposals(box_sets: Sequence[np.ndarray], score_sets: Sequence[np.ndarray], width: int, height: int,
                     *, min_area_fraction: float = MIN_AREA_FRACTION, iou: float = DEDUP_IOU,
                     limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (float xyxy, image pixels) from several sources -> (int boxes, scores), de-duplicated.

    Duplicates keep the best-scoring box; the result is ordered best score first; ``limit`` caps it (the
    CLIP batch size)."""
    boxes = np.concatenate([np.asarray(b, np.float32).reshape(-1, 4) for b in box_sets] or [np.zeros((0, 4))])
    scores = np.concatenate([np.asarray(s, np.float32).reshape(-1) for s in score_sets] or [np.zeros(0)])
    if len(boxes) == 0:
        return np.zeros((0, 4), np.int64), np.zeros(0, np.float32)
    boxes = integer_boxes(boxes, width, height)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    big = area >= min_area_fraction * width * height
    boxes, scores = boxes[big], scores[big]
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    for i in order:
        if keep and box_iou(boxes[i:i + 1], boxes[keep]).max() >= iou:
            continue
        keep.append(int(i))
        if limit is not None and len(keep) >= limit:
            break
    return boxes[keep], scores[keep]


def crop_pairs(left: np.ndarray, right: np.ndarray, boxes: np.ndarray) -> list[np.ndarray]:
    """The same boxes cut from both images: [left crops..., right crops...] (one CLIP batch)."""
    lefts = [left[y0:y1, x0:x1] for x0, y0, x1, y1 in np.asarray(boxes, np.int64)]
    rights = [right[y0:y1, x0:x1] for x0, y0, x1, y1 in np.asarray(boxes, np.int64)]
    return lefts + rights
