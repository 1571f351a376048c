"""Batch throughput: the local loop vs Ray with 1 and 2 workers, on the same pairs, with the pixel detector.

    python benchmarks/batch_scale.py --pairs ../shared/data/clevr-change --rounds 2 --out benchmarks/results/DATE

For each engine and round a fresh output folder is filled from scratch. Reported per run: wall time of
``run_batch`` (includes opening the pipeline and, for Ray, starting the actors, not the cluster), the steady rate
(pairs finished after the first, over the time from the first record file to the last: start-up excluded), and
and the load average. The Ray cluster is started once (its start time is reported on its own) and shared by the
Ray runs, as a long-lived cluster would be.

Ray's overhead per pair is measured apart, with a job that does no image work (``NullJob``: the pair's record
is still written and returned, as in a real batch): its steady time per pair on Ray with one worker, minus the
same on the local loop, is what Ray adds to every pair (scheduling, the actor call, moving the record back).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from imgdiff_rt.batch import BatchOptions, RunJob, run_batch
from imgdiff_rt.pairs import load_pairs
from imgdiff_rt.pipeline import Pipeline

CONFIGS = [("local", None), ("ray", 1), ("ray", 2)]


def steady_rate(out: Path) -> float:
    times = sorted(p.stat().st_mtime for p in out.glob("*.json") if not p.name.startswith("."))
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else float("nan")


class NullJob:
    """A batch job without image work: only the engine's own per-pair cost remains."""

    results_name = "results.jsonl"
    records_subdir = ""

    def settings(self, pipeline: Pipeline) -> dict:
        return {"job": "null"}

    def process(self, pipeline: Pipeline, item, out_dir: Path | None) -> dict:
        return {"id": item.id}


def one_run(items, engine: str, workers: int | None, scratch: Path, job=None) -> dict:
    out = scratch / f"{engine}-{workers}"
    shutil.rmtree(out, ignore_errors=True)
    options = BatchOptions(engine=engine, workers=workers, batch_size=4, progress="quiet")
    start = time.perf_counter()
    summary, _ = run_batch(Pipeline(), items, job or RunJob(), out, options)
    wall = time.perf_counter() - start
    return {"engine": engine, "workers": workers, "pairs": summary.total, "failed": summary.failed,
            "wall_s": round(wall, 3), "pairs_per_s_wall": round(summary.total / wall, 3),
            "pairs_per_s_steady": round(steady_rate(out), 3),
            "loadavg_1m": round(os.getloadavg()[0], 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", required=True)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None, help="use the first N pairs")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    items = load_pairs(args.pairs)[: args.limit]
    import ray

    t0 = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    cluster_start_s = time.perf_counter() - t0
    runs, null_runs = [], []
    with tempfile.TemporaryDirectory(prefix="imgdiff-rt-batch-scale-") as scratch:
        for _ in range(args.rounds):
            for engine, workers in CONFIGS:  # alternated, so drifting machine load hits every engine alike
                runs.append(one_run(items, engine, workers, Path(scratch)))
                print(json.dumps(runs[-1]), flush=True)
            for engine, workers in CONFIGS[:2]:
                null_runs.append(one_run(items, engine, workers, Path(scratch), NullJob()))
                print(json.dumps({"null_job": True, **null_runs[-1]}), flush=True)
    ray.shutdown()
    table = []
    for engine, workers in CONFIGS:
        mine = [r for r in runs if r["engine"] == engine and r["workers"] == workers]
        table.append({"engine": engine, "workers": workers,
                      "pairs_per_s_wall": statistics.median(r["pairs_per_s_wall"] for r in mine),
                      "pairs_per_s_steady": statistics.median(r["pairs_per_s_steady"] for r in mine)})
    null_ms = {e: statistics.median(1000 / r["pairs_per_s_steady"] for r in null_runs if r["engine"] == e)
               for e in ("local", "ray")}
    report = {"pairs_source": str(args.pairs), "pairs": len(items), "rounds": args.rounds,
              "cpus": os.cpu_count(), "machine": platform.platform(), "ray_cluster_start_s": round(cluster_start_s, 2),
              "null_job_ms_per_pair": {e: round(v, 2) for e, v in null_ms.items()},
              "ray_overhead_ms_per_pair": round(null_ms["ray"] - null_ms["local"], 2),
              "loadavg_1m_median": statistics.median(r["loadavg_1m"] for r in runs), "table": table, "runs": runs, "null_runs": null_runs}
    print(json.dumps({k: v for k, v in report.items() if k != "runs"}, indent=2))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "batch_scale.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
