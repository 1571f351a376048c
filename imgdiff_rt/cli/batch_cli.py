"""The batch options shared by `run --pairs` and `eval` (engine, resume, progress), and the one way both run a
batch: errors of the whole batch as one line, an interrupt as "interrupted: N of M done"."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any, Callable

import click

from imgdiff_rt.batch import ENGINES, BatchInterrupted, BatchOptions, BatchSummary, EvalJob, RunJob, run_batch
from imgdiff_rt.batch.runner import DEFAULT_RAY_BATCH_SIZE
from imgdiff_rt.batch.store import record_status
from imgdiff_rt.errors import OutputError, SettingsMismatchError, UsageError
from imgdiff_rt.pairs import PairItem
from imgdiff_rt.pipeline import Pipeline

INTERRUPTED_EXIT = 130  # the shell's code for a command ended by Ctrl-C
MAX_FAILURES_SHOWN = 5  # failed pairs named under the summary line; the results file has them all


def batch_options(f: Callable) -> Callable:
    opts = [
        click.option("--engine", type=click.Choice(ENGINES), default="local", show_default=True,
                     help="Batch engine: this process, or a pool of Ray actors (pip install 'imgdiff-rt[ray]')."),
        click.option("--address", default=None, metavar="auto|ray://HOST:PORT",
                     help="--engine ray: join this cluster [default: start a local one on this machine's cores, "
                          "stopped at the end]."),
        click.option("--workers", type=int, default=None,
                     help="--engine ray: actors, each holding one opened pipeline [default: the cluster's CPUs]."),
        click.option("--batch-size", type=int, default=DEFAULT_RAY_BATCH_SIZE, show_default=True,
                     help="--engine ray: pairs per task."),
        click.option("--parquet", is_flag=True, help="Batch: also write the results as Parquet beside the JSONL."),
        click.option("--redo", is_flag=True, help="Batch: recompute every pair, even those already done in --out."),
        click.option("--force", is_flag=True,
                     help="Batch: resume in an --out made with other settings (keeps its finished pairs)."),
        click.option("--quiet", "-q", is_flag=True, help="Batch: no progress on stderr."),
    ]
    for opt in reversed(opts):
        f = opt(f)

    @functools.wraps(f)
    def wrapper(**kwargs: Any) -> Any:
        quiet = kwargs.pop("quiet")
        kwargs["batch"] = BatchOptions(
            redo=kwargs.pop("redo"), force=kwargs.pop("force"), parquet=kwargs.pop("parquet"),
            progress="quiet" if quiet else "auto", engine=kwargs.pop("engine"), address=kwargs.pop("address"),
            workers=kwargs.pop("workers"), batch_size=kwargs.pop("batch_size"))
        return f(**kwargs)

    return wrapper


def is_default(batch: BatchOptions) -> bool:
    """True when no batch option was given (they mean nothing for a single pair)."""
    return batch == BatchOptions() or batch == BatchOptions(progress="quiet")


def check_not_an_input_folder(out_dir: Path, items: list[PairItem]) -> None:
    """A batch writes <id>.png and <id>.json: never into a folder that holds the batch's own inputs."""
    try:
        target = out_dir.resolve()
    except OSError:
        return
    for item in items:
        for p in (item.left, item.right, item.truth):
            if p is not None and p.parent.resolve() == target:
                raise OutputError(f"{out_dir}: output folder holds input images of the batch ({p.name}); "
                                  "choose another output folder")


def execute(pipeline: Pipeline, items: list[PairItem], job: RunJob | EvalJob, out_dir: Path | None,
            batch: BatchOptions) -> tuple[BatchSummary, dict]:
    if out_dir is not None:
        check_not_an_input_folder(out_dir, items)
    if out_dir is None and (batch.redo or batch.force or batch.parquet):
        raise UsageError("--redo, --force and --parquet need --out DIR")
    try:
        return run_batch(pipeline, items, job, out_dir, batch, warn=lambda line: click.echo(line, err=True))
    except BatchInterrupted as e:
        click.echo(str(e), err=True)
        sys.exit(INTERRUPTED_EXIT)
    except SettingsMismatchError as e:
        raise UsageError(f"{e.folder} holds pairs made with other settings ({e.difference}); use the same "
                         "settings, or --redo to recompute every pair, or --force to keep the finished pairs and "
                         "go on with the new settings") from None


def failure_lines(items: list[PairItem], records: dict, limit: int = MAX_FAILURES_SHOWN) -> list[str]:
    """``failed: ID: ERROR`` for the first ``limit`` failed pairs in the batch's order, then how many more."""
    failed = [(it.id, records[it.id]) for it in items
              if isinstance(records.get(it.id), dict) and record_status(records[it.id]) == "failed"]
    lines = [f"failed: {pair_id}: " + str(record.get("error")).replace("\n", "\\n")  # one line per pair
             for pair_id, record in failed[:limit]]
    if len(failed) > limit:
        lines.append(f"... and {len(failed) - limit} more failed (see the results file)")
    return lines
