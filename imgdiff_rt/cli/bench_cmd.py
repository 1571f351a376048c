"""`imgdiff-rt bench`: PyTorch eager vs ONNX Runtime fp32/int8 vs TensorRT vs Triton, per stage and per pair.

A thin layer over ``imgdiff_rt.bench`` (the suite's library lives in the package so the installed command
can reach it; ``benchmarks/run_suite.py`` is the same entry for a source checkout, and committed results go
to ``benchmarks/results/``).
"""

from __future__ import annotations

import json

import click

from imgdiff_rt.bench.suite import BenchConfig
from imgdiff_rt.errors import UsageError

_CFG = BenchConfig  # every default below is the library's


def _csv(values) -> str:
    return ",".join(str(v) for v in values)


def _ints(value: str, what: str) -> tuple[int, ...]:
    try:
        found = tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise UsageError(f"--{what}: expected comma-separated integers, got {value!r}") from None
    if not found:
        raise UsageError(f"--{what}: give at least one value")
    return found


def _names(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


@click.command("bench", context_settings={"max_content_width": 100})
@click.option("--models", type=click.Path(file_okay=False), default=None,
              help="Model bundle from `imgdiff-rt export` [default: $IMGDIFF_RT_HOME/models, else "
                   "~/.cache/imgdiff-rt/models].")
@click.option("--backends", default=_csv(_CFG.backends), show_default=True,
              help="Comma-separated; torch (PyTorch eager) is the reference every speed-up is against.")
@click.option("--stages", default=_csv(_CFG.stages), show_default=True,
              help="segment, clip, caption (graphs alone), detect, pipeline (one pair end to end); also "
                   "detect-real, pipeline-real (every pair of --real-sets, Img-Diff as published vs the product's "
                   "defaults; minutes each) and served (the pair through a local tritonserver's imgdiff_pipeline "
                   "beside Pipeline in-process, pixel and hybrid; starts a server, ~1-2 min).")
@click.option("--batch", default=_csv(_CFG.batches), show_default=True, help="Batch sizes for segment/clip/caption, e.g. 1,2,8.")
@click.option("--imgsz", default=_csv(_CFG.imgsz), show_default=True, help="Segmenter input sizes for the segment stage.")
@click.option("--pair-imgsz", default=_csv(_CFG.pair_imgsz), show_default=True, help="Segmenter size inside detect/pipeline.")
@click.option("--runs", type=int, default=_CFG.runs, show_default=True, help="Measured rounds per cell (all backends each).")
@click.option("--warmup", type=int, default=_CFG.warmup, show_default=True, help="Untimed calls per backend per cell.")
@click.option("--max-cell-seconds", type=float, default=_CFG.max_cell_seconds, show_default=True,
              help=f"Cut a cell's rounds (never below {_CFG.min_runs}) so its measured part fits: bounds the "
                   "wall time.")
@click.option("--threads", type=int, default=None, help="Threads for every backend [default: all usable cores].")
@click.option("--device", default=_CFG.device, metavar="cpu|cuda[:N]",
              help="ONNX Runtime providers of the onnx cells and PyTorch device of the torch cells and caption "
                   "generation (torch runs on the CPU only); tensorrt/triton place themselves. Recorded in the "
                   "report [default: each backend's own].")
@click.option("--max-new-tokens", type=int, default=None, help="BLIP caption length [default: the captioner's].")
@click.option("--concurrency", default=_csv(_CFG.concurrency), show_default=True, help="Client counts for the sweep.")
@click.option("--concurrency-backends", default=_csv(_CFG.concurrency_backends), show_default=True,
              help="Backends the concurrency sweep runs against (swept only when triton is benchmarked or "
                   "this is changed).")
@click.option("--triton-url", default=None, metavar="HOST:PORT",
              help="A running Triton server for the triton backend (start one with `imgdiff-rt serve`) "
                   "[default: $IMGDIFF_RT_TRITON_URL, else 127.0.0.1:8000].")
@click.option("--left", type=click.Path(dir_okay=False), default=None, help="Left image [examples/left.png].")
@click.option("--right", type=click.Path(dir_okay=False), default=None, help="Right image [examples/right.png].")
@click.option("--real-sets", default=_csv(_CFG.real_sets), show_default=True,
              help="Pairs of the real-pair cells, NAME[:COUNT]: example, synth, levir-cd, clevr-semantic.")
@click.option("--real-data", default=_CFG.real_data, show_default=True, type=click.Path(file_okay=False),
              help="Folder holding levir-cd/ and clevr-change/ (a set that is absent is skipped, with the reason).")
@click.option("--served-clients", default=_csv(_CFG.served_clients), show_default=True,
              help="Concurrent clients of the served stage (1 gives the served-vs-in-process overhead row).")
@click.option("--served-requests", type=int, default=_CFG.served_requests, show_default=True,
              help="Pairs each client of the served stage sends, after one untimed pair.")
@click.option("--out", default=_CFG.out, show_default=True, type=click.Path(file_okay=False),
              help="results.json, report.md and PNG plots go here.")
@click.option("--no-plots", is_flag=True, help="Skip the matplotlib plots.")
@click.option("--no-peak", is_flag=True, help="Skip measuring the CPU's peak FLOP/s.")
@click.option("--cli-runs", type=int, default=10, show_default=True,
              help="Rounds of the process-level CLI latency cell (`--help`, `run` on the pixel detector); 0 skips.")
@click.option("--classical-runs", type=int, default=_CFG.classical_runs, show_default=True,
              help="Rounds of the classical cell: imgdiff-rt's pixel detector vs odiff and pixelmatch (npm, "
                   "scripts/install_peers.sh) on pixel-exact pairs at 1 MP, 8 MP and 8K, the example, synth and "
                   "CLEVR-Change; 0 skips.")
@click.option("--dry-run", is_flag=True, help="Print the cells and the wall-time bound, run nothing.")
def bench(models, backends, stages, batch, imgsz, pair_imgsz, runs, warmup, max_cell_seconds, threads, device,
          max_new_tokens, concurrency, concurrency_backends, triton_url, left, right, real_sets, real_data,
          served_clients, served_requests, out, no_plots, no_peak, cli_runs, classical_runs, dry_run):
    """Benchmark every backend on the same inputs in one run: latency, throughput, memory, speed-up over
    PyTorch eager, FLOP efficiency; writes OUT/results.json, OUT/report.md and plots.

    \b
    Examples:
      imgdiff-rt bench --models /tmp/real                       # the full suite (~30-40 min on 2 cores)
      imgdiff-rt bench --models /tmp/real --stages detect --backends torch,onnx-int8 --runs 5
      imgdiff-rt bench --models /tmp/real --stages detect-real,pipeline-real --backends torch,onnx,onnx-int8
      imgdiff-rt bench --models /tmp/tiny --imgsz 64 --pair-imgsz 64 --runs 2 --dry-run
      imgdiff-rt bench --models /tmp/tiny --stages served --backends onnx --cli-runs 0 --no-peak
    """
    from imgdiff_rt.bench import BenchConfig, run_suite
    from imgdiff_rt.bench.suite import SERVED, estimate_seconds, plan_cells
    from imgdiff_rt.models.bundle import default_bundle_dir

    cfg = BenchConfig(models=str(models or default_bundle_dir()), out=out, backends=_names(backends),
                      stages=_names(stages), batches=_ints(batch, "batch"), imgsz=_ints(imgsz, "imgsz"),
                      pair_imgsz=_ints(pair_imgsz, "pair-imgsz"), runs=runs, warmup=warmup,
                      max_cell_seconds=max_cell_seconds, threads=threads, max_new_tokens=max_new_tokens,
                      left=left, right=right, concurrency=_ints(concurrency, "concurrency"),
                      concurrency_backends=_names(concurrency_backends), peak_flops=not no_peak,
                      plots=not no_plots, triton_url=triton_url, cli_runs=cli_runs, classical_runs=classical_runs, device=device,
                      real_sets=_names(real_sets), real_data=real_data,
                      served_clients=_ints(served_clients, "served-clients"), served_requests=served_requests).check()
    placement = cfg.placement()  # a missing GPU is one line here, before any work
    from imgdiff_rt.weights_report import bundle_weights, weights_notice

    notice = weights_notice(bundle_weights(cfg.models))  # timings of random weights are real, answers are not
    if notice:
        click.echo(notice, err=True)
    if dry_run:
        cells = [c["key"] for c in plan_cells(cfg)] + ([SERVED] if SERVED in cfg.stages else [])
        click.echo(json.dumps({"cells": cells, "backends": list(cfg.backends),
                               "device": placement,
                               "bound_minutes": round(estimate_seconds(cfg) / 60, 1)}, indent=1))
        return
    results = run_suite(cfg, say=lambda m: click.echo(m, err=True))
    click.echo(results["outputs"]["report"])
