"""The segment / hybrid detectors end to end on a tiny random-init bundle: the CLI's JSON, onnx-vs-torch
parity of the regions, the left-image cache, the pair gate, and the no-bundle fallback."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from imgdiff_rt.cli.main import cli
from imgdiff_rt.pipeline import Pipeline
from imgdiff_rt.detectors.model.detector import SegmentConfig

from helpers import LEFT, RIGHT

# a random tiny segmenter scores low: a low confidence gives many candidates; a threshold of 1.0 keeps every
# box whose crops differ at all (random CLIP weights make Img-Diff's 0.85 meaningless)
MANY = SegmentConfig(conf=0.001, clip_threshold=1.0, max_proposals=8)


@pytest.fixture(scope="session")
def models(tiny_runtime_bundle) -> Path:
    return tiny_runtime_bundle


def test_run_segment_writes_the_contract(models):
    res = CliRunner().invoke(cli, ["run", str(LEFT), str(RIGHT), "--detector", "segment", "--models", str(models),
                                   "--clip-threshold", "1", "--max-proposals", "3"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["schema"] == "imgdiff-rt/result/v1" and d["settings"]["detector"] == "segment"
    assert 1 <= len(d["regions"]) <= 3
    notices = [line for line in res.stderr.splitlines() if not line.startswith("warning: ")]  # unsure answers
    assert len(notices) == 1 and "not trained weights" in notices[0]  # tiny weights, said once
    for r in d["regions"]:
        assert r["source"] == "segment" and r["similarity"] is not None and r["description"]
    sims = [r["similarity"] for r in d["regions"]]
    assert sims == sorted(sims), "least similar first"
    assert {"segment", "clip", "detect"} <= set(d["timings_ms"])
    assert d["settings"]["models"]["backend"] == "onnx" and d["settings"]["segment"]["clip_threshold"] == 1.0


@pytest.mark.parametrize("detector,align", [("segment", False), ("hybrid", True)])
def test_onnx_regions_match_the_torch_reference(models, detector, align):
    found = {}
    for backend in ("onnx", "torch"):
        with Pipeline(detector=detector, align=align, models=models, backend=backend, segment=MANY) as p:
            found[backend] = p(LEFT, RIGHT).regions
    onnx, ref = found["onnx"], found["torch"]
    assert len(onnx) == len(ref) >= (2 if detector == "hybrid" else 1)
    for a, b in zip(onnx, ref):
        assert np.abs(np.subtract(a.bbox, b.bbox)).max() <= 1 and a.source == b.source
        assert abs(a.similarity - b.similarity) <= 1e-3
    if detector == "hybrid":
        assert "pixel" in {r.source for r in onnx}


def test_onnx_segments_match_the_torch_reference(models):
    """Every decoded box (not only those the filter keeps): a random tiny head draws mostly image-sized boxes,
    so a loose NMS keeps dozens of them to compare."""
    from imgdiff_rt.imageio import read_image
    from imgdiff_rt.detectors.model.detector import ModelDetector

    images = [read_image(LEFT), read_image(RIGHT)]
    cfg = SegmentConfig(conf=0.001, iou=0.9)
    segs = {}
    for backend in ("onnx", "torch"):
        detector = ModelDetector(models, backend, config=cfg)
        segs[backend] = detector.segment(images)
        detector.close()
    for a, b in zip(segs["onnx"], segs["torch"]):
        assert len(a) == len(b) >= 20
        assert np.abs(a.boxes - b.boxes).max() <= 1 and np.abs(a.scores - b.scores).max() <= 1e-3


def test_one_left_image_is_segmented_and_embedded_once(models):
    with Pipeline.from_bundle(models, detector="segment", segment=MANY) as pipe:
        seg = pipe._detector.segmenter
        batches = []
        real_run = seg.run
        seg.run = lambda feeds: (batches.append(len(feeds["images"])), real_run(feeds))[1]
        first = pipe(LEFT, RIGHT)
        again = pipe(LEFT, RIGHT)
        pipe(LEFT, LEFT)
    assert batches == [2, 1, 1], "left and right in one batch, then only the right image"
    assert pipe._detector is None  # closed by the context manager
    assert [r.bbox for r in first.regions] == [r.bbox for r in again.regions]
    assert again.settings["model_detector"]["left_cached"] is True


def test_no_candidates_gives_no_regions(models):
    with Pipeline(detector="segment", models=models, segment=SegmentConfig(conf=0.99)) as pipe:
        result = pipe(LEFT, RIGHT)
    assert result.regions == () and result.settings["model_detector"]["candidates"] == 0


def test_pair_gate_drops_identical_pairs(models):
    with Pipeline(detector="segment", models=models, segment=SegmentConfig(pair_gate=(0.9, 0.98))) as pipe:
        result = pipe(LEFT, LEFT)
    facts = result.settings["model_detector"]
    assert result.regions == () and facts["pair_gate_passed"] is False and facts["pair_similarity"] > 0.98


def test_no_bundle_falls_back_to_pixel_with_one_hint(tmp_path, monkeypatch):
    monkeypatch.setenv("IMGDIFF_RT_HOME", str(tmp_path))
    res = CliRunner().invoke(cli, ["run", str(LEFT), str(RIGHT)])
    assert res.exit_code == 0 and json.loads(res.stdout)["settings"]["detector"] == "pixel"
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "imgdiff-rt export" in lines[0]
    res = CliRunner().invoke(cli, ["run", str(LEFT), str(RIGHT), "--detector", "pixel"])
    assert res.exit_code == 0 and res.stderr == ""


def test_a_present_bundle_with_untrained_clip_keeps_the_pixel_default(models, monkeypatch):
    """The CLIP filter is the default only on pretrained CLIP weights
    (tests/integration/runtime/test_weights.py)."""
    monkeypatch.setenv("IMGDIFF_RT_HOME", str(models.parent))
    res = CliRunner().invoke(cli, ["run", str(LEFT), str(RIGHT), "--max-proposals", "2"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["settings"]["detector"] == "pixel" and "CLIP has tiny weights" in res.stderr


@pytest.mark.parametrize("args,message", [
    (["--detector", "segment", "--models", "{tmp}/none"], "no model bundle at"),
    (["--detector", "segment", "--models", "{models}", "--pair-gate", "0.9"], "--pair-gate"),
    (["--detector", "segment", "--models", "{models}", "--max-proposals", "0"], "max-proposals"),
    (["--detector", "segment", "--models", "{models}", "--precision", "int8"], "no int8 clip_image graph"),
])
def test_model_usage_errors_are_one_line(models, tmp_path, args, message):
    fill = {"tmp": tmp_path, "models": models}
    res = CliRunner().invoke(cli, ["run", str(LEFT), str(RIGHT), *[a.format(**fill) for a in args]])
    assert res.exit_code in (1, 2) and "Traceback" not in res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], res.stderr
