"""Is every model of a local Triton server really able to serve, and bring back the ones that are not.

Triton's own ``/v2/health/ready`` and ``/v2/models/X/ready`` keep answering 200 after a Python-backend stub
process dies, while every request to that model fails ("Stub process ... is not healthy") until the model is
reloaded. So health here means: the server answers, and every loaded Python-backend model has all of its stub
processes alive (a look at /proc: the server's children, named ``<model>_<group>_<instance>`` on their command
line; no inference, so the check costs a few milliseconds). A broken model is reloaded through Triton's
model-control API (the server must run with ``--model-control-mode=explicit``), and the shared-memory regions
its dead stubs left in /dev/shm are removed.

Used by ``imgdiff-rt serve`` (every few seconds) and by the Docker image's HEALTHCHECK::

    python3 -m imgdiff_rt.triton.health --url 127.0.0.1:8000 --reload    # exit 1 while a model is broken
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

STUB_NAME = "triton_python_backend_stub"
SHM_PREFIX = "triton_python_backend_shm_region_"
SHM_DIR = Path("/dev/shm")


@dataclass(frozen=True)
class Stub:
    pid: int
    instance: str  # "<model>_<group>_<n>"
    region: str  # its shared-memory region's name in /dev/shm


def _http(url: str, path: str, method: str = "GET", timeout: float = 5.0):
    req = urllib.request.Request(f"http://{url}{path}", method=method, data=b"{}" if method == "POST" else None)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        body = r.read()
    return json.loads(body) if body else None


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def live_stubs(server_pid: int) -> list[Stub]:
    """The server's Python-backend stubs now alive. A stub's command line is: stub, model.py, region, sizes...,
    parent PID, backend folder, buffer size, instance name, execution environment."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        args = _cmdline(int(entry.name))
        if not args or not args[0].endswith(STUB_NAME) or str(server_pid) not in args:
            continue
        instance = next((a for a in args if re.fullmatch(r".+_\d+_\d+", a)), "")
        region = next((a for a in args if a.startswith(SHM_PREFIX)), "")
        if _state(int(entry.name)) != "Z":
            found.append(Stub(int(entry.name), instance, region))
    return found


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "X"


def expected_stubs(url: str) -> dict[str, int]:
    """{model: number of stub processes it should have} for every READY Python-backend model."""
    wanted = {}
    for row in _http(url, "/v2/repository/index", "POST") or []:
        if row.get("state") != "READY":
            continue
        config = _http(url, f"/v2/models/{row['name']}/config")
        if config.get("backend") != "python" and config.get("platform") != "python":
            continue
        groups = config.get("instance_group") or [{"count": 1}]
        wanted[row["name"]] = sum(int(g.get("count", 1)) for g in groups)
    return wanted


def broken_models(url: str, server_pid: int) -> dict[str, str]:
    """{model: why} for each model that cannot serve now; {"server": why} when the server does not answer."""
    try:
        wanted = expected_stubs(url)
    except (OSError, ValueError) as e:
        return {"server": f"does not answer at {url} ({e})"}
    alive: dict[str, int] = {}
    for stub in live_stubs(server_pid):
        model = re.sub(r"_\d+_\d+$", "", stub.instance)
        alive[model] = alive.get(model, 0) + 1
    return {m: f"{alive.get(m, 0)} of {n} Python-backend stub processes alive"
            for m, n in wanted.items() if alive.get(m, 0) < n}


def reload_model(url: str, model: str, timeout: float = 120.0) -> None:
    """Unload, then load, through Triton's model-control API: new instances, new stubs. (A plain load of a
    loaded model whose files did not change is a no-op: measured, the dead stub stays dead.)"""
    _http(url, f"/v2/repository/models/{model}/unload", "POST", timeout=timeout)
    _http(url, f"/v2/repository/models/{model}/load", "POST", timeout=timeout)


def mapped_regions(pid: int) -> set[str]:
    try:
        text = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return set()
    return {m.group(1) for m in re.finditer(rf"/dev/shm/({SHM_PREFIX}[\w-]+)", text)}


def remove_stale_regions(server_pid: int, regions: set[str] | None = None) -> list[str]:
    """Unlink the server's shared-memory regions that no live stub uses (dead stubs' leftovers); with
    ``regions`` (after the server has stopped) unlink those. Only this server's regions are ever touched."""
    candidates = mapped_regions(server_pid) if regions is None else set(regions)
    in_use = {s.region for s in live_stubs(server_pid)} if regions is None else set()
    removed = []
    for name in sorted(candidates - in_use):
        try:
            (SHM_DIR / name).unlink()
            removed.append(name)
        except OSError:
            continue
    return removed


def heal(url: str, server_pid: int, log=lambda msg: None) -> dict[str, str]:
    """Reload every broken model and clear its dead stubs' regions; returns what was broken."""
    broken = broken_models(url, server_pid)
    for model, why in broken.items():
        if model == "server":
            continue
        log(f"model {model} is broken ({why}); reloading it")
        try:
            reload_model(url, model)
        except (OSError, ValueError) as e:
            log(f"reloading {model} failed: {e}")
    if broken:
        gone = remove_stale_regions(server_pid)
        if gone:
            log(f"removed {len(gone)} stale shared-memory region(s) of dead stubs")
    return broken


def find_server_pid() -> int | None:
    """The one ``tritonserver`` process on this machine (inside a container: the entrypoint's)."""
    pids = [int(e.name) for e in os.scandir("/proc")
            if e.name.isdigit() and (_cmdline(int(e.name)) or [""])[0].endswith("tritonserver")]
    return pids[0] if len(pids) == 1 else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m imgdiff_rt.triton.health", description=__doc__.split("\n")[0])
    ap.add_argument("--url", default="127.0.0.1:8000", help="HTTP address of the server")
    ap.add_argument("--pid", type=int, default=None, help="the server's PID [default: the one tritonserver]")
    ap.add_argument("--reload", action="store_true", help="also reload broken models (explicit model control)")
    args = ap.parse_args(argv)
    pid = args.pid or find_server_pid()
    if pid is None:
        print("unhealthy: no single tritonserver process found (give --pid)", file=sys.stderr)
        return 1
    broken = heal(args.url, pid, log=lambda m: print(m, file=sys.stderr)) if args.reload \
        else broken_models(args.url, pid)
    for model, why in broken.items():
        print(f"unhealthy: {model}: {why}", file=sys.stderr)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
