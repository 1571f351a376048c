"""The served cell's pure parts: overhead against the target, the side-by-side table, the report's section and
skip line, the soak (on plain callables) and its memory sampling (a fake /proc tree and this process), and how
the suite selects the cell and says why it is skipped. No server is started here."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from imgdiff_rt.bench import served, suite
from imgdiff_rt.bench.report import render_markdown
from imgdiff_rt.errors import ServerEnvError, UsageError


def _row(detector, path, clients, p50, p95=None, pairs_per_s=1.0, errors=0):
    return {"detector": detector, "path": path, "clients": clients, "pairs": 4, "errors": errors,
            "first_error": [], "p50_ms": p50, "p95_ms": p95 or p50 + 10, "pairs_per_s": pairs_per_s}


ROWS = [_row("pixel", "in-process", 1, 100.0), _row("pixel", "served", 1, 112.0),
        _row("pixel", "in-process", 4, 300.0), _row("pixel", "served", 4, 330.0, errors=1),
        _row("hybrid", "in-process", 1, 200.0), _row("hybrid", "served", 1, 230.0)]


def test_overhead_is_judged_against_ten_percent_plus_five_ms():
    rows = served.overhead(ROWS)
    assert [r["detector"] for r in rows] == ["pixel", "hybrid"]  # 1-client rows only
    pixel, hybrid = rows
    assert pixel["overhead_ms"] == 12.0 and pixel["allowed_ms"] == 15.0 and pixel["within"]
    assert hybrid["overhead_ms"] == 30.0 and hybrid["allowed_ms"] == 25.0 and not hybrid["within"]
    assert served.overhead([_row("pixel", "served", 4, 1.0)]) == []  # no 1-client pair: no row
    lines = served.overhead_lines(rows)
    assert lines[0].endswith("**within**") and "+12.0 ms; allowed 15.0 ms" in lines[0]
    assert lines[1].endswith("**over**")


def test_markdown_puts_both_paths_and_their_ratio_side_by_side():
    table = served.markdown(ROWS).splitlines()
    assert table[0].startswith("| detector | clients | in-process p50 / p95 | served p50 / p95 | served / in-process")
    assert len(table) == 2 + 3  # one line per (detector, clients)
    assert table[2] == "| pixel | 1 | 100 / 110 ms | 112 / 122 ms | 1.12x | 1.0 | 1.0 | 0 |"
    assert table[3].endswith("| 1.10x | 1.0 | 1.0 | 1 |")  # errors of both paths
    lone = served.markdown([_row("pixel", "served", 8, 50.0)]).splitlines()[2]
    assert lone == "| pixel | 8 | - | 50 / 60 ms | - | - | 1.0 | 0 |"


def _results(**extra) -> dict:
    return {"created": "2025-01-01T00:00:00", "threads": 2, "cells": [], "targets": [],
            "machine": {"cpu": "test cpu", "usable_cores": 2, "memory_gib": 4, "gpu": None, "libraries": {}},
            "bundle": {"weights": {"segmenter": "tiny"}},
            "config": {"warmup": 1, "runs": 3, "max_cell_seconds": 90.0}, **extra}


def test_report_shows_the_served_rows_and_the_overhead():
    section = {"request": "`imgdiff_pipeline` over gRPC", "rows": ROWS, "overhead": served.overhead(ROWS),
               "server_start_s": 21.5}
    text = render_markdown(_results(served=section))
    assert "Served pipeline (`imgdiff_pipeline` over gRPC; server started in 21.5 s):" in text
    assert "| hybrid | 1 | 200 / 210 ms | 230 / 240 ms | 1.15x |" in text
    assert f"Overhead at 1 client (target: {served.TARGET}):" in text
    assert "- hybrid: served 230.0 ms vs in-process 200.0 ms (+30.0 ms; allowed 25.0 ms): **over**" in text
    assert "Skipped" not in text


def test_report_lists_a_skipped_served_cell_with_its_reason():
    text = render_markdown(_results(served={"request": "x", "skipped": "no Triton server environment: offline"}))
    assert "- served pipeline (served cell): no Triton server environment: offline" in text
    assert "Served pipeline (" not in text
    assert served.render_served({"skipped": "why"}) == [] and served.render_served(None) == []


# ---- the soak --------------------------------------------------------------------------------------------------
def _proc(root: Path, pid: int, ppid: int, rss_kb: int | None, name: str = "x") -> None:
    d = root / str(pid)
    d.mkdir()
    (d / "stat").write_text(f"{pid} ({name}) S {ppid} {pid} {pid} 0 -1\n")
    (d / "status").write_text(f"Name:\t{name}\n" + (f"VmRSS:\t{rss_kb} kB\n" if rss_kb is not None else ""))


def test_tree_rss_sums_a_process_and_everything_below_it(tmp_path):
    _proc(tmp_path, 1, 0, 5000, "init")
    _proc(tmp_path, 10, 1, 1000, "tritonserver")
    _proc(tmp_path, 11, 10, 500, "pipeline_0_0")
    _proc(tmp_path, 12, 11, 250, "grandchild")
    _proc(tmp_path, 13, 10, 100, "odd) name (S 1")  # the command name may hold ")" and spaces
    _proc(tmp_path, 14, 10, None, "kthread")  # no VmRSS: counts 0
    _proc(tmp_path, 20, 1, 9999, "other")  # a sibling: not counted
    (tmp_path / "15").mkdir()  # exited during the scan: no files
    (tmp_path / "self").mkdir()
    assert served.tree_rss_bytes(10, tmp_path) == (1000 + 500 + 250 + 100) * 1024
    assert served.tree_rss_bytes(11, tmp_path) == 750 * 1024
    assert served.tree_rss_bytes(999, tmp_path) == 0  # gone


def test_tree_rss_of_this_process_counts_its_child():
    own = served.tree_rss_bytes(os.getpid())
    assert own > 10 * 2**20
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        deadline = time.monotonic() + 10
        while served.tree_rss_bytes(child.pid) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        with_child = served.tree_rss_bytes(os.getpid())
        assert with_child >= own + served.tree_rss_bytes(child.pid) // 2 > own
    finally:
        child.kill()
        child.wait()


def test_memory_summary():
    mb = 2**20
    out = served.memory_summary([(0.0, 100 * mb), (5.0, 130 * mb), (10.0, 110 * mb)])
    assert (out["start_mb"], out["end_mb"], out["max_mb"], out["growth_mb"], out["growth_pct"]) == \
        (100.0, 110.0, 130.0, 10.0, 10.0)
    assert out["samples"] == [[0.0, 100.0], [5.0, 130.0], [10.0, 110.0]]
    assert served.memory_summary([]) == {}


class _FakePipeline:
    """Pipeline's interface: every fifth call fails, the others take 1 ms."""

    def __init__(self, fail_every: int = 5):
        self.calls, self.fail_every, self.closed = 0, fail_every, False

    def open(self):
        return self

    def close(self):
        self.closed = True

    def __call__(self, left, right):
        self.calls += 1
        if self.fail_every and self.calls % self.fail_every == 0:
            raise RuntimeError("stub died")
        time.sleep(0.001)


def test_soak_runs_for_its_seconds_counting_errors_and_sampling_memory():
    made: list[_FakePipeline] = []
    counter = iter(range(1, 10_000))

    def make():
        made.append(_FakePipeline())
        return made[-1]

    row = served.soak(make, Path("l"), Path("r"), clients=2, seconds=0.4,
                      memory=lambda: next(counter) * 2**20, sample_every=0.1)
    assert len(made) == 2 and all(p.closed for p in made)
    assert 0.35 <= row["seconds"] < 1.5 and row["clients"] == 2
    assert row["pairs"] > 20 and row["errors"] >= row["pairs"] // 5 - 2
    assert row["first_error"] == ["RuntimeError: stub died"]
    mem = row["memory"]
    assert len(mem["samples"]) >= 4 and mem["start_mb"] == 1.0 and mem["end_mb"] == mem["max_mb"] > 1.0
    assert row["p50_ms"] >= 1.0 and row["pairs_per_s"] > 0


def test_served_cells_time_both_paths_per_detector_and_client_count(monkeypatch):
    monkeypatch.setattr(served, "Pipeline", lambda **kw: _FakePipeline(fail_every=0))
    monkeypatch.setattr(served, "ServedPipeline", lambda options, url, protocol: _FakePipeline(fail_every=0))
    rows = served.served_cells(Path("b"), "127.0.0.1:1", Path("l"), Path("r"), clients=(1, 2), requests=3)
    assert [(r["detector"], r["path"], r["clients"]) for r in rows] == [
        (d, p, n) for d in ("pixel", "hybrid") for n in (1, 2) for p in ("in-process", "served")]
    assert [r["pairs"] for r in rows] == [3, 3, 6, 6] * 2 and all(r["errors"] == 0 for r in rows)
    assert len(served.overhead(rows)) == 2


# ---- selection and skip reasons --------------------------------------------------------------------------------
def test_served_is_opt_in_and_selected_by_name():
    assert suite.SERVED not in suite.DEFAULT_STAGES and suite.SERVED not in suite.BenchConfig("m").stages
    only = suite.BenchConfig("m", stages=(suite.SERVED,)).check()
    assert suite.plan_cells(only) == []  # one section, not a per-backend cell
    both = suite.BenchConfig("m", stages=("clip", suite.SERVED)).check()
    assert [c["key"] for c in suite.plan_cells(both)] == ["clip/b1"]
    without = suite.BenchConfig("m", stages=("clip",))
    assert suite.estimate_seconds(both) > suite.estimate_seconds(without)
    with pytest.raises(UsageError, match="served"):
        suite.BenchConfig("m", stages=("nope",)).check()  # the message lists served among the stages
    for bad in ({"served_clients": (0,)}, {"served_clients": ()}, {"served_requests": 0}):
        with pytest.raises(UsageError):
            suite.BenchConfig("m", stages=(suite.SERVED,), **bad).check()


def test_dry_run_lists_the_served_cell(tmp_path):
    import json

    from click.testing import CliRunner

    from imgdiff_rt.cli.main import cli

    result = CliRunner().invoke(cli, ["bench", "--models", str(tmp_path), "--stages", "clip,served",
                                      "--served-clients", "1,2", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout[result.stdout.index("{"):])["cells"] == ["clip/b1", "served"]


class _Bundle:
    def __init__(self, *graphs):
        self.graphs = graphs

    def has_graph(self, name):
        return name in self.graphs


def test_skip_reasons_name_what_is_missing(tmp_path, monkeypatch):
    assert "no model bundle at" in served.skip_reason(tmp_path / "absent")
    assert served.skip_reason(_Bundle("clip_image")) == \
        "the bundle has no segmenter graph (the served repository needs both)"
    monkeypatch.setattr("imgdiff_rt.bench.stages.backend_unavailable", lambda name: f"no {name} client")
    assert served.skip_reason(_Bundle("segmenter", "clip_image")) == "no triton client"


def test_served_section_skips_with_the_reason_and_starts_nothing(monkeypatch):
    said: list[str] = []
    monkeypatch.setattr(served, "skip_reason", lambda bundle: "the bundle has no segmenter graph")
    monkeypatch.setattr(served, "running_server", lambda *a, **k: pytest.fail("no server for a skipped cell"))
    out = served.served_section(Path("b"), Path("l"), Path("r"), clients=(1,), requests=2, say=said.append)
    assert out["skipped"] == "the bundle has no segmenter graph" and "rows" not in out
    assert out["clients"] == [1] and out["requests_per_client"] == 2 and out["target"] == served.TARGET
    assert said == ["  served: skipped - the bundle has no segmenter graph"]


def test_served_section_skips_when_the_server_environment_cannot_be_built(monkeypatch):
    def no_env(*a, **k):
        raise ServerEnvError("pip install nvidia-pytriton failed: no index")

    monkeypatch.setattr(served, "skip_reason", lambda bundle: None)
    monkeypatch.setattr("imgdiff_rt.triton.server.ensure_server_env", no_env)
    out = served.served_section(Path("b"), Path("l"), Path("r"), clients=(1,), requests=1)
    assert out["skipped"] == "no Triton server environment: pip install nvidia-pytriton failed: no index"
    assert "wall_s" in out and "rows" not in out
