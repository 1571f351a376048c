"""`imgdiff-rt serve` supervision against a real tritonserver (nvidia-pytriton's binary, Python backend, CPU):
a killed Python-backend stub makes the health check fail and the model come back by itself within 30 s, its
stale /dev/shm region removed; a SIGKILLed `serve` takes tritonserver and its stubs down with it.

The repository is two glue models of the committed triton_models/ (`preprocess` and `filter` need no
weights), so no bundle is exported. Skips where the server environment cannot be built (no package
index), except under CI=true.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from imgdiff_rt.triton import health
from imgdiff_rt.triton.server import LocalServer, free_port

from helpers import ROOT, triton_server_env

CLI = str(Path(sys.executable).parent / "imgdiff-rt")
RECOVERY_LIMIT_S = 30.0


@pytest.fixture(scope="module")
def server_env():
    return triton_server_env()


@pytest.fixture(scope="module")
def glue_repo(tmp_path_factory) -> Path:
    """The committed repository's two glue models (configs and model.py only, no weights needed)."""
    repo = tmp_path_factory.mktemp("glue") / "repo"
    for model in ("preprocess", "filter"):
        shutil.copytree(ROOT / "triton_models" / model, repo / model)
    return repo


def _png(seed: int) -> list[int]:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (seed, 90, 200)).save(buf, format="PNG")
    return list(buf.getvalue())


def _infer_preprocess(url: str, left: list[int] | None = None) -> tuple[int, str]:
    """(HTTP status, body) of one request to the preprocess model, a good pair by default (0: no answer)."""
    body = {"inputs": [{"name": n, "datatype": "UINT8", "shape": [len(d)], "data": d}
                       for n, d in (("left_image", left or _png(10)), ("right_image", _png(200)))]}
    req = urllib.request.Request(f"http://{url}/v2/models/preprocess/infer", data=json.dumps(body).encode(),
                                 method="POST")
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, ""
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except OSError:
        return 0, ""


def _health(url: str, pid: int, *extra: str) -> int:
    done = subprocess.run([sys.executable, "-m", "imgdiff_rt.triton.health", "--url", url, "--pid", str(pid),
                           *extra], capture_output=True, text=True, timeout=150)
    print(f"health {' '.join(extra)}: exit {done.returncode} {done.stderr.strip()}")
    return done.returncode


def _children(pid: int) -> list[int]:
    kids = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids += [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            continue
    return kids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _wait(cond, limit: float, step: float = 0.2) -> float | None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        if cond():
            return time.monotonic() - t0
        time.sleep(step)
    return None


@pytest.fixture()
def serve(glue_repo, server_env):
    port = free_port()
    proc = subprocess.Popen([CLI, "serve", "--repo", str(glue_repo), "--http-port", str(port),
                             "--grpc-port", str(free_port()), "--metrics-port", str(free_port()),
                             "--env-dir", str(server_env.root)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        line = proc.stdout.readline()
        assert line.startswith("ready:"), proc.stderr.read() if not line else line
        (server_pid,) = [p for p in _children(proc.pid) if "tritonserver" in Path(f"/proc/{p}/comm").read_text()]
        yield proc, f"127.0.0.1:{port}", server_pid
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_killed_stub_fails_the_health_check_and_its_model_comes_back(serve):
    proc, url, server_pid = serve
    assert _infer_preprocess(url)[0] == 200 and _health(url, server_pid) == 0
    eps = list(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\nshowpage\n")
    status, body = _infer_preprocess(url, eps)  # a client's mistake: 400 and what is wrong, not a 500
    assert status == 400 and "left_image: not a recognised image format" in body, (status, body)
    (stub,) = [s for s in health.live_stubs(server_pid) if s.instance.startswith("preprocess_")]
    assert (health.SHM_DIR / stub.region).exists()
    os.kill(stub.pid, signal.SIGKILL)
    t0 = time.monotonic()
    _wait(lambda: not _alive(stub.pid), 5, 0.01)
    # Triton's own ready endpoints still say 200 here; ours (serve's check, every 2 s) does not
    assert "preprocess" in health.broken_models(url, server_pid)
    recovered = _wait(lambda: _infer_preprocess(url)[0] == 200, RECOVERY_LIMIT_S, 0.1)
    assert recovered is not None, f"preprocess did not come back within {RECOVERY_LIMIT_S:.0f} s"
    print(f"\nrecovery after a killed stub: {time.monotonic() - t0:.1f} s")
    assert _health(url, server_pid) == 0
    assert _wait(lambda: not (health.SHM_DIR / stub.region).exists(), 10) is not None, "stale region left"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0
    assert "model preprocess is broken (0 of 1 Python-backend stub processes alive); reloading it" in \
        proc.stderr.read()


def test_health_check_fails_until_reload_brings_the_model_back(glue_repo, server_env):
    """The Docker HEALTHCHECK's command on a server without `serve` around it."""
    with LocalServer(glue_repo, server_env, exit_timeout=5) as server:
        url, pid = server.http_url, server.process.pid
        (stub,) = [s for s in health.live_stubs(pid) if s.instance.startswith("filter_")]
        os.kill(stub.pid, signal.SIGKILL)
        assert _wait(lambda: _health(url, pid) == 1, 10) is not None
        assert _health(url, pid, "--reload") == 1  # broken when checked; reloaded on the way out
        assert _wait(lambda: _health(url, pid) == 0, RECOVERY_LIMIT_S) is not None
        assert not (health.SHM_DIR / stub.region).exists()


def test_sigkill_of_serve_takes_the_server_and_stubs_down(serve):
    proc, url, server_pid = serve
    stubs = health.live_stubs(server_pid)
    regions = {s.region for s in stubs}
    assert len(stubs) == 2
    proc.kill()
    proc.wait(10)
    assert _wait(lambda: not _alive(server_pid), 30) is not None, "tritonserver outlived a SIGKILLed serve"
    assert _wait(lambda: not any(_alive(s.pid) for s in stubs), 30) is not None, "stubs outlived serve"
    left = [r for r in regions if (health.SHM_DIR / r).exists()]
    assert not left, f"shared-memory regions left: {left}"


def test_docker_image_checks_and_reloads_models_not_just_the_server():
    dockerfile = (ROOT / "Dockerfile").read_text()
    check = dockerfile[dockerfile.index("HEALTHCHECK"):]
    assert "python3 -m imgdiff_rt.triton.health" in check and "--reload" in check
    assert "/v2/health/ready" not in check.split("ENTRYPOINT")[0].split("CMD", 1)[1]
    entrypoint = (ROOT / "docker" / "entrypoint.sh").read_text()
    assert "--model-control-mode=explicit" in entrypoint and "--load-model='*'" in entrypoint


def test_supervision_restarts_a_server_that_died(glue_repo, server_env):
    with LocalServer(glue_repo, server_env, exit_timeout=5) as server:
        first = server.process.pid
        os.kill(first, signal.SIGKILL)
        server.process.wait(10)
        assert server.supervise() == {"server": "exited with code -9"}
        assert server.process.pid != first and server.ready() and server.broken_models() == {}
