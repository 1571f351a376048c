"""The Ray engine of a batch: a pool of actors (each holding one opened :class:`Pipeline`, or a Triton client with
the triton backend) takes the pairs still to do in tasks of ``batch_size`` pairs, and the driver keeps every
finished record through the same :class:`~imgdiff_rt.batch.store.BatchStore` as the local loop.

Who writes what: an actor writes a pair's pictures and its record file (so work survives the driver), the
driver appends the results line when the record comes back. Ray restarts a dead actor and retries its task
(``max_restarts`` / ``max_task_retries``), so a pair whose actor died is computed again; its files are replaced
atomically and the driver sees each pair's output once, so no pair is lost or listed twice. The actors'
constructor arguments travel inline with the creation task (a pipeline's configuration as JSON, a few hundred
bytes; each actor builds and opens its own pipeline from it): none sits in the object store where a restart could
find it gone, which is what Ray warns about for restartable actors.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from imgdiff_rt.config.build import pipeline_from_config
from imgdiff_rt.config.tree import PipelineConfig
from imgdiff_rt.errors import UsageError
from imgdiff_rt.pairs import PairItem
from imgdiff_rt.pipeline import Pipeline
from imgdiff_rt.batch import ray_watchdog
from imgdiff_rt.batch.jobs import process_item
from imgdiff_rt.batch.store import write_record

_AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"
START_UP_NOTE_SHARE = 0.5  # start-up above this share of a batch's time is worth a note


def _import_ray():
    try:
        import ray
    except ImportError:
        raise UsageError("engine 'ray' needs Ray: pip install 'imgdiff-rt[ray]'") from None
    return ray


def _shipped(pipeline) -> dict | object:
    """What an actor receives to build its pipeline: the configuration (a JSON-able dict), or a served
    pipeline's client as it is (a URL and a request's options; it holds no session)."""
    config = getattr(pipeline, "config", None)
    return {"config": config.to_dict()} if config is not None else pipeline


def _built(shipped: dict | object):
    if isinstance(shipped, dict):
        return pipeline_from_config(PipelineConfig.from_dict(shipped["config"]))
    return shipped


class PairWorker:
    """One Ray actor: builds and opens its pipeline once and processes lists of pairs (as ``PairItem.to_row``
    rows)."""

    def __init__(self, pipeline: dict | object, job, out_dir: str, records_subdir: str) -> None:
        self.pipeline = _built(pipeline).open()
        self.job, self.out_dir = job, Path(out_dir)
        self.records_dir = self.out_dir / records_subdir

    def run(self, rows: list[dict]) -> list[tuple[str, str]]:
        """(pair id, record as JSON) for each row, every record file written before the answer."""
        done = []
        for row in rows:
            item = PairItem.from_row(row)
            record = process_item(self.job, self.pipeline, item, self.out_dir)
            write_record(self.records_dir, item, record)
            done.append((item.id, json.dumps(record, ensure_ascii=False)))
        return done


@contextmanager
def _private_token():
    """A cluster this batch starts gets a fresh token of its own (Ray turns token authentication on for a new
    local cluster): nothing is written into the home folder, and Ray's line announcing the mode, which says
    nothing the user must act on, is not shown. A mode or token the user set is theirs and kept."""
    names = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")
    saved = {k: os.environ.get(k) for k in names}
    if all(v is None for v in saved.values()):
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    announcer = logging.getLogger(_AUTH_LOGGER)
    level = announcer.level
    announcer.setLevel(logging.ERROR)
    try:
        yield
    finally:
        announcer.setLevel(level)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


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


def _records(ray, pipeline: Pipeline, todo: list[PairItem], job, out_dir: Path, options):
    """(pair id, record JSON) as the actors finish them, each pair once."""
    from ray.util import ActorPool

    tasks = [[item.to_row() for item in todo[i:i + options.batch_size]]
             for i in range(0, len(todo), options.batch_size)]
    workers = min(len(tasks), options.workers or max(1, int(ray.cluster_resources().get("CPU", 1))))
    actor = ray.remote(num_cpus=1, max_restarts=-1, max_task_retries=-1)(PairWorker)
    args = (_shipped(pipeline), job, str(out_dir.resolve()), job.records_subdir)
    pool = ActorPool([actor.remote(*args) for _ in range(workers)])
    seen: set[str] = set()
    for done in pool.map_unordered(lambda a, rows: a.run.remote(rows), tasks):
        for pair_id, record in done:
            if pair_id not in seen:  # a retried task's output: the pair is already kept
                seen.add(pair_id)
                yield pair_id, record


def run_ray(pipeline: Pipeline, todo: list[PairItem], job, out_dir: Path, on_record: Callable,
            options) -> str | None:
    """Every pair of ``todo`` through the actors; returns a note when start-up took most of the time."""
    ray = _import_ray()
    if not todo:
        return None
    t0 = time.monotonic()
    first: float | None = None
    with _private_token():
        watchdog = _start(ray, options.address, options.workers)
        try:
            by_id = {item.id: item for item in todo}
            for pair_id, record in _records(ray, pipeline, todo, job, out_dir, options):
                first = first or time.monotonic()
                on_record(by_id[pair_id], json.loads(record), True)
        finally:
            if watchdog is not None:
                ray.shutdown()
                ray_watchdog.stop(watchdog)
    if first is None or options.progress == "quiet":
        return None
    return start_up_note(first - t0, time.monotonic() - t0)


def start_up_note(start_s: float, total_s: float) -> str | None:
    """A line when starting Ray (cluster, actors, opened pipelines: until the first record) took most of the
    batch, so a short batch's slowness is not taken for Ray's speed."""
    if total_s <= 0 or start_s / total_s < START_UP_NOTE_SHARE:
        return None
    return (f"note: Ray start-up took {start_s:.1f} s of {total_s:.1f} s; for a batch this short the local engine "
            "is faster, Ray pays off on long batches or on a cluster already running")
