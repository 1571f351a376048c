"""Say what produced every result, without a bundle: a pixel run says no model ran, and `--backend triton`
refuses in one line what a request cannot set."""

from __future__ import annotations

import json

import pytest

from helpers import run_example


def test_pixel_run_says_no_model_ran(tmp_path):
    res = run_example("--detector", "pixel", "--models", tmp_path / "none")
    assert res.exit_code == 0, res.output
    weights = json.loads(res.stdout)["weights"]
    assert weights["models_ran"] is False and weights["graphs"] == {} and "no model ran" in weights["note"]
    assert res.stderr == ""


@pytest.mark.parametrize("args,message", [
    (["--backend", "triton", "--precision", "int8"], "--precision the server fixes"),
    (["--backend", "triton", "--threads", "2", "--filter", "segmenter"], "--threads, --filter the server fixes"),
    (["--backend", "triton", "--pair-gate", "x"], "--pair-gate"),
])
def test_backend_triton_refuses_what_a_request_cannot_set(tmp_path, args, message):
    """--backend triton sends each pair to the server's imgdiff_pipeline, which runs on its own bundle: what the
    server fixes when its repository is written is refused here, before any request."""
    res = run_example(*args)
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], res.stderr
