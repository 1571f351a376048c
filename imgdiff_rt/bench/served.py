"""The served-pipeline cells: one pair end to end through Triton's ``imgdiff_pipeline`` (one request per pair)
beside the same ``Pipeline`` in-process, at 1, 4 and 8 concurrent clients.

Each client has its own pipeline (in-process: its own sessions; served: its own connection) and sends
``requests`` pairs one after another; latency is per pair as the caller sees it (file bytes in, result out),
throughput is pairs per second of the whole wave.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np

from imgdiff_rt.pipeline import Pipeline
from imgdiff_rt.triton.served import ServedPipeline

DEFAULT_CLIENTS = (1, 4, 8)


def _wave(make: Callable[[], object], left: Path, right: Path, clients: int, requests: int) -> dict:
    pipelines = [make() for _ in range(clients)]
    for p in pipelines:  # sessions open and the first pair runs before the clock starts
        p.open()
        p(left, right)
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def client(p) -> None:
        for _ in range(requests):
            t = time.perf_counter()
            try:
                p(left, right)
            except Exception as e:  # counted, never hidden: the soak's "0 errors" is read from here
                with lock:
                    errors.append(f"{type(e).__name__}: {e}")
                continue
            with lock:
                latencies.append((time.perf_counter() - t) * 1e3)

    threads = [threading.Thread(target=client, args=(p,)) for p in pipelines]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    for p in pipelines:
        p.close()
    lat = np.array(latencies or [np.nan])
    return {"clients": clients, "pairs": len(latencies), "errors": len(errors), "first_error": errors[:1],
            "p50_ms": round(float(np.percentile(lat, 50)), 1), "p95_ms": round(float(np.percentile(lat, 95)), 1),
            "pairs_per_s": round(len(latencies) / wall, 2)}


def served_cells(bundle: Path, url: str, left: Path, right: Path, detectors=("pixel", "hybrid"),
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
            out.append({"detector": detector, "in_process_ms": local, "served_ms": served,
                        "overhead_ms": round(served - local, 1), "allowed_ms": round(0.1 * local + 5, 1),
                        "within": served <= 1.1 * local + 5})
    return out


def markdown(rows: list[dict]) -> str:
    lines = ["| detector | path | clients | p50 ms | p95 ms | pairs/s | errors |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['detector']} | {r['path']} | {r['clients']} | {r['p50_ms']} | {r['p95_ms']} | "
              f"{r['pairs_per_s']} | {r['errors']} |" for r in rows]
    return "\n".join(lines)
