"""`--engine ray` on a local two-CPU Ray cluster (one cluster for the module: starting Ray takes ~10 s).

Same records as the local batch on a mixed batch; resume after the driver is killed; an actor killed mid-batch
loses no pair and duplicates none."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

ray = pytest.importorskip("ray")

import ray_helpers  # noqa: E402
from helpers import TESTS_DIR  # noqa: E402
from imgdiff_rt.batch import BatchOptions, RunJob, run_batch  # noqa: E402
from imgdiff_rt.cli.main import cli  # noqa: E402
from imgdiff_rt.pairs import load_pairs  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    ray.cloudpickle.register_pickle_by_value(ray_helpers)  # actors cannot import the tests folder
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_same_records_as_the_local_batch_with_bad_pairs(cluster, tmp_path):
    pairs = ray_helpers.mixed_pairs(tmp_path / "src")
    local = CliRunner().invoke(cli, ["run", "--pairs", str(pairs), "--out", str(tmp_path / "local")])
    on_ray = CliRunner().invoke(cli, ["run", "--pairs", str(pairs), "--out", str(tmp_path / "ray"),
                                      "--engine", "ray", "--workers", "2", "--batch-size", "2"])
    assert local.exit_code == on_ray.exit_code == 1  # bad pairs fail, the batch goes on
    summary = "9 pairs: 6 done, 0 already done, 3 failed"
    assert summary in local.output and summary in on_ray.output
    a, b = lines(tmp_path / "local" / "results.jsonl"), lines(tmp_path / "ray" / "results.jsonl")
    assert [r["id"] for r in a] == [r["id"] for r in b] and len(a) == 9
    assert [ray_helpers.comparable(r) for r in a] == [ray_helpers.comparable(r) for r in b]
    assert sum("error" in r for r in b) == 3 and all(r["regions"] for r in b if "error" not in r)
    pictures = sorted(p.name for p in (tmp_path / "ray").glob("*.png"))
    assert pictures == sorted(p.name for p in (tmp_path / "local").glob("*.png"))
    assert {f"good-{k}.png" for k in range(6)} <= set(pictures)


def test_eval_on_ray_scores_like_the_local_eval(cluster, tmp_path, shared_data):
    src = tmp_path / "levir"
    names = sorted(p.name for p in (shared_data / "levir-cd" / "label").iterdir())[:3]
    for sub in ("A", "B", "label"):
        (src / sub).mkdir(parents=True)
        for name in names:
            shutil.copy(shared_data / "levir-cd" / sub / name, src / sub / name)
    shutil.copy(shared_data / "levir-cd" / "A" / "test_113_0256.png", src / "A")  # no partner: fails
    local = CliRunner().invoke(cli, ["eval", "--pairs", str(src), "--out", str(tmp_path / "local")])
    on_ray = CliRunner().invoke(cli, ["eval", "--pairs", str(src), "--out", str(tmp_path / "ray"),
                                      "--engine", "ray", "--workers", "2"])
    assert local.exit_code == on_ray.exit_code == 0, on_ray.output
    scores = [line for line in local.stdout.splitlines() if not line.startswith("median ms")]
    assert scores == [line for line in on_ray.stdout.splitlines() if not line.startswith("median ms")]
    assert scores[0].endswith(", 1 failed")

    def without_time(rows):
        return [{k: v for k, v in r.items() if k != "ms"} for r in rows]

    assert without_time(lines(tmp_path / "local" / "eval.jsonl")) == without_time(lines(tmp_path / "ray" / "eval.jsonl"))


def _driver_script(pairs: Path, out: Path, pid_dir: Path, address: str) -> str:
    return f"""
import sys
sys.path.insert(0, {str(TESTS_DIR)!r})
import ray, ray_helpers
ray.init(address={address!r}, log_to_driver=False, logging_level="WARNING")
ray.cloudpickle.register_pickle_by_value(ray_helpers)
from pathlib import Path
from imgdiff_rt.batch import BatchOptions, RunJob, run_batch
from imgdiff_rt.pairs import load_pairs
pipeline = ray_helpers.SlowPipeline(0.4, {str(pid_dir)!r})
run_batch(pipeline, load_pairs({str(pairs)!r}), RunJob(), Path({str(out)!r}),
          BatchOptions(engine="ray", workers=2, batch_size=1, progress="quiet"))
"""


def _records(out: Path) -> list[Path]:
    return [p for p in out.glob("*.json") if not p.name.startswith(".")]


def _wait_for(predicate, timeout_s: float = 90.0) -> None:
    end = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError("timed out")
        time.sleep(0.1)


def test_resume_after_the_driver_is_killed(cluster, tmp_path):
    pairs = ray_helpers.mixed_pairs(tmp_path / "src", good=12)
    out, pid_dir = tmp_path / "out", tmp_path / "pids"
    pid_dir.mkdir()
    driver = subprocess.Popen([sys.executable, "-c", _driver_script(pairs, out, pid_dir, cluster)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: out.is_dir() and len([p for p in _records(out) if p.name.startswith("good")]) >= 3)
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    finished_before = len(_records(out))
    assert finished_before < 15  # killed mid-batch

    summary, _ = run_batch(ray_helpers.SlowPipeline(0.0, str(pid_dir)), load_pairs(pairs), RunJob(), out,
                           BatchOptions(engine="ray", workers=2, progress="quiet"))  # the same settings
    assert summary.skipped >= 3 and summary.skipped + summary.done == 12 and summary.failed == 3
    ids = [r["id"] for r in lines(out / "results.jsonl")]
    assert sorted(ids) == sorted(it.id for it in load_pairs(pairs)) and len(ids) == len(set(ids)) == 15


def test_an_actor_killed_mid_batch_loses_and_duplicates_nothing(cluster, tmp_path):
    pairs = ray_helpers.mixed_pairs(tmp_path / "src", good=12)
    out, pid_dir = tmp_path / "out", tmp_path / "pids"
    pid_dir.mkdir()
    killed = []

    def kill_one_actor():
        _wait_for(lambda: out.is_dir() and len(_records(out)) >= 3 and any(pid_dir.iterdir()))
        victim = int(next(pid_dir.iterdir()).name)
        killed.append((victim, len(_records(out))))
        os.kill(victim, signal.SIGKILL)

    killer = threading.Thread(target=kill_one_actor, daemon=True)
    killer.start()
    pipeline = ray_helpers.SlowPipeline(0.4, str(pid_dir))
    summary, records = run_batch(pipeline, load_pairs(pairs), RunJob(), out,
                                 BatchOptions(engine="ray", workers=2, batch_size=1, progress="quiet"))
    killer.join(timeout=5)
    assert killed and killed[0][1] < 15  # an actor died while pairs were still to do
    assert len(list(pid_dir.iterdir())) >= 3  # a new actor took the dead one's place
    assert (summary.done, summary.failed) == (12, 3)
    ids = [r["id"] for r in lines(out / "results.jsonl")]
    assert sorted(ids) == sorted(records) and len(ids) == len(set(ids)) == 15
