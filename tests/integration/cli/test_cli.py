"""The CLI through Click's CliRunner where a command does real work: the model options (backend, threads,
beams, new tokens) reach the pipeline built on the tiny random-init bundle (session options in process, each
request's options under `--backend triton`); synth on full-size photos is deterministic, and eval scores what
it made."""

import json

import numpy as np
from click.testing import CliRunner

from imgdiff_rt.cli.main import cli


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_model_options_reach_the_pipeline(tiny_runtime_bundle):
    from imgdiff_rt.cli.options import build_pipeline

    common = dict(detector="segment", captioner="none", align=False, max_regions=10, min_area=None,
                  threshold=None, metric="lab", blur_sigma=1.5, merge_gap=0.02, max_pixels=10**6,
                  models=tiny_runtime_bundle, beams=3, max_new_tokens=9)
    p = build_pipeline(**common, backend="onnx", threads=2)
    assert p._session_opts() == {"threads": 2}
    assert p.caption_options == {"beams": 3, "max_new_tokens": 9}
    # --backend triton: the options travel with each pair's request to the server's imgdiff_pipeline
    served = build_pipeline(**common, backend="triton", url="h:1", protocol="grpc")
    assert (served.url, served.protocol) == ("h:1", "grpc")
    assert served.options["beams"] == 3 and served.options["max_new_tokens"] == 9
    assert served.options["detector"] == "segment" and served.options["max_pixels"] == 10**6


def test_synth_then_eval(tmp_path):
    res = invoke("synth", "skimage:coffee", "--out", tmp_path / "set", "--count", "3", "--seed", "4")
    assert res.exit_code == 0
    lines = (tmp_path / "set" / "pairs.jsonl").read_text().splitlines()
    assert [json.loads(x)["id"] for x in lines] == ["coffee-l1-s4", "coffee-l1-s5", "coffee-l1-s6"]
    assert (tmp_path / "set" / "coffee-l1-s5" / "truth.json").exists()
    res = invoke("eval", "--pairs", tmp_path / "set" / "pairs.jsonl", "--out", tmp_path / "ev")
    assert res.exit_code == 0 and "precision" in res.stdout and "median ms" in res.stdout
    summary = json.loads((tmp_path / "ev" / "eval_summary.json").read_text())
    assert summary["pairs"] == 3 and summary["recall"] >= 0.5
    assert len((tmp_path / "ev" / "eval.jsonl").read_text().splitlines()) == 3


def test_synth_is_deterministic_through_the_cli(tmp_path):
    for name in ("a", "b"):
        assert invoke("synth", "skimage:chelsea", "--out", tmp_path / name, "--seed", "9").exit_code == 0
    from imgdiff_rt.imageio import read_image

    assert (read_image(tmp_path / "a" / "right.png") == read_image(tmp_path / "b" / "right.png")).all()
    assert (tmp_path / "a" / "truth.json").read_text() == (tmp_path / "b" / "truth.json").read_text()
    assert not np.array_equal(read_image(tmp_path / "a" / "left.png"), read_image(tmp_path / "a" / "right.png"))
