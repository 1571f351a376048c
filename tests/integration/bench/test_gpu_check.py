"""benchmarks/gpu_check.sh and its Python script: runnable here without a GPU. The CPU mode runs every model
and variant path the GPU run takes (tiny configs, torch.compile off); the shell script refuses to measure
without CUDA and says how to check the script instead. Not a GPU measurement: no figures are asserted."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from helpers import ROOT



def _load_script():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gpu_check", module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_cpu_mode_runs_every_model_and_prints_one_table(tmp_path, capsys):
    script = _load_script()
    out = tmp_path / "rows.json"
    script.main(["--device", "cpu", "--tiny", "--iters", "1", "--warmup", "0", "--no-compile", "--crops", "2",
                 "--captions", "2", "--max-new-tokens", "3", "--json", str(out)])
    rows = json.loads(out.read_text())["rows"]
    models = {r["model"].split(" @")[0] for r in rows}
    assert {"CLIP image tower", "BLIP vision tower", "BLIP generation"} <= models
    assert any(m.startswith("segmenter") for m in models)
    ran = [r for r in rows if r["median_ms"] is not None]
    assert all(r["median_ms"] > 0 for r in ran)
    for model in models:  # eager fp32 ran for every model; compile rows say why they did not
        assert any(r["model"].startswith(model) and r["variant"] in ("eager fp32", "generate fp32") and
                   r["median_ms"] for r in rows)
    assert all("--no-compile" in r["note"] for r in rows if r["variant"].startswith("compile"))
    table = capsys.readouterr().out
    assert table.count("\n| ") == len(rows) + 1 and "| model | variant |" in table


def test_budget_spent_means_rows_that_say_so(tmp_path):
    script = _load_script()
    args = script.parse_args(["--device", "cpu", "--tiny", "--iters", "1", "--warmup", "0", "--budget-s", "0",
                              "--crops", "1", "--captions", "1", "--max-new-tokens", "2"])
    rows = script.run_checks(args)["rows"]
    skipped = [r for r in rows if r["median_ms"] is None]
    assert skipped and all("time budget spent" in r["note"] for r in skipped)


def test_shell_script_refuses_without_cuda(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present: the script would measure")
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(tmp_path / "out")}
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh")], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 3 and "no CUDA GPU" in proc.stderr and "--device cpu" in proc.stderr
