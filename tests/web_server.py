"""`imgdiff-rt web` as a real process for the tests that need one (the page in chromium, hostile clients): a free
127.0.0.1 port, started under a private TMPDIR, ready once /v1/health answers, stopped by a signal."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from helpers import ROOT

START_TIMEOUT_S = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/v1/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


class WebServer:
    def __init__(self, tmp: Path, *args: str):
        self.port, self.tmp = free_port(), tmp
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp / "server.log"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from imgdiff_rt.cli.main import cli; cli()", "web", "--port", str(self.port),
             *args], cwd=ROOT, env={**os.environ, "TMPDIR": str(tmp)}, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()}")
            if _healthy(self.base):
                return
            time.sleep(0.2)
        self.stop(signal.SIGKILL)
        raise RuntimeError(f"server did not answer /v1/health within {START_TIMEOUT_S} s")

    def stop(self, sig: int = signal.SIGTERM, wait_s: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(wait_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode

    def spool_folders(self) -> list[str]:
        return [p.name for p in self.tmp.iterdir() if p.name.startswith("imgdiff-rt-web-")]


class GracefulWebServer(WebServer):
    """Stopped as Ctrl-C stops it (uvicorn's graceful stop), for the tests that check what a stop leaves behind."""

    def stop(self, sig: int = signal.SIGINT, wait_s: float = 20) -> int:
        return super().stop(sig, wait_s)
