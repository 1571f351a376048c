"""Served pipeline against in-process: write a --platform python repository of BUNDLE, start a local
tritonserver (127.0.0.1, stopped at the end), time examples/left.png + right.png at 1, 4 and 8 clients for
the pixel and hybrid detectors (imgdiff_rt.bench.served), print the table and the 1-client overhead.

With --soak SECONDS, no timed waves: each client count of --clients sends pairs to the server for SECONDS per
detector, and the server's resident memory (tritonserver and its Python-backend stubs) is sampled every
--sample-every seconds; errors, pairs, p50/p95 and memory at start / end / max are printed.

    python benchmarks/served_pipeline.py --bundle /tmp/bundle [--requests 8] [--json out.json]
    python benchmarks/served_pipeline.py --bundle /tmp/bundle --soak 120 --clients 8 --detectors hybrid

The same cells run inside the suite as `imgdiff-rt bench --stages served`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from imgdiff_rt.bench.served import (markdown, overhead, overhead_lines, running_server, served_cells, served_soak,
                                     soak_line)

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundle", type=Path, required=True)
    ap.add_argument("--requests", type=int, default=8, help="pairs per client")
    ap.add_argument("--clients", default="1,4,8")
    ap.add_argument("--detectors", default="pixel,hybrid")
    ap.add_argument("--soak", type=float, default=None, metavar="SECONDS",
                    help="run each client count for SECONDS against the server instead of the timed waves")
    ap.add_argument("--sample-every", type=float, default=5.0, help="seconds between memory samples of a soak")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    left, right = ROOT / "examples" / "left.png", ROOT / "examples" / "right.png"
    detectors, clients = tuple(args.detectors.split(",")), tuple(int(c) for c in args.clients.split(","))
    with running_server(args.bundle, say=print) as server:
        if args.soak is not None:
            out = {"soak": []}
            for detector in detectors:
                for n in clients:  # each line as it ends: a soak is minutes long
                    out["soak"].append(served_soak(server.grpc_url, server.process.pid, left, right, detector, n,
                                                   args.soak, args.sample_every))
                    print(soak_line(out["soak"][-1]), flush=True)
        else:
            rows = served_cells(args.bundle, server.grpc_url, left, right, detectors, clients, args.requests,
                                say=print)
            out = {"rows": rows, "overhead": overhead(rows)}
    if "rows" in out:
        print(markdown(out["rows"]))
        print("\n".join(["", "Overhead at 1 client:", *overhead_lines(out["overhead"])]))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
