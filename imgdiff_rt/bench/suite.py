"""The benchmark run: plan the cells (stage x size x batch), build every backend's workload for a cell,
warm up, predict the time, measure alternated, count the work, profile one call per backend, then write
results.json / report.md / plots. ``run_suite(BenchConfig(...))`` is what ``imgdiff-rt bench`` and
``benchmarks/run_suite.py`` call.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from imgdiff_rt.errors import UsageError
from imgdiff_rt.models.bundle import Bundle
from imgdiff_rt.models.specs import DEFAULT_IMGSZ
from imgdiff_rt.runtime.device import parse_device, session_settings
from imgdiff_rt.bench import context, harness, real_pairs, stages, work
from imgdiff_rt.bench.machine import machine_info, measure_peak_flops, usable_cores
from imgdiff_rt.bench.stats import paired_ratios

DEFAULT_PAIR = ("examples/left.png", "examples/right.png")
#: the issues' targets, checked on the report: (stage, backend, minimum median speed-up over torch); on the
#: real-pair cells the product's default (the ``default`` column: the CLI's precision auto) against Img-Diff as
#: published, and detection must keep the same regions on every pair
TARGETS = (("detect", "onnx-int8", 2.5), ("pipeline", "onnx-int8", 1.5), ("detect-real", "default", 4.0),
           ("pipeline-real", "default", 3.0))
#: stages not in the default set: the real-pair cells need the real segmenter and take minutes (--stages names them)
DEFAULT_STAGES = tuple(s for s in stages.STAGES if s not in stages.REAL_STAGES)
SERVED = "served"  # the served cell (bench/served.py): opt-in by name in --stages (~20 s to start a server)


@dataclass
class BenchConfig:
    models: str
    out: str = "benchmarks/results/latest"
    backends: tuple[str, ...] = tuple(context.BACKENDS)
    stages: tuple[str, ...] = DEFAULT_STAGES
    batches: tuple[int, ...] = (1,)
    imgsz: tuple[int, ...] = (DEFAULT_IMGSZ, 1024)
    pair_imgsz: tuple[int, ...] = (DEFAULT_IMGSZ,)  # detect / pipeline sizes (each is a whole pipeline per pair)
    runs: int = 7
    warmup: int = 1
    max_cell_seconds: float = 90.0  # measured part of one cell; runs are cut (never below min_runs) to fit
    min_runs: int = 3
    threads: int | None = None  # None: all usable cores
    max_new_tokens: int | None = None
    left: str | None = None
    right: str | None = None
    concurrency: tuple[int, ...] = (1, 2, 4, 8, 16)
    concurrency_backends: tuple[str, ...] = ("triton",)
    concurrency_requests: int = 3
    peak_flops: bool = True
    triton_url: str | None = None  # HOST:PORT of a running server (`imgdiff-rt serve`); else the client default
    plots: bool = True
    cli_runs: int = 10  # process-level `imgdiff-rt --help` / `run` (pixel) latency rounds; 0 skips it
    classical_runs: int = 0  # rounds of the classical cell (imgdiff-rt vs odiff / pixelmatch); 0 skips it
    device: str | None = None  # cpu | cuda[:N] for the onnx and torch cells and generation; None: each's own
    real_sets: tuple[str, ...] = real_pairs.DEFAULT_SETS  # the real-pair cells' pairs, "NAME[:COUNT]"
    real_data: str = "../shared/data"  # LEVIR-CD and CLEVR-Change for the real-pair cells (a set absent: skipped)
    served_clients: tuple[int, ...] = (1, 4)  # the served cell's client counts (1 gives the overhead row)
    served_requests: int = 4  # pairs per client of the served cell, after one warm-up pair
    extra: dict = field(default_factory=dict)

    def check(self) -> "BenchConfig":
        if not self.backends or not self.stages:
            raise UsageError("backends and stages must each name at least one", parameter="backends")
        bad = [b for b in (*self.backends, *self.concurrency_backends) if b not in context.BACKENDS]
        bad += [s for s in self.stages if s not in (*stages.STAGES, SERVED)]
        if bad:
            raise UsageError(f"unknown backend/stage {', '.join(bad)}; backends: {', '.join(context.BACKENDS)}; "
                             f"stages: {', '.join((*stages.STAGES, SERVED))}")
        if self.runs < 1 or self.warmup < 0 or self.served_requests < 1 or not self.served_clients or \
                any(b < 1 for b in (*self.batches, *self.served_clients)):
            raise UsageError("runs, batches, served clients, requests must be at least 1, warmup at least 0")
        if any(s < 32 or s % 32 for s in (*self.imgsz, *self.pair_imgsz)):
            raise UsageError("imgsz values must be positive multiples of 32", parameter="imgsz")
        if self.device is not None:
            parse_device(self.device)
        real_pairs.parse_sets(self.real_sets)
        return self

    def placement(self) -> dict:
        """Where ``device`` puts the cells, checked on this machine (UsageError before any work): the onnx cells'
        providers and PyTorch's device (the eager torch cells, BLIP generation). tensorrt and triton cells
        place themselves (engines on cuda:0; the server's instances). Device None: each backend's own."""
        if self.device is None:
            return {"device": "each backend's default"}
        sessions, generation = session_settings(self.device, "onnx")
        if "torch" in self.backends:
            session_settings(self.device, "torch")  # the eager reference runs on the CPU: cuda is refused
        return {"device": str(parse_device(self.device)), "onnx_providers": sessions["providers"],
                "torch_device": generation["device"]}


def plan_cells(cfg: BenchConfig) -> list[dict]:
    """Every (stage, imgsz, batch) measured; the size applies to the segmenter, the batch to graph stages."""
    cells = []
    for stage in (s for s in cfg.stages if s != SERVED):  # the served cell is one section, not per backend
        # the real-pair cells run the segmenter at its own size (a registered segmenter fixes it)
        sizes = cfg.imgsz if stage == "segment" else (None,) if stage in stages.REAL_STAGES else \
            cfg.pair_imgsz if stage in stages.PAIR_STAGES else (None,)
        batches = (1,) if stage in stages.PAIR_STAGES else cfg.batches
        for size in sizes:
            for batch in batches:
                cells.append({"stage": stage, "imgsz": size, "batch": batch,
                              "key": cell_key(stage, size, batch)})
    return cells


def cell_key(stage: str, imgsz: int | None, batch: int) -> str:
    return stage + (f"@{imgsz}" if imgsz else "") + ("" if stage in stages.PAIR_STAGES else f"/b{batch}")


def _read_pair(cfg: BenchConfig) -> tuple[np.ndarray, np.ndarray, Path, Path]:
    """The pair detect/pipeline time; by default the checkout's example pair, found from the current folder
    (an installed package carries no examples: then left/right must be given)."""
    from imgdiff_rt.imageio import read_image

    left, right = Path(cfg.left or DEFAULT_PAIR[0]), Path(cfg.right or DEFAULT_PAIR[1])
    for name, path in (("left", left), ("right", right)):
        if not path.is_file():
            raise UsageError(f"{name} image {path} not found (the default is the checkout's example pair, "
                             "relative to the current folder)", parameter=name)
    return read_image(left), read_image(right), left, right


def _count_work(ctx: context.Context, cell: dict, workload: harness.Workload | None) -> dict:
    """FLOPs / bytes of one call, counted on the fp32 graphs from the onnx workload's recorded calls, plus the
    PyTorch FLOPs that run outside any session (BLIP's decoder during generation)."""
    if workload is None:
        return {"skipped": "needs an onnx backend to record which graphs run"}
    recorder = work.SessionRecorder()
    with recorder.active():
        torch_flops, _ = work.torch_flops(workload.fn)
    counted = work.recorded_work(recorder, ctx.bundle)
    counted["torch_flops_outside_graphs"] = torch_flops
    counted["flops"] += torch_flops
    counted["sessions"] = recorder.by_spec()
    return counted


def _build_workloads(cfg: BenchConfig, ctx: context.Context, row: dict, say) -> list[harness.Workload]:
    workloads = []
    for name in cfg.backends:
        rss0 = harness.rss_bytes()
        try:
            w = stages.build_workload(ctx, row["stage"], context.BACKENDS[name], row["batch"],
                                      row["imgsz"] or DEFAULT_IMGSZ)
        except context.StageSkipped as e:
            row["skipped"][name] = str(e)
            say(f"  {name}: skipped - {e}")
            continue
        w.info["load_delta_bytes"] = harness.rss_bytes() - rss0
        row.update(w.info.pop("cell_info", {}))  # what the whole cell ran on (the real pairs)
        workloads.append(w)
    return workloads


def _measure_cell(cfg: BenchConfig, ctx: context.Context, cell: dict, say: Callable[[str], None],
                  sampler: harness.MemorySampler) -> dict:
    row = {**cell, "doc": stages.STAGE_DOC[cell["stage"]], "backends": {}, "skipped": {}}
    workloads = _build_workloads(cfg, ctx, row, say)
    if not workloads:
        return row
    t0 = time.perf_counter()
    try:
        last = harness.warm_up(workloads, cfg.warmup)
    except Exception as e:  # noqa: BLE001 - one broken backend must not cost the whole run; report it
        return _failed(row, workloads, e, say)
    for w in workloads:  # the per-call records describe the measured calls only
        for key in ("facts", "timings", "calls", "tokens_per_call"):
            w.info.get(key, []).clear()
    per_round = sum(last.values()) / 1e3
    runs = cfg.runs
    if per_round * runs > cfg.max_cell_seconds:
        runs = max(cfg.min_runs, int(cfg.max_cell_seconds // max(per_round, 1e-9)))
    row["runs_planned"], row["warmup_s"] = runs, round(time.perf_counter() - t0, 1)
    say(f"  warm-up {row['warmup_s']} s; measuring {runs} rounds x {len(workloads)} backends "
        f"(~{per_round * runs:.0f} s)")
    try:
        measured = harness.measure_alternated(workloads, runs, already_warm=True, sampler=sampler)
        logs = {w.backend: list(w.info.get("calls", [])) for w in workloads}  # before any extra call
        if cell["stage"] in stages.REAL_STAGES:  # one counted call each: graph calls, FLOPs by stage
            profiles = {w.backend: {"work": w.count()} for w in workloads if w.count is not None}
        else:
            profiles = {w.backend: {"profile": work.profile_calls(w.fn)} for w in workloads} if cell["stage"] in \
                ("caption", "detect", "pipeline") else {}
    except Exception as e:  # noqa: BLE001
        return _failed(row, workloads, e, say)
    if cell["stage"] not in stages.REAL_STAGES:
        onnx_w = next((w for w in workloads if w.backend == "onnx"), None)
        if onnx_w is None and cell["stage"] in ("segment", "clip"):
            onnx_w = _maybe_build(ctx, cell, "onnx")
        if onnx_w is None:  # a graph held in int8 only (a registered segmenter): its calls, counted on that graph
            onnx_w = next((w for w in workloads if w.backend == "onnx-int8"), None)
        row["work"] = _count_work(ctx, cell, onnx_w)
    _entries(row, workloads, measured, profiles, say)
    if cell["stage"] in stages.REAL_STAGES:
        from imgdiff_rt.bench.real_summary import summarise

        summarise(row, logs)
    return row


def _entries(row: dict, workloads: list[harness.Workload], measured: dict, profiles: dict, say) -> None:
    for w in workloads:
        info = {k: v for k, v in w.info.items() if k not in ("facts", "timings", "tokens_per_call", "calls")}
        entry = {**measured[w.backend], "unit": w.unit, "items_per_call": w.items,
                 "label": context.BACKENDS[w.backend].label, **info, **profiles.get(w.backend, {})}
        for key in ("facts", "timings"):
            if w.info.get(key):
                entry["stage_ms_median"] = _median_rows(w.info[key])
        if w.info.get("tokens_per_call"):
            entry["tokens_per_call_median"] = float(np.median(w.info["tokens_per_call"]))
        row["backends"][w.backend] = entry
    ref = row["backends"].get(context.REFERENCE)
    for name, entry in row["backends"].items():
        if ref is not None and name != context.REFERENCE:
            entry["speedup_vs_torch"] = paired_ratios(ref["times_ms"], entry["times_ms"])
        say(f"  {name:10s} median {entry['median_ms']:9.1f} ms  p95 {entry['p95_ms']:9.1f}  "
            f"{entry['throughput_per_s']:.3f} {entry['unit']}/s"
            + (f"  x{entry['speedup_vs_torch']['median']:.2f} vs torch" if "speedup_vs_torch" in entry else ""))


def _maybe_build(ctx, cell, name):
    try:
        return stages.build_workload(ctx, cell["stage"], context.BACKENDS[name], cell["batch"], cell["imgsz"] or DEFAULT_IMGSZ)
    except context.StageSkipped:
        return None


def _median_rows(rows: list[dict]) -> dict:
    keys = {k for r in rows for k, v in r.items() if isinstance(v, (int, float)) and v is not None}
    return {k: round(float(np.median([r[k] for r in rows if isinstance(r.get(k), (int, float))])), 2)
            for k in sorted(keys)}


def _failed(row: dict, workloads: list, error: Exception, say) -> dict:
    message = f"failed while running: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    for w in workloads:
        row["skipped"][w.backend] = message
    say(f"  {message}")
    return row


def _concurrency(cfg: BenchConfig, ctx: context.Context, say) -> dict:
    """Throughput and latency against N concurrent clients (segmenter requests at the first --imgsz)."""
    from imgdiff_rt.runtime.session import open_session

    # the segmenter at the first --imgsz is the request; a bundle without one (tests) sends CLIP crops
    spec_name = "segmenter" if ctx.bundle.has_graph("segmenter") else "clip_image"
    dims = {"height": cfg.imgsz[0], "width": cfg.imgsz[0]} if spec_name == "segmenter" else {}
    out = {"request": f"{spec_name}, batch 1" + (f" at {cfg.imgsz[0]}" if dims else ""), "backends": {},
           "skipped": {}}
    for name in cfg.concurrency_backends:
        reason = stages.backend_unavailable(name)
        if reason:
            out["skipped"][name] = reason
            say(f"  concurrency {name}: skipped - {reason}")
            continue
        choice = context.BACKENDS[name]
        spec_feeds = {}

        def make_client(choice=choice, spec_feeds=spec_feeds):
            session = open_session(ctx.bundle, spec_name, choice.backend, choice.precision, **ctx.opts())
            ctx.cache[("concurrency", name, id(session))] = session
            feeds = spec_feeds.setdefault("f", session.spec.dummy_inputs(1, rng=0, **dims))
            return lambda: session.run(feeds)

        try:
            rows = harness.concurrency_sweep(make_client, list(cfg.concurrency), cfg.concurrency_requests)
        except Exception as e:  # noqa: BLE001
            out["skipped"][name] = f"failed: {type(e).__name__}: {e}"
            continue
        out["backends"][name] = rows
        for r in rows:
            say(f"  {name} x{r['clients']:2d}: {r['throughput_per_s']:.2f} req/s, median {r['median_ms']:.0f} ms")
    return out


def estimate_seconds(cfg: BenchConfig, per_call_s: dict[str, float] | None = None) -> float:
    """The planned bound: every cell's measured part capped at max_cell_seconds, its warm-up (about one round
    per warm-up call), and model loading (~15 s per backend and stage family on 2 cores). A cell whose
    ``min_runs`` rounds alone exceed the cap runs longer; each cell prints its own prediction after warm-up."""
    cells = plan_cells(cfg)
    bound = len(cells) * cfg.max_cell_seconds * (1 + cfg.warmup / max(cfg.min_runs, 1) * 0.5)
    served = 120.0 if SERVED in cfg.stages else 0.0  # the server's start and both detectors' waves
    return bound + 15 * len(cfg.backends) * len(set(c["stage"] for c in cells)) + served


def run_suite(cfg: BenchConfig, say: Callable[[str], None] | None = None) -> dict:
    say = say or (lambda m: print(m, file=sys.stderr, flush=True))
    cfg.check()
    placement = cfg.placement()
    bundle = Bundle.load(cfg.models)
    # every triton session (single graphs, detector, captioner, pipeline) gets the url as a session option;
    # every onnx session the device's providers (the other backends ignore options they do not know)
    session_opts = {"url": cfg.triton_url} if cfg.triton_url else {}
    if "onnx_providers" in placement:
        session_opts["providers"] = placement["onnx_providers"]
    threads = cfg.threads or usable_cores()
    try:
        import torch

        torch.set_num_threads(threads)  # the eager reference gets the same cores as ONNX Runtime
    except ImportError:
        pass
    left, right, lp, rp = _read_pair(cfg)
    ctx = context.Context(bundle, left, right, lp, rp, threads=threads, max_new_tokens=cfg.max_new_tokens,
                         session_opts=session_opts, caption_device=placement.get("torch_device"),
                         real_sets=tuple(cfg.real_sets), real_data=Path(cfg.real_data))
    cells = plan_cells(cfg)
    say(f"bench: {len(cells)} cells x {len(cfg.backends)} backends; runs {cfg.runs}, warm-up {cfg.warmup}, "
        f"{threads} threads; at most ~{estimate_seconds(cfg) / 60:.0f} min (cells capped at "
        f"{cfg.max_cell_seconds:.0f} s measured)")
    started = time.perf_counter()
    results = _header(cfg, bundle, threads, placement)
    if cfg.peak_flops:
        say("measuring peak fp32 FLOP/s (large matrix products) ...")
        results["peak"] = measure_peak_flops()
        say(f"  peak ~{results['peak']['gflops']:.0f} GFLOP/s ({results['peak']['method']})")
    if cfg.cli_runs:
        from imgdiff_rt.bench.cli_latency import measure_cli_latency

        say(f"CLI latency: {cfg.cli_runs} alternated runs of each command ...")
        results["cli_latency"] = measure_cli_latency(lp, rp, runs=cfg.cli_runs, say=say)
    if cfg.classical_runs:
        results["classical"] = _classical(cfg, lp, rp, say)
    with harness.MemorySampler() as sampler:
        try:
            for i, cell in enumerate(cells, 1):
                say(f"[{i}/{len(cells)}] {cell['key']} ({time.perf_counter() - started:.0f} s elapsed)")
                results["cells"].append(_measure_cell(cfg, ctx, cell, say, sampler))
                _finish(results, Path(cfg.out), started, plots=False)  # a stopped run keeps what it measured
            if "triton" in cfg.backends or cfg.concurrency_backends != ("triton",):
                say("concurrency sweep ...")
                results["concurrency"] = _concurrency(cfg, ctx, say)
        finally:
            ctx.close()
    if SERVED in cfg.stages:
        from imgdiff_rt.bench.served import served_section

        results["served"] = served_section(bundle.root, lp, rp, cfg.served_clients, cfg.served_requests, say=say)
    _finish(results, Path(cfg.out), started, plots=cfg.plots)
    say(f"bench: done in {results['wall_seconds']:.0f} s -> {cfg.out}/report.md")
    return results


def _header(cfg: BenchConfig, bundle: Bundle, threads: int, placement: dict) -> dict:
    weights = {s: bundle.weights_label(s) for s in ("segmenter", "clip_image", "blip_vision")}
    return {"schema": "imgdiff-rt/bench/v1", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "config": {k: v for k, v in asdict(cfg).items() if k != "extra"}, "threads": threads,
            "device": placement, "machine": machine_info(), "bundle": {"path": str(bundle.root), "weights": weights},
            "cells": [], "ratios": {}, "ratios_by_cell": {}}


def _classical(cfg: BenchConfig, lp: Path, rp: Path, say) -> dict:
    import tempfile

    from imgdiff_rt.bench.peers import gather_pairs, measure_classical

    say(f"classical: imgdiff-rt vs odiff and pixelmatch, {cfg.classical_runs} alternated rounds per pair ...")
    with tempfile.TemporaryDirectory(prefix="imgdiff-rt-classical-") as scratch:
        pairs = gather_pairs(Path(scratch), Path(cfg.real_data), (Path(lp), Path(rp)))
        return measure_classical(pairs, cfg.classical_runs, say)


def _finish(results: dict, out: Path, started: float, plots: bool) -> None:
    """Ratios, targets and the output files from the cells measured so far."""
    from imgdiff_rt.bench.report import write_outputs

    results["ratios"], results["ratios_by_cell"] = {}, {}
    for row in results["cells"]:
        for name, entry in row["backends"].items():
            if "speedup_vs_torch" in entry:
                results["ratios_by_cell"].setdefault(row["key"], {})[name] = entry["speedup_vs_torch"]["median"]
                results["ratios"].setdefault(row["stage"], {}).setdefault(name, entry["speedup_vs_torch"]["median"])
    planned = set(results["config"]["stages"])  # a target of a stage this run did not plan is not listed
    results["targets"] = [_target(results, *t) for t in TARGETS if t[0] in planned]
    results["wall_seconds"] = round(time.perf_counter() - started, 1)
    results["outputs"] = write_outputs(results, out, plots=plots)


def _target(results: dict, stage: str, backend: str, minimum: float) -> dict:
    found = results["ratios"].get(stage, {}).get(backend)
    status = "not measured" if found is None else ("met" if found >= minimum else "missed")
    out = {"stage": stage, "backend": backend, "target": minimum, "measured": found, "status": status}
    entry = next((c["backends"].get(backend) for c in results["cells"] if c["stage"] == stage), None) or {}
    same = entry.get("same_regions")
    if same is not None:  # the real-pair cells: a speed-up that drops or moves kept regions does not count
        out["same_regions"] = f"{same['pairs_same']}/{same['pairs']}"
        if status == "met" and stage.startswith("detect") and same["pairs_same"] < same["pairs"]:
            within = same.get("pairs_within_px")
            out["status"] = "missed (kept regions differ" + (
                f"; {within}/{same['pairs']} within {same['within_px']} px)" if within is not None else ")")
    return out
