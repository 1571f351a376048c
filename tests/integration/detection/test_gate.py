"""Pixel-gated proposals on real pairs (the real pretrained segmenter proposes the boxes, a tiny random-init
CLIP scores them): a gate of zero gives exactly the ungated method's regions, and the default gate keeps the
same regions there and says what it skipped."""

from __future__ import annotations

import numpy as np
import pytest

from imgdiff_rt.detectors.model import gate as G

from helpers import LEFT, RIGHT


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

    pairs = [(read_image(LEFT), read_image(RIGHT))]
    levir = shared_data / "levir-cd"
    for name in ("test_102_0512_0000.png", "test_121_0768_0256.png"):
        pairs.append((read_image(levir / "A" / name), read_image(levir / "B" / name)))
    clevr = shared_data / "clevr-change"
    for kind in ("semantic", "nonsemantic"):
        pairs.append((read_image(clevr / "before" / "000001.png"), read_image(clevr / kind / "000001.png")))
    made = synthesize(read_image(LEFT), spots=3, seed=5)
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
