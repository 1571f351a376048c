#!/usr/bin/env python
"""A bounded load of `imgdiff-rt web`: N clients post the example pair for a fixed time against a server this
script starts (and stops), and it reports requests, 200s, 429s, errors, latency percentiles and the server's RSS
over time.

    nice python benchmarks/web_load.py --clients 8 --seconds 120 --out benchmarks/results/web-load.json

Each client posts, and after every 200 fetches the annotated PNG and the mask (what the page does); after a 429
it waits ``--retry-wait`` seconds (the server says Retry-After: 1; a shorter wait keeps the pressure on). Clients
and server share this machine's cores, so the latencies are this machine's, clients included.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_server(port: int, server_args: list[str]) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", "from imgdiff_rt.cli.main import cli; cli()", "web",
                             "--port", str(port), *server_args], cwd=ROOT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not start within 60 s")


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.codes: Counter = Counter()
        self.ok_ms: list[float] = []
        self.busy_ms: list[float] = []
        self.errors: list[str] = []
        self.picture_errors = 0

    def add(self, code: int | None, ms: float, error: str | None = None, picture_failed: bool = False) -> None:
        with self.lock:
            self.codes[code if code is not None else "exception"] += 1
            self.picture_errors += picture_failed
            (self.ok_ms if code == 200 else self.busy_ms if code == 429 else []).append(ms)
            if error is not None and len(self.errors) < 20:
                self.errors.append(error)


def client_loop(base: str, files: dict, until: float, retry_wait: float, tally: Tally) -> None:
    with httpx.Client(base_url=base, timeout=120) as http:
        while time.monotonic() < until:
            t0 = time.perf_counter()
            try:
                resp = http.post("/v1/diff", files=files)
            except httpx.HTTPError as e:
                tally.add(None, (time.perf_counter() - t0) * 1e3, f"{type(e).__name__}: {e}")
                continue
            ms = (time.perf_counter() - t0) * 1e3
            if resp.status_code == 200:
                links = resp.json()["job"]["links"]
                pictures = [http.get(links[k]).status_code for k in ("annotated_png", "mask_png")]
                bad = [c for c in pictures if c != 200]
                tally.add(200, ms, f"picture fetch answered {bad}" if bad else None, picture_failed=bool(bad))
            elif resp.status_code == 429:
                tally.add(429, ms)
                time.sleep(retry_wait)
            else:
                tally.add(resp.status_code, ms, resp.text[:200])


def percentiles(values: list[float]) -> dict:
    if not values:
        return {}
    qs = statistics.quantiles(values, n=100, method="inclusive") if len(values) > 1 else [values[0]] * 99
    return {"p50": round(qs[49], 1), "p90": round(qs[89], 1), "p99": round(qs[98], 1),
            "max": round(max(values), 1), "mean": round(statistics.fmean(values), 1)}


def run(args) -> dict:
    port = free_port()
    server = start_server(port, args.server_args)
    base = f"http://127.0.0.1:{port}"
    files = {side: (f"{side}.png", (ROOT / "examples" / f"{side}.png").read_bytes(), "image/png")
             for side in ("left", "right")}
    tally, samples = Tally(), []
    t_start = time.monotonic()
    until = t_start + args.seconds
    threads = [threading.Thread(target=client_loop, args=(base, files, until, args.retry_wait, tally))
               for _ in range(args.clients)]
    try:
        samples.append((0.0, rss_mb(server.pid)))
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            time.sleep(args.sample_every)
            samples.append((round(time.monotonic() - t_start, 1), round(rss_mb(server.pid), 1)))
        health = httpx.get(f"{base}/v1/health", timeout=10).json()
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(30)
    ok = tally.codes.get(200, 0)
    half = [mb for t, mb in samples if t >= args.seconds / 2]
    return {
        "clients": args.clients, "seconds": args.seconds, "server_args": args.server_args,
        "cpu_count": os.cpu_count(), "requests": sum(tally.codes.values()), "ok": ok,
        "busy_429": tally.codes.get(429, 0),
        "errors": sum(n for c, n in tally.codes.items() if c not in (200, 429)) + tally.picture_errors,
        "codes": {str(k): v for k, v in tally.codes.items()}, "error_samples": tally.errors,
        "ok_per_s": round(ok / args.seconds, 2),
        "latency_ms_200": percentiles(tally.ok_ms), "latency_ms_429": percentiles(tally.busy_ms),
        "rss_mb": {"start": samples[0][1], "max": max(mb for _, mb in samples), "end": samples[-1][1],
                   "second_half_min": min(half) if half else None, "second_half_max": max(half) if half else None,
                   "series": samples},
        "health_at_end": health,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--retry-wait", type=float, default=0.25, help="seconds a client waits after a 429")
    ap.add_argument("--sample-every", type=float, default=5.0, help="seconds between RSS samples")
    ap.add_argument("--out", type=Path, default=None, help="also write the report here (JSON)")
    ap.add_argument("server_args", nargs="*", help="options for `imgdiff-rt web` (after --)")
    args = ap.parse_args()
    report = run(args)
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    summary = {k: v for k, v in report.items() if k not in ("error_samples",)}
    summary["rss_mb"] = {k: v for k, v in report["rss_mb"].items() if k != "series"}
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
