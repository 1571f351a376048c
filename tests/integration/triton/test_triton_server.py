"""A real tritonserver (nvidia-pytriton's binary + Python backend, CPU) serving the tiny bundle's repository
with ``--platform python``: the ensemble, the caption model and the ``triton`` Session backend against the
in-process ONNX Runtime results, over HTTP and gRPC; bad requests; server down; ``imgdiff-rt serve``.

The server's side environment is built on first use (pip, ~10 s; see imgdiff_rt/triton/server.py). Where it
cannot be built (no package index) the tests skip, except under CI=true where they fail.
"""

from __future__ import annotations

import io
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgdiff_rt.errors import (TritonModelNotReadyError, TritonRequestError,
                               TritonUnavailableError)
from imgdiff_rt.detectors.model.detector import ModelDetector, SegmentConfig
from imgdiff_rt.triton import client as C
from imgdiff_rt.triton.glue import GLUE, GlueParams, decode_pair, filter_step, preprocess_step, proposals_step
from imgdiff_rt.triton.python_models import caption_regions_arrays
from imgdiff_rt.triton.repository import glue_params, write_repository
from imgdiff_rt.triton.server import LocalServer, free_port

from helpers import ROOT

LEFT = (ROOT / "examples" / "left.png").read_bytes()
RIGHT = (ROOT / "examples" / "right.png").read_bytes()
# Loose settings so the tiny random-weight models give many distinct regions to compare (the defaults give
# one or none): every segment, no CLIP threshold, near-duplicates kept.
CLI = str(Path(sys.executable).parent / "imgdiff-rt")
LOOSE = SegmentConfig(conf=0.0, iou=0.9, clip_threshold=1.0, max_proposals=20, min_area_fraction=0.0,
                      dedup_iou=0.99)


@pytest.fixture(scope="session")
def tiny_bundle(tiny_caption_bundle) -> Path:
    return tiny_caption_bundle


@pytest.fixture(scope="session")
def server_env():
    from helpers import triton_server_env

    return triton_server_env()


@pytest.fixture(scope="session")
def server(tiny_bundle, server_env, tmp_path_factory):
    repo = tmp_path_factory.mktemp("triton") / "repo"
    write_repository(repo, tiny_bundle, platform="python", segment=LOOSE)
    srv = LocalServer(repo, server_env, exit_timeout=5)
    srv.start(240)
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def inproc(tiny_bundle):
    images = decode_pair(np.frombuffer(LEFT, np.uint8), np.frombuffer(RIGHT, np.uint8))
    detector = ModelDetector(tiny_bundle, "onnx", config=LOOSE)
    regions, _ = detector.detect(images.left, images.right)
    detector.close()
    return images, regions


def _check_regions(out: dict, regions) -> None:
    assert len(out["regions"]) == len(regions) > 3
    want = np.array([r.bbox for r in regions])
    assert np.abs(out["regions"] - want).max() <= 1
    np.testing.assert_allclose(out["similarity"], [r.similarity for r in regions], atol=1e-4)


def test_glue_chain_without_server_matches_in_process(tiny_bundle, inproc):
    import onnxruntime as ort

    from imgdiff_rt.models.bundle import Bundle

    bundle = Bundle.load(tiny_bundle)
    specs = {n: bundle.spec(n) for n in ("segmenter", "clip_image")}
    from imgdiff_rt.triton.config import Options

    p = glue_params(specs, Options(platform="python"), tiny_bundle / "clip", LOOSE)
    assert GlueParams.from_strings(p.as_strings()) == p
    seg = ort.InferenceSession(str(bundle.path("segmenter")), providers=["CPUExecutionProvider"])
    clip = ort.InferenceSession(str(bundle.path("clip_image")), providers=["CPUExecutionProvider"])
    a = preprocess_step(np.frombuffer(LEFT, np.uint8), np.frombuffer(RIGHT, np.uint8), p)
    preds, protos = seg.run(["preds", "protos"], {"images": a["images"]})
    b = proposals_step(preds, protos, a["letterbox"], a["pair_rgb"], p)
    (embeds,) = clip.run(["image_embeds"], {"pixel_values": b["pixel_values"]})
    _check_regions(filter_step(embeds, b["boxes"], b["box_scores"], b["sent"], p), inproc[1])


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_ensemble_matches_in_process(server, inproc, protocol):
    url = server.http_url if protocol == "http" else server.grpc_url
    with C.TritonClient(url, protocol) as client:
        _check_regions(C.detect(client, LEFT, RIGHT), inproc[1])


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_triton_session_backend_matches_onnx(server, tiny_bundle, inproc, protocol):
    url = server.http_url if protocol == "http" else server.grpc_url
    images, regions = inproc
    detector = ModelDetector(tiny_bundle, "triton", config=LOOSE, url=url, protocol=protocol)
    try:
        got, _ = detector.detect(images.left, images.right)
    finally:
        detector.close()
    assert [r.bbox for r in got] == [r.bbox for r in regions]
    np.testing.assert_allclose([r.similarity for r in got], [r.similarity for r in regions], atol=1e-5)


def test_caption_model_matches_in_process(server, tiny_bundle, inproc):
    from imgdiff_rt.captioners.blip import BlipCaptioner

    images, regions = inproc
    boxes = np.array([r.bbox for r in regions[:3]])
    local = BlipCaptioner.from_bundle(tiny_bundle, "onnx", text_similarity="exact", device="cpu")
    want = caption_regions_arrays(local, images, boxes)
    local.close()
    for protocol, url in (("http", server.http_url), ("grpc", server.grpc_url)):
        with C.TritonClient(url, protocol) as client:
            got = C.caption(client, LEFT, RIGHT, boxes)
        assert got["caption_ids"].shape[0] == 2 * len(boxes)
        np.testing.assert_array_equal(got["caption_ids"], want["caption_ids"])
        assert [c.decode() for c in got["captions"]] == [c.decode() for c in want["captions"]]


def _png(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (200, 10, 10)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize("bad", ["dtype", "shape", "empty", "one_pixel", "garbage"])
def test_bad_requests_get_errors_and_the_server_keeps_serving(server, inproc, protocol, bad):
    url = server.http_url if protocol == "http" else server.grpc_url
    right = np.frombuffer(RIGHT, np.uint8)
    left = {"dtype": np.frombuffer(LEFT, np.uint8).astype(np.float32),
            "shape": np.frombuffer(LEFT[:1000], np.uint8).reshape(10, 100),
            "empty": np.zeros(0, np.uint8),
            "one_pixel": np.frombuffer(_png(1, 1), np.uint8),
            "garbage": np.frombuffer(b"this is not an image at all" * 10, np.uint8)}[bad]
    names = [t.name for t in GLUE["filter"][1]]
    with C.TritonClient(url, protocol, retries=0) as client:
        with pytest.raises(TritonRequestError):
            client.infer("imgdiff_detect", {"left_image": left, "right_image": right}, names)
        _check_regions(C.detect(client, LEFT, RIGHT), inproc[1])


def test_server_down_and_model_not_ready(server):
    with C.TritonClient(f"127.0.0.1:{free_port()}", "http", timeout=2, retries=1, backoff=0.05) as client:
        t0 = time.perf_counter()
        with pytest.raises(TritonUnavailableError, match="cannot be reached"):
            C.detect(client, LEFT, RIGHT)
        assert time.perf_counter() - t0 < 10
    with C.TritonClient(server.grpc_url, "grpc") as client:
        with pytest.raises(TritonModelNotReadyError, match="no_such_model"):
            client.check_model("no_such_model")


def test_serve_command_starts_prints_urls_and_stops_on_sigterm(server, server_env, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(server.repo / "filter", repo / "filter")
    port = free_port()
    proc = subprocess.Popen([CLI, "serve", "--repo", str(repo),
                             "--http-port", str(port), "--grpc-port", str(free_port()),
                             "--metrics-port", str(free_port()), "--env-dir", str(server_env.root)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        line = proc.stdout.readline()
        assert line.startswith("ready:") and f"127.0.0.1:{port}" in line, proc.stderr.read() if not line else line
        with C.TritonClient(f"127.0.0.1:{port}", "http") as client:
            client.check_model("filter")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_pipeline_backend_triton_equals_onnx(server, tiny_bundle, monkeypatch):
    from imgdiff_rt import Pipeline

    monkeypatch.setenv("IMGDIFF_RT_TRITON_URL", server.grpc_url)
    monkeypatch.setenv("IMGDIFF_RT_TRITON_PROTOCOL", "grpc")
    left, right = ROOT / "examples" / "left.png", ROOT / "examples" / "right.png"
    results = {}
    for backend in ("onnx", "triton"):
        pipeline = Pipeline.from_bundle(tiny_bundle, backend=backend, segment=LOOSE)
        try:
            results[backend] = pipeline(left, right)
        finally:
            pipeline.close()
    a, b = results["onnx"].regions, results["triton"].regions
    assert len(a) == len(b) > 3
    assert [r.bbox for r in a] == [r.bbox for r in b]
    np.testing.assert_allclose([r.similarity for r in a], [r.similarity for r in b], atol=1e-5)
