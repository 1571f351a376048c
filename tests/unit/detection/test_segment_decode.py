"""Array functions of the segment detector: letterbox, decode, NMS, proposals and the CLIP filter."""

from __future__ import annotations

import numpy as np
import pytest

from imgdiff_rt.detectors.model import clip_filter as F
from imgdiff_rt.runtime.preprocess import clip_pixels, letterbox, letterbox_batch
from imgdiff_rt.detectors.model.proposals import crop_pairs, gather_proposals
from imgdiff_rt.runtime.segment_decode import box_iou, decode_image, nms


def test_letterbox_places_the_image_and_maps_boxes_back():
    image = np.zeros((100, 200, 3), np.uint8)
    x, lb = letterbox(image, 64)
    assert x.shape == (3, 64, 64) and x.dtype == np.float32
    assert lb.ratio == pytest.approx(0.32) and (lb.left, lb.top) == (0, 16)
    assert np.allclose(x[:, 0, 0], 114 / 255) and np.allclose(x[:, 32, 32], 0)
    back = lb.boxes_to_original(np.array([[0, 16, 64, 48], [-5, 0, 70, 70]]))
    assert np.allclose(back[0], [0, 0, 200, 100]) and np.allclose(back[1], [0, 0, 200, 100])
    batch, lbs = letterbox_batch([image, image[:50]], 64)
    assert batch.shape == (2, 3, 64, 64) and len(lbs) == 2


def _preds(rows, nc=2, anchors=6):
    """preds (4 + nc + 32, anchors) from [(cx, cy, w, h, class, score)], the rest zero."""
    p = np.zeros((4 + nc + 32, anchors), np.float32)
    for i, (cx, cy, w, h, c, s) in enumerate(rows):
        p[:4, i] = cx, cy, w, h
        p[4 + c, i] = s
        p[4 + nc:, i] = 1.0  # mask coefficients: every prototype counts
    return p


def test_decode_filters_by_confidence_runs_nms_per_class_and_crops_masks_to_boxes():
    rows = [(16, 16, 16, 16, 0, 0.9), (17, 16, 16, 16, 0, 0.8),   # duplicate of the first
            (17, 16, 16, 16, 1, 0.7),                             # same place, other class: kept
            (48, 48, 8, 8, 0, 0.04)]                              # under the 0.05 confidence
    protos = np.ones((32, 16, 16), np.float32)
    _, lb = letterbox(np.zeros((64, 64, 3), np.uint8), 64)
    seg = decode_image(_preds(rows), protos, 2, lb, with_masks=True)
    assert len(seg) == 2 and seg.classes.tolist() == [0, 1]
    assert np.allclose(seg.boxes[0], [8, 8, 24, 24]) and seg.scores[0] == pytest.approx(0.9)
    assert seg.masks.shape == (2, 64, 64)
    ys, xs = np.nonzero(seg.masks[0])
    assert 6 <= xs.min() and xs.max() <= 25 and 6 <= ys.min() and ys.max() <= 25  # cropped to the box
    assert len(decode_image(_preds(rows), protos, 2, lb, agnostic=True)) == 1


def test_nms_and_iou():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30]], np.float32)
    assert box_iou(boxes[:1], boxes[1:2])[0, 0] == pytest.approx(90 / 110)
    assert nms(boxes, np.array([0.5, 0.9, 0.1]), 0.5).tolist() == [1, 2]


def test_proposals_drop_small_boxes_and_duplicates_from_both_images():
    left = np.array([[0, 0, 50, 50], [0, 0, 2, 2]], np.float32)            # the second is < 1/400 of 100x100
    right = np.array([[1, 1, 51, 51], [60, 60, 90, 90]], np.float32)       # the first duplicates left[0]
    boxes, scores = gather_proposals([left, right], [[0.5, 0.9], [0.8, 0.3]], 100, 100)
    assert boxes.tolist() == [[1, 1, 51, 51], [60, 60, 90, 90]] and scores.tolist() == pytest.approx([0.8, 0.3])
    crops = crop_pairs(np.zeros((100, 100, 3), np.uint8), np.ones((100, 100, 3), np.uint8), boxes)
    assert len(crops) == 4 and crops[0].shape == (50, 50, 3) and crops[3].max() == 1
    assert gather_proposals([], [], 100, 100)[0].shape == (0, 4)


def test_clip_filter_keeps_the_least_similar_below_the_threshold():
    sims = np.array([0.99, 0.2, 0.84, 0.5, 0.86])
    assert F.select_different(sims, 0.85, 5).tolist() == [1, 3, 2]
    assert F.select_different(sims, 0.85, 2).tolist() == [1, 3]
    a = np.array([[1, 0], [0, 2]], np.float32)
    assert F.split_pair_embeds(np.concatenate([a, a[::-1]])).tolist() == pytest.approx([0, 0])
    assert F.parse_pair_gate("0.9:0.98") == (0.9, 0.98) and F.pair_gate(0.95, 0.9, 0.98)
    for bad in ("0.9", "0.98:0.9", "x:y"):
        with pytest.raises(ValueError):
            F.parse_pair_gate(bad)
    pixels = clip_pixels([np.zeros((10, 40, 3), np.uint8), np.zeros((0, 5, 3), np.uint8)], 16)
    assert pixels.shape == (2, 3, 16, 16) and np.isfinite(pixels).all()
