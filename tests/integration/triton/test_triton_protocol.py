"""`--backend triton` against live ports: the probe tells gRPC from HTTP and from nothing, an HTTP client on a
gRPC port is a typed error naming the fix, a run against a wrong or dead port is one line, and triton-repo
writes under the models home, not into the committed folder."""

from __future__ import annotations

import concurrent.futures
import http.server
import threading

import pytest
from click.testing import CliRunner

from imgdiff_rt.cli.main import cli
from imgdiff_rt.errors import TritonUnavailableError
from imgdiff_rt.triton import client as C
from imgdiff_rt.triton.server import free_port

from helpers import LEFT, RIGHT, no_triton_env


@pytest.fixture(autouse=True)
def _no_protocol_from_env(monkeypatch):
    no_triton_env(monkeypatch)


@pytest.fixture(scope="module")
def grpc_port():
    """A gRPC server with no services: what a client meets on a gRPC port (HTTP/2 frames, no HTTP/1.1)."""
    grpc = pytest.importorskip("grpc")
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(2))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield port
    server.stop(0)


@pytest.fixture(scope="module")
def http_port():
    class Live(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Live)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def test_probe_tells_grpc_from_http_and_nothing(grpc_port, http_port):
    assert C.resolve_endpoint(f"127.0.0.1:{grpc_port}", None) == (f"127.0.0.1:{grpc_port}", "grpc")
    assert C.resolve_endpoint(f"127.0.0.1:{http_port}", None) == (f"127.0.0.1:{http_port}", "http")
    with pytest.raises(TritonUnavailableError, match="cannot be reached"):
        C.resolve_endpoint(f"127.0.0.1:{free_port()}", None)


def test_http_client_on_the_grpc_port_is_a_typed_error_naming_the_fix(grpc_port):
    with C.TritonClient(f"127.0.0.1:{grpc_port}", "http", retries=0) as client:
        with pytest.raises(TritonUnavailableError, match="grpc://"):
            client.check_model("clip_image")


@pytest.mark.parametrize("url,protocol", [("127.0.0.1:{grpc}", "http"), ("127.0.0.1:{grpc}", None),
                                          ("127.0.0.1:{free}", None), ("http://127.0.0.1:{grpc}", None)])
def test_run_against_a_wrong_or_dead_port_is_one_line(tiny_runtime_bundle, grpc_port, url, protocol):
    url = url.format(grpc=grpc_port, free=free_port())
    args = ["run", str(LEFT), str(RIGHT), "--backend", "triton", "--models", str(tiny_runtime_bundle),
            "--detector", "segment", "--url", url, *(["--protocol", protocol] if protocol else [])]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Triton" in lines[0], lines


def test_triton_repo_defaults_to_the_models_home_not_the_committed_folder(tiny_runtime_bundle, tmp_path,
                                                                          monkeypatch):
    from imgdiff_rt.triton.repo_check import served_weights

    home, cwd = tmp_path / "home", tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.setenv("IMGDIFF_RT_HOME", str(home))
    monkeypatch.chdir(cwd)
    res = CliRunner().invoke(cli, ["triton-repo", "--bundle", str(tiny_runtime_bundle), "--platform", "python"])
    assert res.exit_code == 0, res.output
    assert not (cwd / "triton_models").exists()
    assert (home / "triton-repo" / "segmenter" / "1" / "model.onnx").is_file()
    kinds = served_weights(home / "triton-repo")
    assert kinds["clip_image"] == "tiny" and kinds["segmenter"] in ("random-init", "tiny")
    # serve with no --repo serves that folder and says once that its weights are not trained (the server itself
    # is not started: the side environment given is a foreign folder, refused right after the notice)
    foreign = tmp_path / "not-an-env"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    res = CliRunner().invoke(cli, ["serve", "--env-dir", str(foreign)])
    assert res.exit_code != 0 and "is not a server environment" in res.stderr
    assert res.stderr.count("not trained weights") == 1 and "clip_image: tiny" in res.stderr
