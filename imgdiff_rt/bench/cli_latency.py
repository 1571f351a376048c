"""Process-level CLI latency: the wall time a user waits for `imgdiff-rt --help` and for `imgdiff-rt run` on the
pixel detector (no model bundle), each a fresh interpreter, timed from spawn to exit. Start-up (imports) is most
of it, which is why this is measured as a process and never inside one.

The commands alternate round by round, so a neighbouring job's burst hits both alike; the figure is the median.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from imgdiff_rt.bench.stats import summarize

#: the issue's targets: command -> median wall seconds
CLI_TARGETS_S = {"help": 0.3, "run-pixel": 0.5}
DEFAULT_RUNS = 10


def cli_argv() -> list[str]:
    """How a user starts the CLI: the installed console script beside this interpreter, else the same entry
    point through ``python -c``."""
    script = Path(sys.executable).with_name("imgdiff-rt")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-c", "import sys; from imgdiff_rt.cli.main import cli; sys.argv[0] = 'imgdiff-rt'; "
                                  "sys.exit(cli())"]


def _commands(left: Path, right: Path, out: Path) -> dict[str, list[str]]:
    return {"help": ["--help"], "python-start": [],
            "run-pixel": ["run", str(left), str(right), "--json", str(out / "result.json")]}


def _time_once(argv: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=300)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: "
                           f"{proc.stderr.decode(errors='replace')[-500:]}")
    return elapsed * 1e3


def measure_cli_latency(left: str | Path, right: str | Path, runs: int = DEFAULT_RUNS, warmup: int = 1,
                        say: Callable[[str], None] | None = None) -> dict:
    """Median (and the rest of ``summarize``) wall ms of each command over ``runs`` alternated rounds, plus a
    bare ``python -c pass`` as the floor, and each target's status. ``IMGDIFF_RT_HOME`` points at an empty
    folder so `run` finds no bundle and uses the pixel detector, as on a fresh install."""
    say = say or (lambda m: None)
    rows: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="imgdiff-rt-cli-bench-") as home:
        env = {**os.environ, "IMGDIFF_RT_HOME": home}
        commands = _commands(Path(left).resolve(), Path(right).resolve(), Path(home))
        argvs = {name: ([sys.executable, "-c", "pass"] if name == "python-start" else cli_argv() + args)
                 for name, args in commands.items()}
        for _ in range(warmup):  # fills the OS file cache and Python's bytecode cache, as a second run would
            for argv in argvs.values():
                _time_once(argv, env)
        for _ in range(runs):
            for name, argv in argvs.items():
                rows.setdefault(name, []).append(_time_once(argv, env))
    out = {"runs": runs, "argv_prefix": cli_argv(), "commands": {}}
    for name, times in rows.items():
        entry = {**summarize(times), "times_ms": [round(t, 2) for t in times]}
        if name in CLI_TARGETS_S:
            target_ms = CLI_TARGETS_S[name] * 1e3
            entry["target_ms"] = target_ms
            entry["status"] = "met" if entry["median_ms"] <= target_ms else "missed"
        out["commands"][name] = entry
        say(f"  cli {name:12s} median {entry['median_ms']:7.0f} ms  min {entry['min_ms']:7.0f} ms"
            + (f"  (target {entry['target_ms']:.0f} ms: {entry['status']})" if "status" in entry else ""))
    return out


def render_cli_latency(section: dict | None) -> list[str]:
    """The report's lines for the section (nothing when it was not measured)."""
    if not section:
        return []
    lines = ["", f"#### CLI latency (process wall time, median of {section['runs']} alternated runs)", "",
             "| command | median ms | min ms | p95 ms | target | status |", "|---|---:|---:|---:|---:|---|"]
    labels = {"help": "`imgdiff-rt --help`", "run-pixel": "`imgdiff-rt run` (pixel detector, no bundle)",
              "python-start": "`python -c pass` (floor)"}
    for name, e in section["commands"].items():
        target = f"<= {e['target_ms']:.0f} ms" if "target_ms" in e else ""
        lines.append(f"| {labels.get(name, name)} | {e['median_ms']:.0f} | {e['min_ms']:.0f} | {e['p95_ms']:.0f} "
                     f"| {target} | {e.get('status', '')} |")
    return lines + [""]
