"""The served pipeline against `run`: a real tritonserver (nvidia-pytriton's binary + Python backend, CPU) with
the tiny bundle's repository; ``imgdiff_pipeline`` gives the in-process result JSON for every detector and the
BLIP captioner, one request per pair (the server's own request counter), and every imgdiff-rt Python model
answers a malformed request with 400 and its reason while the server stays ready.

One server for the module. The side environment is built on first use (see
tests/integration/triton/test_triton_server.py).
"""

from __future__ import annotations

import json
import re
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from imgdiff_rt.cli.main import cli
from imgdiff_rt.cli.options import _option_defaults, build_pipeline
from imgdiff_rt.errors import TritonRejectedError
from imgdiff_rt.pairs import load_pairs
from imgdiff_rt.triton import client as C
from imgdiff_rt.triton.repository import write_repository
from imgdiff_rt.triton.server import LocalServer

from helpers import LEFT, RIGHT

CLI = str(Path(sys.executable).parent / "imgdiff-rt")
# settings under which the tiny random models keep several regions (the defaults keep none)
LOOSE = {"clip_threshold": 1.0, "max_proposals": 8}


@pytest.fixture(scope="module")
def bundle(tiny_caption_bundle) -> Path:
    return tiny_caption_bundle


@pytest.fixture(scope="module")
def server(bundle, tmp_path_factory):
    from helpers import triton_server_env

    repo = tmp_path_factory.mktemp("served") / "repo"
    write_repository(repo, bundle, platform="python")
    srv = LocalServer(repo, triton_server_env(), exit_timeout=5)
    srv.start(240)
    yield srv
    srv.stop()


def _build(**values):
    return build_pipeline(**{**_option_defaults(), **values})


def _comparable(result: dict) -> dict:
    """The result JSON without what differs by design: timings, where the bundle lies and the session backend
    (``onnx`` here, ``triton-bls`` in the server)."""
    out = json.loads(json.dumps(result))
    out.pop("timings_ms", None)
    settings = out["settings"]
    for key in ("path", "backend"):
        settings.get("models", {}).pop(key, None)
    settings.get("captioning", {}).pop("backend", None)
    out["weights"].pop("bundle", None)
    return out


def _close(a, b, where: str = "result") -> None:
    """Equal, numbers within 1e-4 (the server's numpy is 1.x, the stub's ABI: the last digits of a float32
    statistic may differ); boxes, masks, words and token text exactly."""
    if isinstance(a, dict) and isinstance(b, dict):
        assert sorted(a) == sorted(b), f"{where}: keys {sorted(a)} != {sorted(b)}"
        for k in a:
            _close(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), f"{where}: {len(a)} items != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            _close(x, y, f"{where}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-4, abs=1e-4), f"{where}: {a} != {b}"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def assert_same_answer(served: dict, local: dict) -> None:
    for key in ("bbox", "description", "caption_left", "caption_right", "mask"):
        assert [r[key] for r in served["regions"]] == [r[key] for r in local["regions"]], key
    assert served["warnings"] == local["warnings"] and served["description"] == local["description"]
    _close(_comparable(served), _comparable(local))


def _answers(server, pairs, local_only: dict | None = None, **values):
    """(served, in-process) result dicts per pair; ``local_only``: the in-process run's bundle and precision
    (the server's are its repository's)."""
    local = _build(**{**values, **(local_only or {})})
    served = _build(backend="triton", url=server.grpc_url, protocol="grpc", **values)
    with local, served:
        return [(served.process(left, right, id=pid).result.to_dict(),
                 local.process(left, right, id=pid).result.to_dict()) for pid, left, right in pairs]


def _real_pairs(shared_data: Path, folder: str, n: int) -> list[tuple]:
    return [(p.id, p.left, p.right) for p in load_pairs(shared_data / folder)[:n]]


def test_pixel_detector_served_equals_run(server, shared_data):
    pairs = [("example", LEFT, RIGHT), *_real_pairs(shared_data, "levir-cd", 2),
             *_real_pairs(shared_data, "clevr-change", 2)]
    for served, local in _answers(server, pairs, detector="pixel", align="auto"):
        assert_same_answer(served, local)


@pytest.mark.slow
def test_pixel_detector_served_equals_run_on_ten_levir_and_ten_clevr_pairs(server, shared_data):
    pairs = _real_pairs(shared_data, "levir-cd", 10) + _real_pairs(shared_data, "clevr-change", 10)
    for served, local in _answers(server, pairs, detector="pixel"):
        assert_same_answer(served, local)


@pytest.mark.parametrize("values", [dict(detector="segment"), dict(detector="hybrid"),
                                    dict(detector="segment", captioner="blip")],
                         ids=["segment", "hybrid", "segment+blip"])
def test_model_detectors_and_captions_served_equal_run(server, bundle, values):
    ((served, local),) = _answers(server, [("example", LEFT, RIGHT)], {"models": bundle, "precision": "fp32"},
                                  **values, **LOOSE)
    assert len(local["regions"]) >= 2
    assert_same_answer(served, local)
    if values.get("captioner") == "blip":
        assert all(r["caption_left"] for r in served["regions"])


def _requests(server, model: str) -> int:
    text = urllib.request.urlopen(server.metrics_url, timeout=10).read().decode()
    found = re.search(r'nv_inference_request_success\{model="%s",version="1"\} (\d+)' % model, text)
    return int(found.group(1)) if found else 0


def test_run_and_run_pairs_send_one_request_per_pair(server, tmp_path, shared_data):
    args = ["--backend", "triton", "--url", server.http_url, "--detector", "pixel"]
    before = _requests(server, "imgdiff_pipeline")
    res = CliRunner().invoke(cli, ["run", str(LEFT), str(RIGHT), *args])
    assert res.exit_code == 0, res.output
    local = CliRunner().invoke(cli, ["run", str(LEFT), str(RIGHT), "--detector", "pixel"])
    assert_same_answer(json.loads(res.stdout), json.loads(local.stdout))
    res = CliRunner().invoke(cli, ["run", "--pairs", str(shared_data / "levir-cd"), "--out", str(tmp_path / "b"),
                                   "--quiet", *args])
    assert res.exit_code == 0, res.output
    pairs = len(load_pairs(shared_data / "levir-cd"))
    assert _requests(server, "imgdiff_pipeline") - before == 1 + pairs
    assert (tmp_path / "b" / "results.jsonl").read_text().count("\n") == pairs


def test_a_request_option_the_server_fixes_is_a_400_naming_it(server):
    served = _build(backend="triton", url=server.http_url, protocol="http")
    with served:
        for options, reason in (({"precision": "int8"}, "'precision' is a server setting"),
                                ({"threshold": "abc"}, "threshold 'abc'"), ({"nope": 1}, "unknown field 'nope'")):
            with pytest.raises(TritonRejectedError, match=reason):
                served.with_options(options).process(LEFT, RIGHT)


def _bad_requests(bundle_specs) -> list[tuple[str, dict, str, str]]:
    """(model, inputs, output to ask for, reason the answer must give) for each imgdiff-rt Python model."""
    png = np.frombuffer(LEFT.read_bytes(), np.uint8)
    img = np.array([LEFT.read_bytes()], dtype=object)
    seg, clip = bundle_specs["segmenter"], bundle_specs["clip_image"]
    size = seg.sizes["imgsz"]
    nan_box = np.array([[np.nan, 0, 0, 512, 512], [1, 0, 0, 512, 512]], np.float32)
    return [
        ("imgdiff_pipeline", {"left_image": img, "right_image": np.array([b"garbage" * 9], dtype=object)},
         "result", "right_image"),
        ("imgdiff_pipeline", {"left_image": img, "right_image": img, "options": np.array([b"[1]"], dtype=object)},
         "result", "JSON object"),
        ("imgdiff_pipeline", {"left_image": png, "right_image": img}, "result", "expects .BYTES."),
        ("preprocess", {"left_image": png, "right_image": png[:50]}, "letterbox", "right_image"),
        ("proposals", {"preds": np.zeros((2, seg.sizes["num_outputs"], 8), np.float32),
                       "protos": np.zeros((2, 32, 4, 4), np.float32), "letterbox": nan_box,
                       "pair_rgb": np.zeros((2, 512, 512, 3), np.uint8)}, "boxes", "not finite"),
        ("filter", {"image_embeds": np.ones((3, clip.sizes["embed_dim"]), np.float32),
                    "boxes": np.tile([[0, 0, 8, 8]], (5, 1)).astype(np.int64),
                    "box_scores": np.ones(7, np.float32), "sent": np.ones(5, bool)}, "regions",
         "5 boxes need 5 box_scores"),
        ("imgdiff_caption", {"left_image": png, "right_image": png,
                             "regions": np.array([[0, 0, 9000, 10]], np.int64)}, "captions", "inside the"),
        ("segmenter", {"images": np.zeros((1, 3, size, size + 1), np.float32)}, "preds", "multiples of 32"),
        ("clip_image", {"pixel_values": np.full((1, 3, clip.sizes["image_size"], clip.sizes["image_size"]),
                                                np.nan, np.float32)}, "image_embeds",
         "not finite"),
    ]


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_malformed_requests_to_every_model_are_400_and_the_server_keeps_serving(server, bundle, protocol):
    from imgdiff_rt.models.bundle import Bundle

    b = Bundle.load(bundle)
    specs = {n: b.spec(n) for n in ("segmenter", "clip_image")}
    url = server.http_url if protocol == "http" else server.grpc_url
    with C.TritonClient(url, protocol, retries=0) as client:
        for model, inputs, output, reason in _bad_requests(specs):
            with pytest.raises(TritonRejectedError, match=reason):
                client.infer(model, inputs, [output])
            assert client._client.is_server_ready()
        ok = _build(backend="triton", url=url, protocol=protocol)
        with ok:
            assert ok(LEFT, RIGHT).regions
