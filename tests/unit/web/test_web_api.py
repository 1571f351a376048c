"""The HTTP API of `imgdiff-rt web` through FastAPI's test client: good pairs, every bad input of the CLI's list,
bad options, the caps, and the job limit. Every error is JSON {"error": ...} with a 4xx, never a traceback."""

from __future__ import annotations

import io
import json
import threading

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

pytest.importorskip("fastapi", reason="the web extra (pip install 'imgdiff-rt[web]') is not installed")
from fastapi.testclient import TestClient  # noqa: E402

from imgdiff_rt.cli.main import cli  # noqa: E402
from imgdiff_rt.cli.web_cmd import make_app, web  # noqa: E402
from imgdiff_rt.imageio import DEFAULT_MAX_PIXELS  # noqa: E402

from helpers import EXAMPLE, LEFT, RIGHT, error_of, png, post, textured  # noqa: E402

CAP = f"over the {DEFAULT_MAX_PIXELS / 1e6:g} MP cap"


def jpeg(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=92)
    return buf.getvalue()


def changed(arr: np.ndarray) -> np.ndarray:
    out = arr.copy()
    out[30:60, 40:90] = 0
    return out


# ---- good pairs ------------------------------------------------------------------------------------------
def test_example_pair_matches_the_cli_and_serves_its_pictures(client):
    left, right = LEFT.read_bytes(), RIGHT.read_bytes()
    resp = post(client, left, right)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    cli_res = CliRunner().invoke(cli, ["run", str(LEFT), str(RIGHT)])
    from_cli = json.loads(cli_res.stdout)
    truth = json.loads((EXAMPLE / "truth.json").read_text())
    assert body["schema"] == "imgdiff-rt/result/v1" and len(body["regions"]) == len(truth["changes"]) == 3
    assert [r["bbox"] for r in body["regions"]] == [r["bbox"] for r in from_cli["regions"]]
    assert [r["description"] for r in body["regions"]] == [r["description"] for r in from_cli["regions"]]
    assert (body["left"], body["right"], body["id"]) == ("left.png", "right.png", body["job"]["id"])
    assert body["settings"]["detector"] == "pixel" and "decode_uploads" in body["timings_ms"]
    links, (w, h) = body["job"]["links"], body["size"]
    annotated = Image.open(io.BytesIO(client.get(links["annotated_png"]).content))
    assert annotated.size == (2 * w + 20, h)
    mask = np.asarray(Image.open(io.BytesIO(client.get(links["mask_png"]).content)))
    assert mask.shape == (h, w) and set(np.unique(mask)) == {0, 255}
    for r in body["regions"]:  # every region's box holds changed pixels of the mask
        x0, y0, x1, y1 = r["bbox"]
        assert mask[y0:y1, x0:x1].any()
    records = client.get(links["img_diff"]).json()
    assert len(records) == 3 and records[0]["id"] == f"{body['job']['id']}-1"
    picture = client.get(f"{links['result']}/img-diff/{records[0]['image']}")
    assert picture.status_code == 200 and Image.open(io.BytesIO(picture.content)).size == annotated.size
    assert client.get(links["result"]).json()["regions"] == body["regions"]


@pytest.mark.parametrize("left,right,n_regions", [
    (png(textured(120, 160)), png(textured(120, 160)), 0),
    (png(textured(120, 160)), png(changed(textured(120, 160))), 1),
    (jpeg(textured(120, 160)), png(changed(textured(120, 160))), 1),
], ids=["identical", "one-change", "jpeg-and-png"])
def test_good_pairs(client, left, right, n_regions):
    resp = post(client, left, right)
    assert resp.status_code == 200, resp.text
    assert len(resp.json()["regions"]) == n_regions


def test_right_image_of_another_size_is_resized_and_said_so(client):
    resp = post(client, png(textured(120, 160)), png(textured(240, 320)))
    assert resp.status_code == 200 and resp.json()["settings"]["right_resized_from"] == [320, 240]


def test_format_is_sniffed_from_content_not_name(client):
    good = png(textured(120, 160))
    resp = client.post("/v1/diff", files={"left": ("notes.txt", good, "text/plain"),
                                          "right": ("x", good, "application/octet-stream")})
    assert resp.status_code == 200, resp.text
    text = b"this is not an image\n"
    resp = client.post("/v1/diff", files={"left": ("photo.png", text, "image/png"), "right": ("b.png", good)})
    assert "left (photo.png): not a recognised image format" in error_of(resp, 400)


# ---- options ---------------------------------------------------------------------------------------------
def test_options_as_form_fields_and_json_part(client):
    left, right = LEFT.read_bytes(), RIGHT.read_bytes()
    one = post(client, left, right, data={"max-regions": "1", "metric": "absdiff"}).json()
    assert len(one["regions"]) == 1 and one["settings"]["pixel"]["metric"] == "absdiff"
    two = post(client, left, right, data={"options": json.dumps({"max_regions": 2, "blur": 2.0})}).json()
    assert len(two["regions"]) == 2 and two["settings"]["pixel"]["blur_sigma"] == 2.0
    again = post(client, left, right).json()  # a request's options never stick to the server
    assert len(again["regions"]) == 3 and again["settings"]["pixel"]["metric"] == "lab"


BAD_OPTIONS = [
    ({"max-regions": "abc"}, "option 'max-regions'"),
    ({"metric": "cosine"}, "option 'metric'"),
    ({"threshold": "banana"}, "threshold 'banana'"),
    ({"blur": "-1"}, "blur"),
    ({"detector": "segment"}, "option 'detector' is a server setting"),
    ({"port": "1"}, "option 'port' is a server setting"),
    ({"colour": "red"}, "unknown field 'colour'"),
    ({"max-pixels": "999999999999"}, "over the server's cap"),
    ({"options": "{not json"}, "field 'options' is not valid JSON"),
    ({"options": "[1, 2]"}, "must be a JSON object"),
    ({"options": json.dumps({"max_regions": 2.5})}, "option 'max_regions'"),
    ({"options": json.dumps({"max_regions": True})}, "option 'max_regions'"),
    ({"options": json.dumps({"metric": ["lab"]})}, "option 'metric'"),
    ({"max-regions": "2", "options": json.dumps({"max_regions": 3})}, "given both as a field and in 'options'"),
]


@pytest.mark.parametrize("data,message", BAD_OPTIONS, ids=[str(i) for i in range(len(BAD_OPTIONS))])
def test_bad_option_values(client, data, message):
    good = png(textured(120, 160))
    assert message in error_of(post(client, good, good, data=data), 400)


# ---- bad inputs: the CLI's list (tests/unit/cli/test_bad_inputs.py), as uploads -------------------------
def _truncated(encode):
    data = encode(textured(120, 160))
    return data[: len(data) // 2]


def _bomb() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (10_000, 9_000)).save(buf, format="PNG")  # 90 MP of zeros, a few KB
    return buf.getvalue()


BAD_UPLOADS = [
    ("zero-byte", b"", 400, "file is empty (0 bytes)"),
    ("text-as-jpg", b"this is not an image\n", 400, "not a recognised image format"),
    ("truncated-jpeg", _truncated(jpeg), 400, "truncated or corrupt"),
    ("truncated-png", _truncated(png), 400, "truncated or corrupt"),
    ("one-pixel", png(textured(1, 1)), 400, "image is 1x1; both sides must be at least 8 px"),
    ("bomb", _bomb(), 413, CAP),
]


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("name,data,status,problem", BAD_UPLOADS, ids=[b[0] for b in BAD_UPLOADS])
def test_bad_upload(client, side, name, data, status, problem):
    good = png(textured(120, 160))
    files = {"left": ("good.png", good), "right": ("good.png", good)}
    files[side] = (f"{name}.img", data)
    message = error_of(client.post("/v1/diff", files=files), status)
    assert message.startswith(f"{side} ({name}.img): ") and problem in message


def _header_only_png(w: int, h: int) -> bytes:
    """A PNG header and a few bytes of pixel data for a w x h image: decoding it would fail as truncated."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))


def test_pixel_cap_is_checked_from_the_header_before_decoding(client):
    good = png(textured(120, 160))
    message = error_of(post(client, _header_only_png(100_000, 100_000), good), 413)
    assert "100000x100000" in message and CAP in message  # not "truncated": never decoded
    per_request = error_of(post(client, good, good, data={"max-pixels": "1000"}), 413)
    assert "over the 0.001 MP cap" in per_request


WRONG_FORMS = [
    ({"left": ("a.png", "PNG")}, "missing file field 'right'"),
    ({}, "missing file field 'left' and 'right'"),
    ({"left": ("a.png", "PNG"), "right": ("b.png", "PNG"), "middle": ("c.png", "PNG")},
     "field 'middle' is a file; only 'left' and 'right' take files"),
]


@pytest.mark.parametrize("files,message", WRONG_FORMS, ids=["one-file", "no-file", "third-file"])
def test_wrong_fields(client, files, message):
    good = png(textured(120, 160))
    real = {k: (v[0], good) for k, v in files.items()} or {"options": (None, "{}")}  # multipart, no file
    resp = client.post("/v1/diff", files=real)
    assert message in error_of(resp, 400)


def test_image_sent_as_text_field(client):
    good = png(textured(120, 160))
    resp = client.post("/v1/diff", files={"right": ("b.png", good)}, data={"left": "examples/left.png"})
    assert "field 'left' must be a file part" in error_of(resp, 400)


@pytest.mark.parametrize("fields,message", [
    ({f"f{i}": "1" for i in range(40)}, "Too many fields"),
    ({"threshold": "9" * 70_000}, "Part exceeded maximum size"),
], ids=["too-many-fields", "huge-field"])
def test_form_caps(client, fields, message):
    good = png(textured(64, 64))
    assert message in error_of(post(client, good, good, data=fields), 400)


def test_not_multipart(client):
    assert "multipart/form-data" in error_of(client.post("/v1/diff", json={"left": "a"}), 415)


@pytest.mark.parametrize("method,path,status", [
    ("get", "/v1/nothing", 404), ("get", "/v1/diff/0123456789abcdef/mask.png", 404),
    ("get", "/v1/diff/../../etc/passwd", 404), ("get", "/v1/diff/0123456789abcdef/img-diff/x.png", 404),
    ("get", "/v1/example/truth.json", 404), ("delete", "/v1/diff", 405), ("get", "/v1/diff", 405),
])
def test_unknown_routes_and_methods(client, method, path, status):
    error_of(getattr(client, method)(path), status)


# ---- limits ----------------------------------------------------------------------------------------------
def noise_png(side: int) -> bytes:
    return png(np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8))


def test_upload_cap():
    with TestClient(make_app(["--max-upload-mb", "0.05"])) as c:  # 52 KB per file
        big, small = noise_png(200), png(textured(64, 64))  # ~120 KB of noise, a few KB
        assert "right (right.png): file is over the 0.05 MiB upload cap" in error_of(post(c, small, big), 413)
        assert post(c, small, small).status_code == 200


def test_body_cap_declared_and_streamed():
    with TestClient(make_app(["--max-upload-mb", "0.05"])) as c:
        huge = b"x" * 400_000
        declared = c.post("/v1/diff", content=huge, headers={"content-type": "multipart/form-data; boundary=b"})
        assert "request body is over" in error_of(declared, 413)

        def chunks():  # no Content-Length: counted as it streams
            for _ in range(40):
                yield b"y" * 10_000

        streamed = c.post("/v1/diff", content=chunks(), headers={"content-type": "multipart/form-data; boundary=b"})
        assert "request body is over" in error_of(streamed, 413)


def test_kept_results_expire_by_memory_budget():
    left, right = LEFT.read_bytes(), RIGHT.read_bytes()
    with TestClient(make_app(["--keep-mb", "1"])) as c:  # one example job holds ~3 MB of pixels
        first = post(c, left, right).json()["job"]["links"]
        second = post(c, left, right).json()["job"]["links"]
        assert "results are kept" in error_of(c.get(first["annotated_png"]), 404)
        assert c.get(second["annotated_png"]).status_code == 200
        assert c.get("/v1/health").json()["jobs_kept"] == 1


def test_internal_error_is_json_without_traceback(monkeypatch):
    app = make_app([])

    def broken(*a, **k):
        raise RuntimeError("bug with a secret path /srv/x")

    monkeypatch.setattr(app.state.service.pipeline, "process", broken)
    with TestClient(app, raise_server_exceptions=False) as c:
        good = png(textured(64, 64))
        message = error_of(post(c, good, good), 500)
        assert message.startswith("internal error (RuntimeError)") and "/srv/x" not in message
        assert c.get("/v1/health").json()["jobs_running"] == 0  # the slot came back


def test_a_job_beyond_the_limit_gets_429(monkeypatch):
    app = make_app(["--max-jobs", "1"])
    service = app.state.service
    entered, release = threading.Event(), threading.Event()
    real = service.pipeline.process

    def gated(*a, **k):
        entered.set()
        assert release.wait(30)
        return real(*a, **k)

    monkeypatch.setattr(service.pipeline, "process", gated)
    good = png(textured(64, 64))
    with TestClient(app) as c:
        first: dict = {}
        worker = threading.Thread(target=lambda: first.setdefault("resp", post(c, good, good)))
        worker.start()
        assert entered.wait(30)
        busy = [post(c, good, good) for _ in range(3)]
        assert c.get("/v1/health").json()["jobs_running"] == 1
        release.set()
        worker.join(30)
        assert first["resp"].status_code == 200
        for resp in busy:
            assert "busy: 1 jobs are running" in error_of(resp, 429) and resp.headers["retry-after"] == "1"
        assert post(c, good, good).status_code == 200  # the slot is free again


def test_concurrent_clients_get_results_or_429():
    left, right = LEFT.read_bytes(), RIGHT.read_bytes()
    with TestClient(make_app(["--max-jobs", "2"])) as c:
        responses: list = []
        threads = [threading.Thread(target=lambda: responses.append(post(c, left, right))) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        codes = sorted(r.status_code for r in responses)
        assert len(codes) == 6 and set(codes) <= {200, 429} and codes.count(200) >= 2, codes
        for r in responses:
            assert len(r.json()["regions"]) == 3 if r.status_code == 200 else "busy" in r.json()["error"]
        assert c.get("/v1/health").json()["jobs_running"] == 0


def test_spooled_uploads_stay_in_the_temp_folder_and_are_removed(tmp_path, monkeypatch):
    import tempfile

    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    big = noise_png(700)  # ~1.4 MB: over the parser's 1 MiB in-memory limit, so it goes to a temp file
    with TestClient(make_app([])) as c:
        assert post(c, big, big).status_code == 200
    assert list(spool.iterdir()) == []


# ---- info, health, docs, the command ---------------------------------------------------------------------
def test_info_health_docs(client):
    info = client.get("/v1/info").json()
    assert info["pipeline"]["detector"] == "pixel" and info["weights"]["models_ran"] is False
    assert {o["field"] for o in info["options"]} >= {"max-regions", "threshold", "metric", "max-pixels"}
    assert info["libraries"]["fastapi"] and info["example"] is True
    assert client.get("/v1/health").json()["status"] == "ok"
    docs = client.get("/docs").text
    assert "/docs-assets/swagger-ui-bundle.js" in docs and "cdn." not in docs  # works offline
    assert client.get("/docs-assets/swagger-ui-bundle.js").status_code == 200
    spec = client.get("/openapi.json").json()
    assert "multipart/form-data" in spec["paths"]["/v1/diff"]["post"]["requestBody"]["content"]
    page = client.get("/")
    assert "default-src 'self'" in page.headers["content-security-policy"] and "http" not in page.text.replace(
        "http://www.w3.org/2000/svg", "")


@pytest.mark.parametrize("args,message", [
    (["--max-jobs", "0"], "--max-jobs"),
    (["--port", "70000"], "--port"),
    (["--max-upload-mb", "0"], "--max-upload-mb"),
    (["--metric", "cosine"], "--metric"),
])
def test_web_command_option_errors(args, message):
    res = CliRunner().invoke(cli, ["web", *args])
    assert res.exit_code == 2 and message in res.output


def test_web_command_refuses_a_taken_port_in_one_line():
    import socket

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = str(taken.getsockname()[1])
        res = CliRunner().invoke(cli, ["web", "--port", port, "--detector", "pixel"])
    assert res.exit_code == 2 and f"Error: cannot listen on 127.0.0.1:{port}" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_web_command_defaults_to_localhost():
    params = {p.name: p for p in web.params}
    assert params["host"].default == "127.0.0.1" and params["port"].default == 8080
