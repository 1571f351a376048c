"""The Ray engine of a batch: Ray Data holds the pairs still to do, a pool of actors (each holding one opened
:class:`Pipeline`, or a Triton client with the triton backend) maps over them, and the driver keeps every
finished record through the same :class:`~imgdiff_rt.batch.store.BatchStore` as the local loop.

Who writes what: an actor writes a pair's pictures and its record file (so work survives the driver), the
driver appends the results line when the record comes back. Ray restarts a dead actor and retries its task
(Ray Data's defaults for actor pools), so a pair whose actor died is computed again; its files are replaced
atomically and the driver sees each pair's output once, so no pair is lost or listed twice.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Callable

from ..errors import UsageError
from ..pairs import PairItem
from ..pipeline import Pipeline
from . import ray_watchdog
from .jobs import process_item
from .store import write_record

ROW = "pair"  # one JSON column: batch formats turn a missing string into NaN, JSON keeps the item exact


def _import_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise UsageError("engine 'ray' needs Ray: pip install 'imgdiff-rt[ray]'") from None
    return ray


class PairWorker:
    """One Ray actor: opens its pipeline once and processes batches of pairs."""

    def __init__(self, pipeline: Pipeline, job, out_dir: str, records_subdir: str) -> None:
        self.pipeline = pipeline.open()
        self.job, self.out_dir = job, Path(out_dir)
        self.records_dir = self.out_dir / records_subdir

    def __call__(self, batch: dict) -> dict:
        ids, records = [], []
        for row in batch[ROW]:
            item = PairItem.from_row(json.loads(str(row)))
            record = process_item(self.job, self.pipeline, item, self.out_dir)
            write_record(self.records_dir, item, record)
            ids.append(item.id)
            records.append(json.dumps(record, ensure_ascii=False))
        return {"id": ids, "record": records}


def _start(ray, address: str | None, workers: int | None):
    """Join ``address``, or start a local cluster on this machine's cores. Returns the watchdog of a cluster we
    started (it reaps the cluster however the driver ends; see :mod:`.ray_watchdog`), else None."""
    if ray.is_initialized():
        return None
    quiet = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
    if address is None:
        ray.init(num_cpus=max(os.cpu_count() or 1, workers or 1), **quiet)
        from ray._private import worker as ray_worker  # the session folder is only known to the node object

        return ray_watchdog.start(ray_worker._global_node.get_session_dir_path())
    try:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise UsageError(f"cannot join the Ray cluster at {address}: {e}") from None
    return None


def run_ray(pipeline: Pipeline, todo: list[PairItem], job, out_dir: Path, on_record: Callable,
            options) -> None:
    ray = _import_ray()
    if not todo:
        return
    watchdog = _start(ray, options.address, options.workers)
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # the batch shows its own progress
        ctx.print_on_execution_start = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)  # per-dataset INFO lines would bury ours
        workers = options.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        by_id = {item.id: item for item in todo}
        blocks = max(1, min(len(todo), (len(todo) + options.batch_size - 1) // options.batch_size))
        ds = ray.data.from_items([{ROW: json.dumps(item.to_row())} for item in todo], override_num_blocks=blocks)
        ds = ds.map_batches(PairWorker, batch_size=options.batch_size, num_cpus=1,
                            compute=ray.data.ActorPoolStrategy(size=workers),
                            fn_constructor_kwargs={"pipeline": pipeline, "job": job,
                                                   "out_dir": str(out_dir.resolve()),
                                                   "records_subdir": job.records_subdir})
        seen: set[str] = set()
        for row in ds.iter_rows():
            pair_id = row["id"]
            if pair_id in seen or pair_id not in by_id:
                continue  # a retried task's output: the pair is already kept
            seen.add(pair_id)
            on_record(by_id[pair_id], json.loads(row["record"]), True)
    finally:
        if watchdog is not None:
            ray.shutdown()
            ray_watchdog.stop(watchdog)
