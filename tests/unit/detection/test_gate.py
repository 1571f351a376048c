"""Pixel-gated proposals without a model: the box difference is what the crops say, a gate of zero sends every
box whose crops differ at all, duplicate boxes are embedded once, and the --pixel-gate option's values."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from imgdiff_rt.detectors.model import gate as G

from helpers import LEFT, RIGHT


def test_box_difference_is_the_crops_mean_largest_channel_difference():
    rng = np.random.default_rng(3)
    left = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    right = left.copy()
    right[10:20, 5:30] = rng.integers(0, 256, (10, 25, 3), dtype=np.uint8)
    boxes = np.array([[0, 0, 53, 37], [5, 10, 30, 20], [30, 0, 53, 9], [7, 12, 8, 13]])
    got = G.box_differences(G.difference_table(left, right), boxes)
    for (x0, y0, x1, y1), value in zip(boxes, got):
        crop = np.abs(left[y0:y1, x0:x1].astype(int) - right[y0:y1, x0:x1].astype(int)).max(axis=2)
        assert value == pytest.approx(crop.mean(), abs=1e-9)
    assert got[2] == 0.0 and got[1] > 0  # an untouched box measures exactly zero


def test_gate_zero_sends_every_box_whose_crops_differ_at_all():
    diffs = np.array([0.0, 1e-9, 0.4, 3.0])
    assert G.boxes_to_send(diffs, 0.0).tolist() == [False, True, True, True]
    assert G.boxes_to_send(diffs, 0.4).tolist() == [False, False, False, True]
    assert G.boxes_to_send(diffs, None).all()


def test_duplicate_boxes_are_embedded_once():
    boxes = np.array([[1, 2, 3, 4], [5, 6, 7, 8], [1, 2, 3, 4]])
    distinct, inverse = G.unique_boxes(boxes)
    assert distinct.tolist() == [[1, 2, 3, 4], [5, 6, 7, 8]] and inverse.tolist() == [0, 1, 0]
    assert np.array_equal(distinct[inverse], boxes)


@pytest.mark.parametrize("value,ok", [("none", True), ("2.5", True), ("abc", False), ("-1", False)])
def test_pixel_gate_option(tmp_path, value, ok):
    from imgdiff_rt.cli.main import cli

    res = CliRunner().invoke(cli, ["run", str(LEFT), str(RIGHT), "--models", str(tmp_path), "--pixel-gate",
                                   value])
    if ok:
        assert res.exit_code == 0, res.output
        assert json.loads(res.stdout)["regions"]
    else:
        assert res.exit_code == 2 and "--pixel-gate" in res.output and res.output.startswith("Error: ")
