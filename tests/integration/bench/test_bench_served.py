"""The suite's served cell end to end: `run_suite` with only the served stage on the tiny bundle starts a real
tritonserver (nvidia-pytriton's binary + Python backend, CPU; the side environment is built on first use, see
tests/integration/triton/test_triton_server.py), times one client sending two pairs through ``imgdiff_pipeline``
beside the same Pipeline in-process for the pixel and hybrid detectors, stops the server, and writes the rows and
the 1-client overhead into results.json and report.md."""

from __future__ import annotations

import json

from imgdiff_rt.bench import served
from imgdiff_rt.bench.suite import SERVED, BenchConfig, run_suite

from helpers import LEFT, RIGHT


def test_served_cell_writes_rows_and_overhead(tiny_caption_bundle, tmp_path):
    from helpers import triton_server_env

    triton_server_env()  # a skip where the side environment cannot be built (no package index)
    out = tmp_path / "results"
    cfg = BenchConfig(models=str(tiny_caption_bundle), out=str(out), backends=("onnx",), stages=(SERVED,),
                      left=str(LEFT), right=str(RIGHT),
                      served_clients=(1,), served_requests=2, cli_runs=0, peak_flops=False, plots=False)
    run_suite(cfg, say=lambda line: None)
    data = json.loads((out / "results.json").read_text())
    section = data["served"]
    assert "skipped" not in section, section.get("skipped")
    assert [(r["detector"], r["path"], r["clients"]) for r in section["rows"]] == [
        (d, p, 1) for d in ("pixel", "hybrid") for p in ("in-process", "served")]
    assert all(r["pairs"] == 2 and r["errors"] == 0 and r["p50_ms"] > 0 for r in section["rows"])
    assert [o["detector"] for o in section["overhead"]] == ["pixel", "hybrid"]
    assert section["server_start_s"] > 0 and data["cells"] == []
    report = (out / "report.md").read_text()
    assert "| pixel | 1 |" in report and f"Overhead at 1 client (target: {served.TARGET}):" in report
