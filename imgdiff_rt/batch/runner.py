"""Running a batch: the resume split, progress, the chosen engine, and the final results file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from imgdiff_rt.errors import UsageError
from imgdiff_rt.pairs import PairItem
from imgdiff_rt.pipeline import Pipeline
from imgdiff_rt.batch.jobs import BatchSummary, EvalJob, RunJob, process_item
from imgdiff_rt.batch.progress import Progress
from imgdiff_rt.batch.store import BatchStore

ENGINES = ("local", "ray")
DEFAULT_RAY_BATCH_SIZE = 4  # pairs per Ray task: small, so a lost actor costs little work and progress is smooth


@dataclass
class BatchOptions:
    redo: bool = False  # recompute every pair, finished or not
    force: bool = False  # go on over a settings difference
    parquet: bool = False  # also write <results>.parquet
    progress: str = "auto"  # see progress.MODES
    engine: str = "local"
    address: str | None = None  # Ray: join this cluster ("auto", "ray://HOST:PORT"); None starts a local one
    workers: int | None = None  # Ray: actors in the pool [default: the cluster's CPUs]
    batch_size: int = DEFAULT_RAY_BATCH_SIZE

    def check(self) -> None:
        if self.engine not in ENGINES:
            raise UsageError(f"engine {self.engine!r} is not available; choose one of {', '.join(ENGINES)}")
        if self.engine != "ray" and (self.address is not None or self.workers is not None
                                     or self.batch_size != DEFAULT_RAY_BATCH_SIZE):
            raise UsageError("address, workers and batch size are for engine 'ray'")
        if self.workers is not None and self.workers < 1:
            raise UsageError("workers must be at least 1")
        if self.batch_size < 1:
            raise UsageError("batch size must be at least 1")


class BatchInterrupted(Exception):
    """Ctrl-C during a batch; everything finished so far is kept and a re-run resumes."""

    def __init__(self, finished: int, total: int) -> None:
        super().__init__(f"interrupted: {finished} of {total} done; rerun the same command to resume")
        self.finished, self.total = finished, total


OnRecord = Callable[[PairItem, "dict | list", bool], None]


def _run_local(pipeline: Pipeline, todo: list[PairItem], job: RunJob | EvalJob, out_dir: Path | None,
               on_record: OnRecord, options: BatchOptions) -> None:
    with pipeline:  # sessions open once for the whole batch
        for item in todo:
            on_record(item, process_item(job, pipeline, item, out_dir), False)


def run_batch(pipeline: Pipeline, items: list[PairItem], job: RunJob | EvalJob, out_dir: Path | None,
              options: BatchOptions | None = None,
              warn: Callable[[str], None] = lambda line: None) -> tuple[BatchSummary, dict[str, dict | list]]:
    """Process ``items``; returns the summary and every pair's record by id. ``out_dir`` None (eval only): in
    memory, no resume."""
    options = options or BatchOptions()
    options.check()
    if options.engine == "ray":
        from imgdiff_rt.batch.ray_engine import run_ray as engine
        if out_dir is None:
            raise UsageError("engine 'ray' needs an output folder (results stream to it)")
    else:
        engine = _run_local
    summary = BatchSummary(total=len(items))
    if out_dir is None:
        records: dict[str, dict | list] = {}
        _execute(engine, pipeline, items, items, job, None, None, records, summary, options)
        return summary, records
    with BatchStore(out_dir, job.results_name, options.parquet, job.records_subdir) as store:
        warning = store.check_settings(job.settings(pipeline), options.force, options.redo)
        if warning:
            warn(warning)
        records, todo = store.split(items, options.redo)
        summary.skipped = len(records)
        try:
            note = _execute(engine, pipeline, items, todo, job, store, out_dir, records, summary, options)
        except BaseException:
            store.finish(items, records, failing=True)
            raise
        store.finish(items, records)
    if note:
        warn(note)
    return summary, records


def _execute(engine, pipeline, items, todo, job, store, out_dir, records, summary, options) -> str | None:
    """Run the engine under the progress display; returns the engine's note on how it went (or None)."""
    with Progress(len(items), already=len(items) - len(todo), mode=options.progress) as progress:
        def on_record(item: PairItem, record: dict | list, written: bool) -> None:
            if store is not None:
                store.add(item, record, write=not written)
            records[item.id] = record
            summary.count(record)
            progress.advance()

        try:
            return engine(pipeline, todo, job, out_dir, on_record, options)
        except KeyboardInterrupt:
            raise BatchInterrupted(summary.finished, summary.total) from None
