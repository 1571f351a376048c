"""Say what produced every result: the `weights` block, the one stderr notice, the picture's footer, and the
default detector that depends on what the bundle holds."""

from __future__ import annotations

import json

import cv2
from click.testing import CliRunner

from imgdiff_rt.cli.main import cli

from helpers import LEFT, run_example


def test_tiny_weights_are_said_in_json_once_on_stderr_and_on_the_picture(tiny_runtime_bundle, tmp_path):
    res = run_example("--detector", "segment", "--models", tiny_runtime_bundle, "--max-proposals", "2",
                      "--out", tmp_path / "out")
    assert res.exit_code == 0, res.output
    weights = json.loads(res.stdout)["weights"]
    assert weights["models_ran"] is True and weights["all_pretrained"] is False
    assert {g: v["weights"] for g, v in weights["graphs"].items()} == {"segmenter": "tiny", "clip_image": "tiny"}
    assert all(v["source"] for v in weights["graphs"].values())
    lines = [line for line in res.stderr.splitlines() if "not trained weights" in line]
    assert len(lines) == 1 and "segmenter: tiny" in lines[0]
    picture = cv2.imread(str(tmp_path / "out" / "examples.png"))
    left = cv2.imread(str(LEFT))
    assert picture.shape[0] > left.shape[0]  # the footer strip below the two images
    strip = picture[left.shape[0]:]
    assert strip.reshape(-1, 3).std(axis=0).max() > 10  # it carries text, not just a blank bar


def test_default_detector_on_untrained_clip_is_pixel_with_one_line(tiny_runtime_bundle):
    res = run_example("--models", tiny_runtime_bundle)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["settings"]["detector"] == "pixel"
    why = [line for line in res.stderr.splitlines() if "pixel detector ran" in line]
    assert len(why) == 1 and "CLIP has tiny weights" in why[0]


def test_bundle_without_clip_falls_back_and_explicit_segment_is_a_usage_error(registered_segmenter_bundle):
    res = run_example("--models", registered_segmenter_bundle)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["settings"]["detector"] == "pixel"
    assert "has no clip_image graph" in res.stderr
    res = run_example("--models", registered_segmenter_bundle, "--detector", "segment")
    assert res.exit_code == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "clip_image" in lines[0]
    assert "imgdiff-rt export --out" in lines[0]


def test_bench_says_once_that_the_weights_are_not_trained(tiny_runtime_bundle, tmp_path):
    res = CliRunner().invoke(cli, ["bench", "--models", str(tiny_runtime_bundle), "--backends", "onnx",
                                   "--stages", "clip", "--out", str(tmp_path / "bench"), "--dry-run"])
    assert res.exit_code == 0, res.output
    lines = [line for line in res.stderr.splitlines() if "not trained weights" in line]
    assert len(lines) == 1 and "clip_image: tiny" in lines[0]
