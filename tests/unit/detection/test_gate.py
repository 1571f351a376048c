"""Pixel-gated proposals: a gate of zero gives exactly the ungated method's regions on real pairs (the real
pretrained segmenter proposes the boxes, a tiny random-init CLIP scores them), the default gate keeps the same
regions there, and the box difference is what the crops say."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from imgdiff_rt.detectors.model import gate as G

from helpers import ROOT

EXAMPLE = ROOT / "examples"


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


@pytest.fixture(scope="module")
def gate_bundle(tmp_path_factory, shared_models):
    """The real pretrained segmenter registered as is, and a tiny random-init CLIP to score the crops."""
    from imgdiff_rt.export.build import ExportOptions, run_export

    out = tmp_path_factory.mktemp("gate") / "models"
    run_export(ExportOptions(segmenter_onnx=str(shared_models / "yolov8n-seg-int8.onnx"), tiny=True,
                             random_init=True, captioner=None), out)
    return out


@pytest.fixture(scope="module")
def real_pairs(shared_data):
    """The bundled example, LEVIR-CD, CLEVR-Change (semantic and non-semantic) and a fresh synth pair."""
    from imgdiff_rt.imageio import read_image
    from imgdiff_rt.evaluation.synth import synthesize

    pairs = [(read_image(EXAMPLE / "left.png"), read_image(EXAMPLE / "right.png"))]
    levir = shared_data / "levir-cd"
    for name in ("test_102_0512_0000.png", "test_121_0768_0256.png"):
        pairs.append((read_image(levir / "A" / name), read_image(levir / "B" / name)))
    clevr = shared_data / "clevr-change"
    for kind in ("semantic", "nonsemantic"):
        pairs.append((read_image(clevr / "before" / "000001.png"), read_image(clevr / kind / "000001.png")))
    made = synthesize(read_image(EXAMPLE / "left.png"), spots=3, seed=5)
    pairs.append((made.left, made.right))
    return pairs


def _regions(detector, left, right, hybrid: bool):
    from imgdiff_rt.detectors.pixel.detector import PixelConfig, detect_pixels

    extra = list(detect_pixels(left, right, PixelConfig()).regions) if hybrid else []
    regions, report = detector.detect(left, right, extra)
    return [(r.bbox, r.source, r.similarity) for r in regions], report


@pytest.mark.parametrize("hybrid", [False, True], ids=["segment", "hybrid"])
def test_zero_gate_gives_the_ungated_regions_on_real_pairs(gate_bundle, real_pairs, hybrid):
    from imgdiff_rt.detectors.model.detector import ModelDetector, SegmentConfig

    # threshold 0.999 and no cap: nearly every candidate becomes a region, so the comparison covers them all
    settings = dict(clip_threshold=0.999, max_proposals=100)
    ungated = ModelDetector(gate_bundle, config=SegmentConfig(pixel_gate=None, **settings))
    zero = ModelDetector(gate_bundle, config=SegmentConfig(pixel_gate=0.0, **settings))
    skipped = compared = 0
    for left, right in real_pairs:
        want, _ = _regions(ungated, left, right, hybrid)
        got, report = _regions(zero, left, right, hybrid)
        assert [(b, s) for b, s, _ in got] == [(b, s) for b, s, _ in want]
        np.testing.assert_allclose([v for *_, v in got], [v for *_, v in want], atol=1e-5)
        skipped += len(report.facts["pixel_gate"]["skipped"])
        compared += len(want)
    assert compared >= 10 and skipped >= 1  # the gate did skip boxes, and many regions were compared


def test_default_gate_keeps_the_same_regions_and_says_what_it_skipped(gate_bundle, real_pairs):
    from imgdiff_rt.detectors.model.detector import ModelDetector, SegmentConfig

    ungated = ModelDetector(gate_bundle, config=SegmentConfig(pixel_gate=None))
    default = ModelDetector(gate_bundle)
    assert default.config.pixel_gate == G.DEFAULT_PIXEL_GATE
    for left, right in real_pairs:
        want, _ = _regions(ungated, left, right, hybrid=True)
        got, report = _regions(default, left, right, hybrid=True)
        assert [(b, s) for b, s, _ in got] == [(b, s) for b, s, _ in want]
        facts = report.facts["pixel_gate"]
        assert facts["gate"] == G.DEFAULT_PIXEL_GATE and facts["similarity_recorded"] == 1.0 and facts["reason"]
        assert all(s["difference"] <= G.DEFAULT_PIXEL_GATE for s in facts["skipped"])
        assert report.facts["clip_boxes"] + len(facts["skipped"]) <= report.facts["candidates"]


@pytest.mark.parametrize("value,ok", [("none", True), ("2.5", True), ("abc", False), ("-1", False)])
def test_pixel_gate_option(tmp_path, value, ok):
    from imgdiff_rt.cli.main import cli

    res = CliRunner().invoke(cli, ["run", str(EXAMPLE / "left.png"), str(EXAMPLE / "right.png"), "--models",
                                   str(tmp_path), "--pixel-gate", value])
    if ok:
        assert res.exit_code == 0, res.output
        assert json.loads(res.stdout)["regions"]
    else:
        assert res.exit_code == 2 and "--pixel-gate" in res.output and res.output.startswith("Error: ")
