"""`imgdiff-rt web` on a model bundle (the tiny random-init one) says its weights are random."""

from __future__ import annotations

import io

import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the web extra (pip install 'imgdiff-rt[web]') is not installed")
from fastapi.testclient import TestClient  # noqa: E402

from imgdiff_rt.cli.web_cmd import make_app  # noqa: E402

from helpers import LEFT, RIGHT, error_of, post  # noqa: E402


def test_a_model_bundle_server_says_its_weights_are_random(tiny_runtime_bundle):
    """Any backend's pipeline: here hybrid on a tiny random-init bundle; per-request options reuse its sessions."""
    left, right = LEFT.read_bytes(), RIGHT.read_bytes()
    with TestClient(make_app(["--models", str(tiny_runtime_bundle), "--detector", "hybrid"])) as c:
        info = c.get("/v1/info").json()
        assert info["pipeline"]["detector"] == "hybrid" and info["weights"]["all_pretrained"] is False
        assert {g["weights"] for g in info["weights"]["graphs"].values()} == {"tiny"}
        assert "not trained weights" in info["notice"]
        body = post(c, left, right, data={"max-regions": "2"}).json()
        assert body["settings"]["detector"] == "hybrid" and "model_detector" in body["settings"]
        assert body["settings"]["pixel"]["max_regions"] == 2
        annotated = Image.open(io.BytesIO(c.get(body["job"]["links"]["annotated_png"]).content))
        assert annotated.height > body["size"][1]  # the footer that says the weights are not trained
        assert "server setting" in error_of(post(c, left, right, data={"clip-threshold": "0.5"}), 400)
