"""The served-pipeline cells: one pair end to end through Triton's ``imgdiff_pipeline`` (one request per pair)
beside the same ``Pipeline`` in-process, at 1, 4 and 8 concurrent clients; and a soak, N clients for a number
of seconds with the server's memory sampled, to show a long run keeps 0 errors and flat memory.

Each client has its own pipeline (in-process: its own sessions; served: its own connection) and sends
``requests`` pairs one after another; latency is per pair as the caller sees it (file bytes in, result out),
throughput is pairs per second of the whole wave.

``served_section`` is the ``served`` cell of ``imgdiff-rt bench`` (opt-in: the server alone takes ~20 s to
start); ``benchmarks/served_pipeline.py`` drives the same functions from the command line.
"""

from __future__ import annotations

import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from imgdiff_rt.errors import ImgDiffError, ServerEnvError, ServerStartError
from imgdiff_rt.models.bundle import Bundle
from imgdiff_rt.pipeline import Pipeline
from imgdiff_rt.triton.served import ServedPipeline

DEFAULT_CLIENTS = (1, 4, 8)
DETECTORS = ("pixel", "hybrid")
#: the served path may cost at most this much more than in-process at one client: p50 * (1 + share) + ms
OVERHEAD_SHARE, OVERHEAD_MS = 0.10, 5.0
TARGET = f"served p50 <= in-process p50 x {1 + OVERHEAD_SHARE:g} + {OVERHEAD_MS:g} ms at 1 client"
SERVER_START_TIMEOUT_S = 300.0
MB = 2**20


@dataclass
class _Tally:
    """What the client threads of one wave or soak collect; errors are counted, the first few kept verbatim."""

    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    first_errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def call(self, p, left: Path, right: Path) -> None:
        t = time.perf_counter()
        try:
            p(left, right)
        except Exception as e:  # counted, never hidden: the soak's "0 errors" is read from here
            with self.lock:
                self.errors += 1
                if len(self.first_errors) < 3:
                    self.first_errors.append(f"{type(e).__name__}: {e}")
            return
        with self.lock:
            self.latencies.append((time.perf_counter() - t) * 1e3)

    def summary(self, clients: int, wall: float) -> dict:
        lat = np.array(self.latencies or [np.nan])
        return {"clients": clients, "pairs": len(self.latencies), "errors": self.errors,
                "first_error": self.first_errors[:1], "p50_ms": round(float(np.percentile(lat, 50)), 1),
                "p95_ms": round(float(np.percentile(lat, 95)), 1),
                "pairs_per_s": round(len(self.latencies) / wall, 2) if wall > 0 else 0.0}


def _opened(make: Callable[[], object], left: Path, right: Path, clients: int) -> list:
    pipelines = [make() for _ in range(clients)]
    for p in pipelines:  # sessions open and the first pair runs before the clock starts
        p.open()
        p(left, right)
    return pipelines


def _drive(pipelines: list, left: Path, right: Path, more: Callable[[int], bool]) -> tuple[_Tally, float]:
    """Every pipeline in its own thread, calling while ``more(calls made so far)``; (tally, wall seconds)."""
    tally = _Tally()

    def client(p) -> None:
        done = 0
        while more(done):
            tally.call(p, left, right)
            done += 1

    threads = [threading.Thread(target=client, args=(p,)) for p in pipelines]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    for p in pipelines:
        p.close()
    return tally, wall


def _wave(make: Callable[[], object], left: Path, right: Path, clients: int, requests: int) -> dict:
    tally, wall = _drive(_opened(make, left, right, clients), left, right, lambda done: done < requests)
    return tally.summary(clients, wall)


def served_cells(bundle: Path, url: str, left: Path, right: Path, detectors=DETECTORS,
                 clients=DEFAULT_CLIENTS, requests: int = 8, protocol: str = "grpc",
                 say: Callable[[str], None] = lambda line: None) -> list[dict]:
    """Rows {detector, path (in-process | served), clients, pairs, errors, p50_ms, p95_ms, pairs_per_s}."""
    rows = []
    for detector in detectors:
        models = bundle if detector != "pixel" else None
        paths = {"in-process": lambda: Pipeline(detector=detector, models=models, precision="fp32"),
                 "served": lambda: ServedPipeline({"detector": detector}, url, protocol)}
        for n in clients:
            for path, make in paths.items():
                row = {"detector": detector, "path": path, **_wave(make, left, right, n, requests)}
                say(f"  {detector:<7} {path:<10} {n} clients: p50 {row['p50_ms']} ms, p95 {row['p95_ms']} ms, "
                    f"{row['pairs_per_s']} pairs/s, {row['errors']} errors")
                rows.append(row)
    return rows


def overhead(rows: list[dict]) -> list[dict]:
    """Per detector at 1 client: served p50 against in-process p50, and the target (10% + 5 ms)."""
    out = []
    for detector in dict.fromkeys(r["detector"] for r in rows):
        one = {r["path"]: r for r in rows if r["detector"] == detector and r["clients"] == 1}
        if {"in-process", "served"} <= set(one):
            local, served = one["in-process"]["p50_ms"], one["served"]["p50_ms"]
            allowed = OVERHEAD_SHARE * local + OVERHEAD_MS
            out.append({"detector": detector, "in_process_ms": local, "served_ms": served,
                        "overhead_ms": round(served - local, 1), "allowed_ms": round(allowed, 1),
                        "within": served <= local + allowed})
    return out


def markdown(rows: list[dict]) -> str:
    """One line per (detector, clients): in-process and served side by side, and their p50 ratio."""
    lines = ["| detector | clients | in-process p50 / p95 | served p50 / p95 | served / in-process p50 | "
             "in-process pairs/s | served pairs/s | errors |", "|---|---|---|---|---|---|---|---|"]
    paired: dict[tuple, dict] = {}
    for r in rows:
        paired.setdefault((r["detector"], r["clients"]), {})[r["path"]] = r
    for (detector, clients), by_path in paired.items():
        local, served = by_path.get("in-process", {}), by_path.get("served", {})
        ratio = served["p50_ms"] / local["p50_ms"] if local.get("p50_ms") and served.get("p50_ms") else None
        lines.append(f"| {detector} | {clients} | {_p50_p95(local)} | {_p50_p95(served)} | "
                     f"{'-' if ratio is None or ratio != ratio else f'{ratio:.2f}x'} | "
                     f"{local.get('pairs_per_s', '-')} | {served.get('pairs_per_s', '-')} | "
                     f"{sum(r.get('errors', 0) for r in by_path.values())} |")
    return "\n".join(lines)


def _p50_p95(row: dict) -> str:
    return f"{row['p50_ms']:g} / {row['p95_ms']:g} ms" if row else "-"


def overhead_lines(rows: list[dict]) -> list[str]:
    return [f"- {o['detector']}: served {o['served_ms']} ms vs in-process {o['in_process_ms']} ms "
            f"({o['overhead_ms']:+} ms; allowed {o['allowed_ms']} ms): **{_verdict(o)}**" for o in rows]


def _verdict(row: dict) -> str:
    return "within" if row["within"] else "over"


def render_served(section: dict | None) -> list[str]:
    """The report's served section (a skipped cell is listed with the other skips, not here)."""
    if not section or not section.get("rows"):
        return []
    started = section.get("server_start_s", "-")
    lines = [f"Served pipeline ({section['request']}; server started in {started} s):",
             "", markdown(section["rows"]), "", f"Overhead at 1 client (target: {TARGET}):", ""]
    return lines + (overhead_lines(section["overhead"]) or ["- no 1-client row measured"]) + [""]


# ---- a local server for the cells -------------------------------------------------------------------------
def skip_reason(bundle: Bundle | Path | str) -> str | None:
    """Why the served cell cannot run with this bundle here (None when it may), before any server starts."""
    from imgdiff_rt.bench.stages import backend_unavailable

    try:
        bundle = bundle if hasattr(bundle, "has_graph") else Bundle.load(bundle)
    except ImgDiffError as e:
        return str(e)
    missing = [g for g in ("segmenter", "clip_image") if not bundle.has_graph(g)]
    if missing:  # the repository's detection ensemble is built from both, whatever detector a request names
        return f"the bundle has no {' or '.join(missing)} graph (the served repository needs both)"
    return backend_unavailable("triton")


@contextmanager
def running_server(bundle: Path, say: Callable[[str], None] = lambda line: None) -> Iterator:
    """A ``--platform python`` repository of ``bundle`` in a temporary folder, served by a local tritonserver on
    free 127.0.0.1 ports; stopped and deleted on exit."""
    from imgdiff_rt.triton.repository import write_repository
    from imgdiff_rt.triton.server import LocalServer, ensure_server_env

    env = ensure_server_env(log=say)  # first: a missing environment is the cheapest failure
    with tempfile.TemporaryDirectory(prefix="imgdiff-rt-served-") as tmp:
        repo = Path(tmp) / "repo"
        write_repository(repo, bundle, platform="python")
        server = LocalServer(repo, env, exit_timeout=5)
        t0 = time.perf_counter()
        server.start(SERVER_START_TIMEOUT_S)
        say(f"  tritonserver ready in {time.perf_counter() - t0:.0f} s at {server.grpc_url}")
        try:
            yield server
        finally:
            server.stop()


def served_section(bundle: Path, left: Path, right: Path, clients=(1, 4), requests: int = 4,
                   detectors=DETECTORS, say: Callable[[str], None] = lambda line: None) -> dict:
    """The suite's served cell: rows, the 1-client overhead against TARGET, or ``skipped`` with the reason."""
    out = {"request": f"`imgdiff_pipeline` over gRPC, one request per pair, {requests} pairs per client after "
                      "one warm-up pair, against the same Pipeline in-process (fp32 ONNX Runtime)",
           "clients": list(clients), "requests_per_client": requests, "detectors": list(detectors),
           "target": TARGET}
    reason = skip_reason(bundle)
    if reason is None:
        t0 = time.perf_counter()
        try:
            with running_server(bundle, say) as server:
                out["server_start_s"] = round(time.perf_counter() - t0, 1)
                out["rows"] = served_cells(Path(bundle), server.grpc_url, left, right, detectors, clients,
                                           requests, say=say)
        except ServerEnvError as e:
            reason = f"no Triton server environment: {e}"
        except ServerStartError as e:
            reason = f"tritonserver did not start: {e}"
        except Exception as e:  # noqa: BLE001 - one broken cell must not cost the whole run; report it
            reason = f"failed while running: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        out["wall_s"] = round(time.perf_counter() - t0, 1)
    if reason is not None:
        out["skipped"] = reason
        say(f"  served: skipped - {reason}")
        return out
    out["overhead"] = overhead(out["rows"])
    for line in overhead_lines(out["overhead"]):
        say(f"  {line[2:]}")
    return out


# ---- the soak ---------------------------------------------------------------------------------------------
def tree_rss_bytes(pid: int, proc: Path = Path("/proc")) -> int:
    """Resident memory of ``pid`` and every process below it: the server's Python-backend stubs are its children
    and hold the models, so the server's own RSS alone would miss a leak in a model. Pages shared between the
    processes count once per process: a level to watch for growth, not the machine's footprint. 0 when gone."""
    children: dict[int, list[int]] = {}
    for entry in proc.iterdir():
        if entry.name.isdigit():
            parent = _ppid(entry)
            if parent is not None:
                children.setdefault(parent, []).append(int(entry.name))
    total, todo, seen = 0, [pid], set()
    while todo:
        p = todo.pop()
        if p not in seen:
            seen.add(p)
            total += _rss(proc / str(p))
            todo += children.get(p, [])
    return total


def _ppid(entry: Path) -> int | None:
    try:  # the command name in parentheses may hold spaces and ")": the fields after the last ")" are fixed
        return int(entry.joinpath("stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None  # exited during the scan, or not a process


def _rss(entry: Path) -> int:
    try:
        for line in entry.joinpath("status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024  # kB
    except (OSError, IndexError, ValueError):
        pass
    return 0  # exited, or a kernel thread (no VmRSS)


def memory_summary(samples: list[tuple[float, int]]) -> dict:
    """Start / end / max resident MB of the (seconds, bytes) samples, and the growth from start to end."""
    if not samples:
        return {}
    mb = [b / MB for _, b in samples]
    return {"start_mb": round(mb[0], 1), "end_mb": round(mb[-1], 1), "max_mb": round(max(mb), 1),
            "growth_mb": round(mb[-1] - mb[0], 1),
            "growth_pct": round(100 * (mb[-1] - mb[0]) / mb[0], 1) if mb[0] else None,
            "samples": [[t, round(m, 1)] for (t, _), m in zip(samples, mb)]}


def soak(make: Callable[[], object], left: Path, right: Path, clients: int, seconds: float,
         memory: Callable[[], int] | None = None, sample_every: float = 5.0) -> dict:
    """``clients`` pipelines calling for ``seconds`` (a call under way at the deadline finishes); ``memory()``
    sampled after warm-up, every ``sample_every`` s and at the end. Row as a wave's plus seconds and memory."""
    pipelines = _opened(make, left, right, clients)
    samples: list[tuple[float, int]] = []
    t0 = time.perf_counter()
    stop = threading.Event()

    def sample() -> None:
        if memory is not None:
            samples.append((round(time.perf_counter() - t0, 1), memory()))

    def sampler() -> None:
        while not stop.wait(sample_every):
            sample()

    sample()  # after warm-up, so loading the models does not read as growth
    thread = threading.Thread(target=sampler, daemon=True, name="soak-memory-sampler")
    thread.start()
    deadline = t0 + seconds
    tally, wall = _drive(pipelines, left, right, lambda done: time.perf_counter() < deadline)
    stop.set()
    thread.join()
    sample()
    return {**tally.summary(clients, wall), "seconds": round(wall, 1), "memory": memory_summary(samples)}


def served_soak(url: str, server_pid: int, left: Path, right: Path, detector: str, clients: int, seconds: float,
                sample_every: float = 5.0, protocol: str = "grpc") -> dict:
    """A soak of the served path; memory is the server's and its stubs' resident total."""
    row = soak(lambda: ServedPipeline({"detector": detector}, url, protocol), left, right, clients, seconds,
               memory=lambda: tree_rss_bytes(server_pid), sample_every=sample_every)
    return {"detector": detector, "path": "served", **row}


def soak_line(row: dict) -> str:
    m = row.get("memory") or {}
    first = f"; first error {row['first_error'][0]}" if row["first_error"] else ""
    return (f"soak {row['detector']} {row['clients']} clients {row['seconds']} s: {row['pairs']} pairs, "
            f"{row['errors']} errors, p50 {row['p50_ms']} ms, p95 {row['p95_ms']} ms, "
            f"{row['pairs_per_s']} pairs/s; "
            f"server RSS start {m.get('start_mb')} MB, end {m.get('end_mb')} MB, max {m.get('max_mb')} MB "
            f"({m.get('growth_mb', 0):+} MB){first}")
