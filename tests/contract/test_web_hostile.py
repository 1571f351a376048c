"""The web app's hostile-client corpus: malformed forms, deep JSON, odd picture names and duplicate fields through
FastAPI's test client (every answer a 4xx JSON error, never a 500), then a real `imgdiff-rt web` process for
what only a socket shows: slow bodies and headers, protocol errors, clients that leave, good requests served
while 20 uploads trickle, and SIGTERM / SIGINT leaving no spool folder behind. Every loop is time-bounded."""

from __future__ import annotations

import json
import select
import signal
import socket
import threading
import time

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the web extra (pip install 'imgdiff-rt[web]') is not installed")
from fastapi.testclient import TestClient  # noqa: E402

from imgdiff_rt.cli.web_cmd import make_app  # noqa: E402

from helpers import LEFT, RIGHT, png, textured  # noqa: E402
from web_server import WebServer  # noqa: E402

BOUNDARY = "hostileBoundary7"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"
GOOD = png(textured(64, 64))


def part(name: str, data: bytes | str, filename: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    data = data.encode() if isinstance(data, str) else data
    return f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"


def form(*parts: bytes) -> bytes:
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def pair(*extra: bytes) -> bytes:
    return form(part("left", GOOD, "l.png"), part("right", GOOD, "r.png"), *extra)


def deep(n: int) -> str:
    return "[" * n + "]" * n


# ---- the table: (kind, body, expected status, words the error holds) ---------------------------------------
FORM_KINDS = [
    ("options nested 999 deep", pair(part("options", '{"align": ' + deep(999) + "}")), 400, "options"),
    ("options nested 30000 deep", pair(part("options", deep(30_000))), 400, "not valid JSON"),
    ("option value nested 900 deep", pair(part("options", '{"threshold": ' + deep(900) + "}")), 400,
     "not a valid"),
    ("options a JSON list", pair(part("options", "[1, 2]")), 400, "JSON object"),
    ("options not UTF-8", pair(part("options", b'{"align": "\xff\xfe"}', "o.json")), 400, "options"),
    ("options with a BOM", pair(part("options", "\ufeff{}")), 400, "not valid JSON"),
    ("option NaN", pair(part("options", '{"threshold": NaN}')), 400, "threshold"),
    ("option 5000 digits", pair(part("options", '{"max_regions": ' + "9" * 5000 + "}")), 400, "options"),
    ("option a bool for an integer", pair(part("options", '{"max_regions": true}')), 400, "max_regions"),
    ("form option twice", pair(part("max-regions", "2"), part("max-regions", "3")), 400, "given twice"),
    ("options part twice", pair(part("options", "{}"), part("options", '{"align": "auto"}')), 400,
     "given twice"),
    ("option as field and in options", pair(part("max-regions", "2"), part("options", '{"max_regions": 3}')),
     400, "both as a field"),
    ("left file twice", form(part("left", GOOD, "a.png"), part("left", GOOD, "b.png"), part("right", GOOD, "r.png")),
     400, "given twice"),
    ("field name with a newline", pair(part("a\nb", "1")), 400, "unknown field"),
    ("field name of 2000 characters", pair(part("x" * 2000, "1")), 400, "unknown field"),
    ("option value with NUL", pair(part("max-regions", "2\x00")), 400, "max-regions"),
    ("field over 64 KiB", pair(part("metric", "a" * 70_000)), 400, ""),
    ("33 fields", pair(*[part(f"f{i}", "1") for i in range(33)]), 400, ""),
    ("a third file", pair(part("extra", GOOD, "x.png")), 400, "only 'left' and 'right'"),
    ("left as a text field", form(part("left", "not a file"), part("right", GOOD, "r.png")), 400, "file part"),
    ("server-only option", pair(part("detector", "pixel")), 400, "server setting"),
    ("unknown JSON option", pair(part("options", '{"rm -rf": 1}')), 400, "unknown field"),
    ("max-pixels over the server cap", pair(part("max-pixels", str(10**12))), 400, "max-pixels"),
    ("empty upload", form(part("left", b"", "l.png"), part("right", GOOD, "r.png")), 400, "empty"),
    ("text upload", form(part("left", b"hello " * 20, "l.png"), part("right", GOOD, "r.png")), 400, "left"),
    ("no closing boundary", pair()[:-len(BOUNDARY) - 6], 400, ""),
    ("garbage in a multipart body", b"\x00\xff" * 500, 400, ""),
    ("empty body", b"", 400, ""),
]


@pytest.fixture(scope="module")
def client():
    with TestClient(make_app([]), raise_server_exceptions=False) as c:
        yield c


def error_of(resp, status: int, words: str = "") -> str:
    assert resp.status_code == status, (resp.status_code, resp.text[:300])
    body = resp.json()
    assert list(body) == ["error"] and "\n" not in body["error"] and "Traceback" not in body["error"]
    assert words in body["error"], body["error"]
    assert len(body["error"]) < 400  # a client's huge name or value is never echoed back whole
    return body["error"]


@pytest.mark.parametrize("kind,body,status,words", FORM_KINDS, ids=[k[0] for k in FORM_KINDS])
def test_hostile_forms_get_a_4xx_json_error(client, kind, body, status, words):
    error_of(client.post("/v1/diff", content=body, headers={"content-type": MULTIPART}), status, words)
    assert client.get("/v1/health").json()["jobs_running"] == 0


HEADER_KINDS = [
    ("no boundary", {"content-type": "multipart/form-data"}, 400),
    ("not multipart", {"content-type": "application/json"}, 415),
    ("no content type", {}, 415),
]


@pytest.mark.parametrize("kind,headers,status", HEADER_KINDS, ids=[k[0] for k in HEADER_KINDS])
def test_hostile_headers_get_a_4xx_json_error(client, kind, headers, status):
    error_of(client.post("/v1/diff", content=pair(), headers=headers), status)


@pytest.fixture(scope="module")
def job_id(client) -> str:
    """The example pair's job: regions 1 to 3 exist, so a name that decodes to 3 would find one."""
    body = form(part("left", LEFT.read_bytes(), "l.png"), part("right", RIGHT.read_bytes(), "r.png"))
    resp = client.post("/v1/diff", content=body, headers={"content-type": MULTIPART})
    assert resp.status_code == 200, resp.text
    return resp.json()["job"]["id"]


PICTURE_NAMES = [
    ("superscript two", "{id}-%C2%B2.png"),
    ("4400 digits", "{id}-" + "9" * 4400 + ".png"),
    ("Arabic-Indic three", "{id}-%D9%A3.png"),
    ("fullwidth one", "{id}-%EF%BC%91.png"),
    ("upper-case suffix", "{id}-1.PNG"),
    ("negative number", "{id}--1.png"),
    ("plus sign", "{id}-+1.png"),
    ("NUL byte", "{id}-1%00.png"),
    ("another job's id", "0123456789abcdef-1.png"),
    ("no region that number", "{id}-999999.png"),
]


@pytest.mark.parametrize("kind,name", PICTURE_NAMES, ids=[k[0] for k in PICTURE_NAMES])
def test_odd_picture_names_are_404(client, job_id, kind, name):
    error_of(client.get(f"/v1/diff/{job_id}/img-diff/" + name.format(id=job_id)), 404)


@pytest.mark.parametrize("path", ["/v1/diff/0123456789ABCDEF", "/v1/diff/" + "a" * 5000,
                                  "/v1/diff/%00%00/annotated.png", "/v1/diff/0123456789abcdef/mask.png"])
def test_odd_job_ids_are_404(client, path):
    error_of(client.get(path), 404)


def test_a_big_result_stays_within_keep_mb():
    """A 600x600 pair with dozens of regions, then every region's picture: the drawn pictures count against
    --keep-mb (they used to be kept outside it, ~4.6 MB per picture at 1200x1200)."""
    rng = np.random.default_rng(3)
    left = rng.integers(0, 256, (600, 600, 3), dtype=np.uint8)
    right = left.copy()
    for y in range(0, 600, 75):
        for x in range(0, 600, 75):
            right[y + 10:y + 40, x + 10:x + 40] = 255 - right[y + 10:y + 40, x + 10:x + 40]
    keep = 4 * 2**20
    with TestClient(make_app(["--keep-mb", "4"])) as c:
        body = form(part("left", png(left), "l.png"), part("right", png(right), "r.png"),
                    part("options", '{"max_regions": 100, "align": "none", "photometric": "none"}'))
        result = c.post("/v1/diff", content=body, headers={"content-type": MULTIPART}).json()
        job, regions = result["job"], result["regions"]
        assert len(regions) >= 20, len(regions)
        peak = 0
        for region in regions[:24]:
            resp = c.get(f"/v1/diff/{job['id']}/img-diff/{job['id']}-{region['id']}.png")
            assert resp.status_code == 200 and resp.content.startswith(b"\x89PNG")
            peak = max(peak, c.get("/v1/health").json()["bytes_kept"])
        assert peak <= keep, f"bytes_kept {peak} over --keep-mb 4 ({keep})"
        again = c.get(f"/v1/diff/{job['id']}/img-diff/{job['id']}-{regions[0]['id']}.png")
        assert again.status_code == 200  # an evicted picture is drawn again
        print(f"\n{min(len(regions), 24)} region pictures fetched: peak bytes_kept {peak:,} <= {keep:,}")


# ---- a real server ---------------------------------------------------------------------------------------
def _read_response(sock: socket.socket, timeout: float) -> tuple[int, bytes]:
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return int(head.split(b" ")[1]), rest


def request(port: int, raw: bytes, timeout: float = 10) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(raw)
        return _read_response(sock, timeout)


def post_raw(body: bytes, length: str | None = None) -> bytes:
    return (f"POST /v1/diff HTTP/1.1\r\nHost: x\r\nContent-Type: {MULTIPART}\r\n"
            f"Content-Length: {len(body) if length is None else length}\r\nConnection: close\r\n\r\n").encode() + body


def json_error(status_body: tuple[int, bytes], status: int, words: str = "") -> str:
    got, body = status_body
    assert got == status, (got, body[:300])
    message = json.loads(body)["error"]
    assert words in message, message
    return message


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = WebServer(tmp_path_factory.mktemp("web-hostile"), "--max-jobs", "2", "--body-timeout-s", "4",
                 "--header-timeout-s", "2")
    yield srv
    srv.stop()


class Trickle(threading.Thread):
    """A client sending a correct request a few bytes at a time, for at most ``seconds``."""

    def __init__(self, port: int, seconds: float):
        super().__init__(daemon=True)
        self.port, self.seconds, self.result = port, seconds, None
        self.raw = post_raw(pair())

    def run(self) -> None:
        end = time.monotonic() + self.seconds
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=self.seconds + 5) as sock:
                head, _, body = self.raw.partition(b"\r\n\r\n")
                sock.sendall(head + b"\r\n\r\n")
                for i in range(0, len(body), 25):
                    answered, _, _ = select.select([sock], [], [], 0.5)
                    if answered or time.monotonic() > end:
                        break  # the server answered (and stops reading) or our time is up
                    sock.sendall(body[i:i + 25])
                self.result = _read_response(sock, 10)
        except OSError as e:
            self.result = (0, str(e).encode())


def test_good_requests_are_served_while_20_uploads_trickle(server):
    slow = [Trickle(server.port, 8) for _ in range(20)]
    for t in slow:
        t.start()
    time.sleep(0.5)
    took = []
    start = time.monotonic()
    while time.monotonic() - start < 3.0 and len(took) < 30:  # good requests while the slow ones hold on
        t0 = time.monotonic()
        status, body = request(server.port, post_raw(pair()), timeout=10)
        took.append(time.monotonic() - t0)
        assert status == 200, body[:300]
    assert all(t.is_alive() for t in slow)  # they were still trickling all along
    for t in slow:
        t.join(20)
    assert len(took) >= 5 and max(took) < 2.0, took
    print(f"\n20 slow uploads trickling: {len(took)}/{len(took)} good requests 200, slowest {max(took):.2f} s")
    codes = sorted({t.result[0] for t in slow})
    assert codes == [408], [t.result for t in slow][:3]  # each slow body stopped at --body-timeout-s


def test_a_slow_body_gets_408_at_its_deadline(server):
    t = Trickle(server.port, 30)
    t0 = time.monotonic()
    t.start()
    t.join(20)
    assert t.result is not None and time.monotonic() - t0 < 10
    assert "did not arrive within 4 s" in json_error(t.result, 408)


def test_slow_headers_get_408_and_an_idle_connection_is_closed(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        t0 = time.monotonic()
        for b in b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Slow: 1":
            if select.select([sock], [], [], 0.2)[0] or time.monotonic() - t0 > 6:
                break  # answered
            sock.sendall(bytes([b]))
        status = _read_response(sock, 10)
        assert time.monotonic() - t0 < 8
    assert "headers did not arrive" in json_error(status, 408)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as idle:
        t0 = time.monotonic()
        idle.settimeout(10)
        while idle.recv(1000):
            pass
        assert time.monotonic() - t0 < 8  # closed, not held open forever


@pytest.mark.parametrize("length", ["-1", "abc", "1e3"])
def test_bad_content_length_gets_a_json_400(server, length):
    json_error(request(server.port, post_raw(pair(), length)), 400, "malformed HTTP request")


def test_an_oversized_header_gets_a_json_400(server):
    raw = b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 1_000_000 + b"\r\n\r\n"
    json_error(request(server.port, raw), 400, "malformed HTTP request")


def test_a_client_leaving_mid_body_logs_no_traceback(server):
    raw = post_raw(pair())
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(raw[:len(raw) // 2])
            time.sleep(0.3)
    time.sleep(0.5)
    assert request(server.port, post_raw(pair()))[0] == 200
    log = server.log_path.read_text(errors="replace")
    assert "Traceback" not in log and "internal error" not in log, log[-2000:]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_the_server_cleanly(tmp_path, sig):
    srv = WebServer(tmp_path)
    big = png(np.random.default_rng(0).integers(0, 256, (700, 700, 3), dtype=np.uint8))  # spooled to disk
    body = form(part("left", big, "l.png"), part("right", big, "r.png"))
    assert request(srv.port, post_raw(body), timeout=60)[0] == 200
    assert srv.spool_folders()
    assert srv.stop(sig) == 0
    assert srv.spool_folders() == []
    log = srv.log_path.read_text()
    assert f"stopped ({signal.Signals(sig).name})" in log and "Traceback" not in log, log[-2000:]


#: the kinds of hostile client this file holds (docs/web.md quotes the number)
WEB_CORPUS_KINDS = (len(FORM_KINDS) + len(HEADER_KINDS) + len(PICTURE_NAMES) + 4  # odd job ids
                    + 1  # big result against --keep-mb
                    + 1 + 1 + 2 + 3 + 1 + 1  # trickling uploads, slow body, slow/idle headers, bad lengths,
                    + 2)  # oversized header, leaving clients; SIGTERM and SIGINT


def test_web_corpus_size():
    assert WEB_CORPUS_KINDS >= 40
    print(f"\nweb hostile-client corpus: {WEB_CORPUS_KINDS} kinds")
