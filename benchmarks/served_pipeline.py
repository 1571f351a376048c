"""Served pipeline against in-process: write a --platform python repository of BUNDLE, start a local
tritonserver (127.0.0.1, stopped at the end), time examples/left.png + right.png at 1, 4 and 8 clients for
the pixel and hybrid detectors (imgdiff_rt.bench.served), print the table and the 1-client overhead.

    python benchmarks/served_pipeline.py --bundle /tmp/bundle [--requests 8] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from imgdiff_rt.bench.served import markdown, overhead, served_cells
from imgdiff_rt.triton.repository import write_repository
from imgdiff_rt.triton.server import LocalServer, ensure_server_env

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundle", type=Path, required=True)
    ap.add_argument("--requests", type=int, default=8, help="pairs per client")
    ap.add_argument("--clients", default="1,4,8")
    ap.add_argument("--detectors", default="pixel,hybrid")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="served-bench-") as tmp:
        repo = Path(tmp) / "repo"
        write_repository(repo, args.bundle, platform="python")
        server = LocalServer(repo, ensure_server_env(), exit_timeout=5)
        server.start(300)
        try:
            rows = served_cells(args.bundle, server.grpc_url, ROOT / "examples" / "left.png",
                                ROOT / "examples" / "right.png", tuple(args.detectors.split(",")),
                                tuple(int(c) for c in args.clients.split(",")), args.requests, say=print)
        finally:
            server.stop()
    print(markdown(rows))
    for row in overhead(rows):
        print(f"{row['detector']}: 1 client served {row['served_ms']} ms vs in-process {row['in_process_ms']} ms "
              f"(+{row['overhead_ms']} ms; allowed {row['allowed_ms']} ms): {'ok' if row['within'] else 'OVER'}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "overhead": overhead(rows)}, indent=1) + "\n")


if __name__ == "__main__":
    main()
