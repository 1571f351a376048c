"""Measuring: backends alternated round by round in one process, warm-up excluded, CUDA synchronised,
peak RSS / GPU memory sampled per backend, and a concurrency sweep (N client threads).

A ``Workload`` is "a callable per backend": the stage builders (``stages.py``) turn a bundle + backend into
one; this module only times callables, so it is tested with plain functions.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

from imgdiff_rt.bench.stats import rotated_orders, summarize


@dataclass
class Workload:
    """One backend's way of doing one stage once: ``fn()`` processes ``items`` units (images, crops, pairs)."""

    backend: str
    fn: Callable[[], Any]
    items: int = 1
    unit: str = "pair"
    close: Callable[[], None] | None = None
    info: dict = field(default_factory=dict)  # weights, precision, providers, threads, ...
    count: Callable[[], dict] | None = None  # one extra call that counts its own work (the real-pair cells)


def _cuda_sync() -> Callable[[], None]:
    """torch.cuda.synchronize when a GPU is in use (so a call's time includes its kernels), else a no-op."""
    try:
        import torch

        if torch.cuda.is_available() and torch.cuda.is_initialized():
            return torch.cuda.synchronize
    except ImportError:
        pass
    return lambda: None


def rss_bytes() -> int:
    try:
        import psutil

        return psutil.Process(os.getpid()).memory_info().rss
    except ImportError:  # psutil is in the bench extra; /proc works on Linux without it
        with open(f"/proc/{os.getpid()}/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def gpu_used_bytes() -> int | None:
    try:
        import torch

        if torch.cuda.is_available() and torch.cuda.is_initialized():
            free, total = torch.cuda.mem_get_info()
            return int(total - free)  # device-wide: includes TensorRT / ORT allocations torch does not own
    except ImportError:
        pass
    return None


class MemorySampler:
    """A background thread sampling RSS (and GPU memory) every ``interval`` s, attributing each sample to the
    label currently set: the peak seen while a backend runs is that backend's peak (process-wide figure: every
    loaded model counts; ``load_delta`` in the results isolates what each backend's models added)."""

    def __init__(self, interval: float = 0.005):
        self.interval = interval
        self.label: str | None = None
        self.peak_rss: dict[str, int] = {}
        self.peak_gpu: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="bench-memory-sampler")

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self) -> None:
        label = self.label
        if label is None:
            return
        rss = rss_bytes()
        self.peak_rss[label] = max(self.peak_rss.get(label, 0), rss)
        gpu = gpu_used_bytes()
        if gpu is not None:
            self.peak_gpu[label] = max(self.peak_gpu.get(label, 0), gpu)

    def __enter__(self) -> "MemorySampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=1)


def time_call(fn: Callable[[], Any], sync: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    fn()
    sync()
    return (time.perf_counter() - t0) * 1e3


def warm_up(workloads: list[Workload], warmup: int) -> dict[str, float]:
    """``warmup`` untimed calls each (at least one: first calls allocate, pick kernels, fill caches); returns
    the last warm-up call's time per backend, which the suite uses to predict the measured part's wall time."""
    sync = _cuda_sync()
    last = {}
    for w in workloads:
        for _ in range(max(1, warmup)):
            last[w.backend] = time_call(w.fn, sync)
    return last


def measure_alternated(workloads: list[Workload], runs: int, warmup: int = 1, *,
                       already_warm: bool = False, sampler: MemorySampler | None = None) -> dict[str, dict]:
    """Time every workload ``runs`` times, alternated: round i runs each backend once (rotated order).

    Returns {backend: {"times_ms": [...per round...], **summarize(...), "peak_rss_bytes", "peak_gpu_bytes"}}.
    Round i of every backend saw the same machine state, which is what ``stats.paired_ratios`` relies on.
    """
    if not already_warm:
        warm_up(workloads, warmup)
    sync = _cuda_sync()
    by_name = {w.backend: w for w in workloads}
    times: dict[str, list[float]] = {n: [] for n in by_name}
    for order in rotated_orders(list(by_name), runs):
        for name in order:
            if sampler is not None:
                sampler.label = name
                sampler.sample()
            times[name].append(time_call(by_name[name].fn, sync))
            if sampler is not None:
                sampler.sample()
                sampler.label = None
    out = {}
    for name, t in times.items():
        row = {"times_ms": [round(x, 3) for x in t], **summarize(t, by_name[name].items)}
        if sampler is not None:
            row["peak_rss_bytes"] = sampler.peak_rss.get(name)
            row["peak_gpu_bytes"] = sampler.peak_gpu.get(name)
        out[name] = row
    return out


def concurrency_sweep(make_client: Callable[[], Callable[[], Any]], levels: list[int],
                      requests_per_client: int, items_per_request: int = 1) -> list[dict]:
    """For each level N: N threads, each with its own client callable, each sending ``requests_per_client``
    requests back to back; throughput = all items / wall time, latency = every request's time.

    Each client is made in its own thread before the clock starts (connections, sessions) and sends one untimed
    request first, so connection set-up never counts.
    """
    rows = []
    for n in levels:
        latencies: list[list[float]] = [[] for _ in range(n)]
        barrier = threading.Barrier(n + 1, timeout=600)  # a failing client breaks it, never hangs

        def worker(i: int) -> None:
            try:
                # Made in the thread that uses it: tritonclient's HTTP client (gevent) is bound to its thread.
                client = make_client()
                client()  # untimed first request
            except BaseException:
                barrier.abort()  # release everyone at once; the error surfaces through the future
                raise
            barrier.wait()
            for _ in range(requests_per_client):
                t0 = time.perf_counter()
                client()
                latencies[i].append((time.perf_counter() - t0) * 1e3)

        with ThreadPoolExecutor(max_workers=n) as pool:
            futures = [pool.submit(worker, i) for i in range(n)]
            try:
                barrier.wait()
            except threading.BrokenBarrierError:
                for f in futures:
                    f.result()  # re-raises the client's own error
                raise
            t0 = time.perf_counter()
            for f in futures:
                f.result()
            wall = time.perf_counter() - t0
        flat = [x for per in latencies for x in per]
        stats = summarize(flat, items_per_request)
        rows.append({"clients": n, "requests": len(flat), "wall_s": round(wall, 3),
                     "throughput_per_s": round(len(flat) * items_per_request / wall, 4),
                     **{k: v for k, v in stats.items() if k.endswith("_ms")}})
    return rows
