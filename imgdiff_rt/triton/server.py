"""A real ``tritonserver`` on this machine, without Docker: the binary and Python backend of the
``nvidia-pytriton`` wheel, run in a small side environment, started on free 127.0.0.1 ports.

Why a side environment: the wheel's Python-backend stub is built against numpy 1.x (its tensors come out
wrong under numpy 2: ``as_numpy()`` returns garbage, outputs fail their size check), and ``nvidia-pytriton``
pins ``numpy<2`` while the project uses numpy 2. So ``ensure_server_env`` makes a venv holding only
``nvidia-pytriton`` (no dependencies) and ``numpy<2``, and a ``.pth`` that appends the calling environment's
site-packages: everything else the models need (imgdiff_rt itself, OpenCV, ONNX Runtime, torch, transformers,
SciPy) comes from there, with numpy 1.x shadowing numpy 2. The project's OpenCV 5 wheel runs under numpy 1.26
(built for the numpy 2 ABI, which keeps 1.x working); an older OpenCV in the server gave other registration
and colour numbers than `run`, so the served pipeline uses the same one.

``LocalServer.supervise`` (run every few seconds by ``imgdiff-rt serve``) restarts a server that exited and
reloads a model whose Python-backend stub died (``health.py``); the server gets SIGTERM when its parent dies.

The stub takes its Python from ``PATH`` (the side env's ``bin`` goes first; ``PYTHONPATH`` is ignored) and
links ``libpython3.X.so`` (the interpreter's LIBDIR goes first on ``LD_LIBRARY_PATH``).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from imgdiff_rt.errors import ServerEnvError, ServerStartError
from imgdiff_rt.files import made_by_us, mark_folder
from imgdiff_rt.triton import health

#: what the side environment installs, with --no-deps (nvidia-pytriton's own dependencies are not needed:
#: only its server binary, Python backend and stubs are used)
SERVER_ENV_PINS = ("nvidia-pytriton==0.7.0", "numpy>=1.24,<2")
_STAMP = "imgdiff-rt-server-env.json"
#: how often `imgdiff-rt serve` checks its models (a /proc scan and two HTTP calls: cheap)
SUPERVISE_EVERY_S = 2.0


def _pyver() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def default_env_dir() -> Path:
    """``$IMGDIFF_RT_TRITON_ENV``, else ``<cache>/triton-env-py3.X-<hash of this environment>``."""
    given = os.environ.get("IMGDIFF_RT_TRITON_ENV")
    if given:
        return Path(given).expanduser()
    home = os.environ.get("IMGDIFF_RT_HOME")
    base = Path(home).expanduser() if home else Path.home() / ".cache" / "imgdiff-rt"
    tag = hashlib.sha256(sys.prefix.encode()).hexdigest()[:8]
    return base / f"triton-env-py{_pyver()}-{tag}"


@dataclass(frozen=True)
class ServerEnv:
    """A built side environment: where the server binary, backends and stub Python are."""

    root: Path

    @property
    def bin_dir(self) -> Path:
        return self.root / "bin"

    @property
    def site_packages(self) -> Path:
        return self.root / "lib" / f"python{_pyver()}" / "site-packages"

    @property
    def tritonserver_dir(self) -> Path:
        return self.site_packages / "pytriton" / "tritonserver"

    @property
    def tritonserver(self) -> Path:
        return self.tritonserver_dir / "bin" / "tritonserver"

    @property
    def backend_dir(self) -> Path:
        return self.root / "triton-backends"

    def environ(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}"
        libdir = sysconfig.get_config_var("LIBDIR") or ""
        env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (libdir, env.get("LD_LIBRARY_PATH", "")) if p)
        env.pop("PYTHONPATH", None)
        env.setdefault("OMP_NUM_THREADS", "1")
        return env


def _overlay_lines() -> list[str]:
    paths = []
    for key in ("purelib", "platlib"):
        p = sysconfig.get_paths()[key]
        if p not in paths:
            paths.append(p)
    return [f"import site; site.addsitedir({p!r})" for p in paths]


def _wanted_stamp() -> dict:
    return {"pins": list(SERVER_ENV_PINS), "python": _pyver(), "overlay": _overlay_lines()}


def ensure_server_env(root: str | Path | None = None, log: Callable[[str], None] | None = None) -> ServerEnv:
    """The side environment at ``root`` (default ``default_env_dir()``), built on first use (~10-30 s,
    pip from the package index) and reused while its stamp matches. Safe across processes (file lock)."""
    env = ServerEnv(Path(root).expanduser() if root else default_env_dir())
    env.root.parent.mkdir(parents=True, exist_ok=True)
    with open(env.root.parent / f".{env.root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stamp = env.root / _STAMP
        try:
            if json.loads(stamp.read_text()) == _wanted_stamp() and env.tritonserver.is_file():
                return env
        except (OSError, ValueError):
            pass
        if env.root.exists() and not _is_server_env(env.root):
            raise ServerEnvError(f"{env.root} exists and is not a server environment imgdiff-rt made; "
                                 "choose another --env-dir (it is never deleted)")
        (log or (lambda m: None))(f"building the Triton server environment in {env.root} (first use)")
        shutil.rmtree(env.root, ignore_errors=True)
        env.root.mkdir(parents=True, exist_ok=True)
        mark_folder(env.root, "a Triton server environment")  # first, so a half-built one is ours to redo
        _build(env)
        stamp.write_text(json.dumps(_wanted_stamp(), indent=1))
    return env


def _is_server_env(root: Path) -> bool:
    """Ours to delete and rebuild: it holds the marker, or the stamp of an environment built before the marker
    existed, or nothing at all."""
    return root.is_dir() and (made_by_us(root) or (root / _STAMP).is_file())


def _run(cmd: list, what: str) -> None:
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if done.returncode:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise ServerEnvError(f"{what} failed: " + " | ".join(tail))


def _build(env: ServerEnv) -> None:
    base = getattr(sys, "_base_executable", sys.executable)
    _run([base, "-m", "venv", env.root], "creating the server venv")
    _run([env.bin_dir / "python", "-m", "pip", "install", "--quiet", "--no-deps", "--disable-pip-version-check",
          *SERVER_ENV_PINS], "pip install " + " ".join(SERVER_ENV_PINS))
    (env.site_packages / "zz_imgdiff_rt_overlay.pth").write_text("\n".join(_overlay_lines()) + "\n")
    src = env.tritonserver_dir
    stub = src / "python_backend_stubs" / _pyver() / "triton_python_backend_stub"
    if not stub.is_file():
        raise ServerEnvError(f"nvidia-pytriton ships no Python backend stub for Python {_pyver()}")
    python_be = env.backend_dir / "python"
    python_be.mkdir(parents=True)
    for f in (src / "backends" / "python" / "libtriton_python.so",
              src / "backends" / "python" / "triton_python_backend_utils.py", stub):
        (python_be / f.name).symlink_to(f)


# ---- the server process ---------------------------------------------------------------------------------
_PR_SET_PDEATHSIG = 1


def _stop_with_parent() -> None:
    """In the child before exec: SIGTERM when the process that started it dies, even by SIGKILL, so a killed
    ``imgdiff-rt serve`` never leaves tritonserver (and, through its shutdown, the stubs) running."""
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: the server outlives a killed parent, as before
def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class LocalServer:
    """``tritonserver`` on ``repo``; ports default to free ones. Use as a context manager or start()/stop()."""

    repo: Path
    env: ServerEnv
    host: str = "127.0.0.1"
    http_port: int | None = None
    grpc_port: int | None = None
    metrics_port: int | None = None
    log_file: Path | None = None
    exit_timeout: int = 3
    extra_args: tuple = ()
    process: subprocess.Popen | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.repo = Path(self.repo).resolve()
        self.http_port = self.http_port or free_port(self.host)
        self.grpc_port = self.grpc_port or free_port(self.host)
        self.metrics_port = self.metrics_port or free_port(self.host)

    @property
    def http_url(self) -> str:
        return f"{self.host}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.host}:{self.metrics_port}/metrics"

    def command(self) -> list[str]:
        return [str(self.env.tritonserver), f"--model-repository={self.repo}",
                f"--backend-directory={self.env.backend_dir}",
                f"--http-address={self.host}", f"--http-port={self.http_port}",
                f"--grpc-address={self.host}", f"--grpc-port={self.grpc_port}",
                f"--metrics-address={self.host}", f"--metrics-port={self.metrics_port}",
                f"--exit-timeout-secs={self.exit_timeout}", "--disable-auto-complete-config",
                # explicit model control (every model loaded at start) lets the supervisor reload a broken one
                "--model-control-mode=explicit", "--load-model=*",
                "--log-verbose=0", *self.extra_args]

    def start(self, timeout: float = 180.0) -> "LocalServer":
        if not self.repo.is_dir():
            raise ServerStartError(f"no model repository at {self.repo}")
        if self.log_file is None:
            self.log_file = self.repo.parent / f".tritonserver-{self.http_port}.log"
        log = open(self.log_file, "wb")
        self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, env=self.env.environ(), start_new_session=True,
                                        preexec_fn=_stop_with_parent)
        log.close()
        self._regions = set()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerStartError(f"tritonserver exited with code {self.process.returncode} while "
                                       f"starting: {self.log_tail()}")
            if self.ready():
                self._regions = health.mapped_regions(self.process.pid)  # removed if the server dies
                return self
            time.sleep(0.25)
        self.stop()
        raise ServerStartError(f"tritonserver was not ready after {timeout:.0f} s: {self.log_tail()}")

    def supervise(self, log: Callable[[str], None] = lambda msg: None, timeout: float = 180.0) -> dict[str, str]:
        """One round of supervision (``imgdiff-rt serve`` runs it every few seconds): a server that exited is
        restarted, a model whose Python-backend stub died is reloaded and its stale /dev/shm regions removed.
        Returns what was broken ({} when all was well)."""
        if self.process is None or self.process.poll() is not None:
            code = None if self.process is None else self.process.returncode
            log(f"tritonserver exited (code {code}): {self.log_tail()}; restarting it")
            self._clear_regions()
            self.process = None
            self.start(timeout)
            return {"server": f"exited with code {code}"}
        self._regions |= health.mapped_regions(self.process.pid)
        return health.heal(self.http_url, self.process.pid, log)

    def broken_models(self) -> dict[str, str]:
        """{model: why} for every model that cannot serve now (see imgdiff_rt/triton/health.py)."""
        if self.process is None or self.process.poll() is not None:
            return {"server": "not running"}
        return health.broken_models(self.http_url, self.process.pid)

    def _clear_regions(self) -> None:
        """Shared-memory regions of a server that is gone: its stubs can no longer use them."""
        health.remove_stale_regions(0, getattr(self, "_regions", set()))
        self._regions = set()

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.http_url}/v2/health/ready", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def log_tail(self, lines: int = 8) -> str:
        try:
            text = Path(self.log_file).read_text(errors="replace").strip().splitlines()
        except (OSError, TypeError):
            return "(no log)"
        keep = [t for t in text if " E" in t[:2] or "rror" in t] or text
        return " | ".join(keep[-lines:])

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM to the server (by its PID), SIGKILL if it outlives ``timeout``; returns its exit code."""
        p, self.process = self.process, None
        if p is None:
            return None
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)
        self._clear_regions()
        return p.returncode

    def __enter__(self) -> "LocalServer":
        return self.start() if self.process is None else self

    def __exit__(self, *exc) -> None:
        self.stop()
