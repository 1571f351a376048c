"""Batches under faults: ids that collide between good pairs, bad lines and fallback names; a disk that fills up
at every level of a batch's writes (a fault-injecting writer under files.py: each write may land partly, then
ENOSPC); `kill -9` at random points. After each, results.jsonl parses line by line, and a resume leaves every
pair listed once with its own record."""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from imgdiff_rt import files as files_module
from imgdiff_rt.cli.main import cli
from imgdiff_rt.errors import DiskFullError
from imgdiff_rt.pairs import load_pairs, safe_stem

from helpers import ROOT, save, textured


def make_pairs(root: Path, n: int, extra_lines: list[str] = (), size=(96, 128)) -> Path:
    """``n`` good pairs p0000.. (one change each) in a JSONL file, then ``extra_lines`` verbatim."""
    root.mkdir(parents=True, exist_ok=True)
    lines = []
    for k in range(n):
        left = textured(*size, seed=k)
        right = left.copy()
        right[10 + k % 5 * 8:40 + k % 5 * 8, 20:60] = (255, 0, 255)
        save(root / f"l{k}.png", left)
        save(root / f"r{k}.png", right)
        lines.append(json.dumps({"id": f"p{k:04d}", "left": f"l{k}.png", "right": f"r{k}.png"}))
    (root / "pairs.jsonl").write_text("\n".join(lines + list(extra_lines)) + "\n")
    return root / "pairs.jsonl"


def parsed_lines(results: Path) -> list[dict]:
    """Every line of results.jsonl as JSON: the property a full disk or a kill must never break."""
    if not results.exists():
        return []
    text = results.read_text(encoding="utf-8")
    assert text == "" or text.endswith("\n"), f"torn last line: {text[-80:]!r}"
    return [json.loads(line) for line in text.splitlines()]


def run_batch_cli(pairs: Path, out: Path):
    return CliRunner().invoke(cli, ["run", "--pairs", str(pairs), "--out", str(out), "--quiet"])


# ---- ids ---------------------------------------------------------------------------------------------------
def test_good_ids_are_never_taken_by_bad_lines_or_fallback_names(tmp_path):
    pairs = make_pairs(tmp_path / "src", 5, [
        '{"id": "p0004"}',  # missing fields, same id as a good pair
        '{"id": "line-8", "left": "l0.png", "right": "r0.png"}',  # a good pair named like line 9's fallback
        "{not json",  # line 9: fallback id line-9
        '{"id": "p0001", "left": "l1.png", "right": "r1.png"}',  # a repeated good id
        '{"id": "line-9", "left": "l2.png", "right": "r2.png"}',  # a good pair named like line 8's fallback
        '{"left": "l0\\u0000.png", "right": "r0.png"}',  # a NUL byte in a path
    ])
    items = load_pairs(pairs)
    ids = [it.id for it in items]
    assert len(set(ids)) == len(ids) == 11, ids
    assert len({safe_stem(i) for i in ids}) == 11
    out = tmp_path / "out"
    for attempt in range(2):  # the first run, then a resume: the same answer
        res = run_batch_cli(pairs, out)
        assert res.exit_code == 1, res.output  # failed pairs: exit 1 at the end
        got = parsed_lines(out / "results.jsonl")
        assert sorted(r["id"] for r in got) == sorted(ids), attempt
        by_id = {r["id"]: r for r in got}
        for good in ("p0000", "p0001", "p0004", "line-9"):
            assert "error" not in by_id[good] and by_id[good]["regions"], by_id[good]
            assert "error" not in json.loads((out / f"{good}.json").read_text())
        assert "error" not in by_id["line-8"]
        nul = next(r for r in got if "NUL byte" in r.get("error", ""))
        assert "internal error" not in nul["error"]
        assert sum("duplicate id 'p0001'" in r.get("error", "") for r in got) == 1


# ---- a full disk -------------------------------------------------------------------------------------------
class FullDisk:
    """Lets ``budget`` bytes through files.py's writes, the last write partly, then ENOSPC on every write."""

    def __init__(self, budget: int | None):
        self.budget, self.written = budget, 0

    def __call__(self, fd: int, data) -> int:
        if self.budget is not None:
            room = self.budget - self.written
            if room <= 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            data = memoryview(data)[:room]
        n = os.write(fd, data)
        self.written += n
        return n


def test_a_full_disk_at_every_fill_level_never_tears_results(tmp_path, monkeypatch):
    pairs = make_pairs(tmp_path / "src", 4, ['{"id": "bad"}'])
    counter = FullDisk(None)
    monkeypatch.setattr(files_module, "_os_write", counter)
    assert run_batch_cli(pairs, tmp_path / "whole").exit_code == 1  # the bad line fails, as it should
    total = counter.written  # varies by a few bytes from run to run (timings in the records)
    rng = random.Random(7)
    levels = sorted({int(total * k / 16) for k in range(16)} | {1, 300, total - 500}
                    | {rng.randrange(total - 500) for _ in range(4)})
    for level in levels:
        out = tmp_path / f"out-{level}"
        monkeypatch.setattr(files_module, "_os_write", FullDisk(level))
        res = run_batch_cli(pairs, out)
        assert res.exit_code == DiskFullError.exit_code == 1, (level, res.output)
        line = res.output.strip().splitlines()[-1]
        assert line.startswith(f"Error: {out}") and "No space left on device" in line, (level, line)
        assert "Traceback" not in res.output
        parsed_lines(out / "results.jsonl")
        monkeypatch.setattr(files_module, "_os_write", os.write)  # space again: resume
        res = run_batch_cli(pairs, out)
        assert res.exit_code == 1, (level, res.output)
        got = parsed_lines(out / "results.jsonl")
        assert [r["id"] for r in got] == ["p0000", "p0001", "p0002", "p0003", "bad"], level
        assert all(r["regions"] for r in got[:4]) and "error" in got[4]
    print(f"\nfull disk at {len(levels)} fill levels of {total} bytes: results.jsonl parsed every time, "
          "resume complete")


def test_a_failed_append_is_cut_back_whole(tmp_path, monkeypatch):
    target = tmp_path / "results.jsonl"
    target.write_text('{"id": "a"}\n')
    fd = os.open(target, os.O_WRONLY | os.O_APPEND)
    try:
        monkeypatch.setattr(files_module, "_os_write", FullDisk(5))
        with pytest.raises(DiskFullError, match="results.jsonl: cannot write"):
            files_module.append_all_or_nothing(fd, b'{"id": "b", "long": "line"}\n', target)
    finally:
        os.close(fd)
    assert target.read_text() == '{"id": "a"}\n'
    target.write_text('{"id": "a"}\n{"id": "b", "to')  # what a kill mid-append could leave
    files_module.cut_partial_line(target)
    assert target.read_text() == '{"id": "a"}\n'


# ---- kill -9 -----------------------------------------------------------------------------------------------
def test_kill_9_at_random_points_then_resume(tmp_path):
    n = 12
    pairs = make_pairs(tmp_path / "src", n, size=(240, 320))
    out = tmp_path / "out"
    cmd = [sys.executable, "-c", "from imgdiff_rt.cli.main import cli; cli()", "run", "--pairs", str(pairs),
           "--out", str(out), "--quiet"]
    rng = random.Random(11)
    kills = 0
    for _ in range(3):
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not (out / "results.jsonl").exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)  # the batch has started writing
        time.sleep(rng.uniform(0.0, 0.6))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(60)
        parsed_lines(out / "results.jsonl")
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    got = parsed_lines(out / "results.jsonl")
    assert [r["id"] for r in got] == [f"p{k:04d}" for k in range(n)]
    assert not list(out.glob(".*.tmp"))
    print(f"\nkill -9 at {kills} random points, then resume: {len(got)}/{n} pairs, each once")


# ---- a killed Ray driver -----------------------------------------------------------------------------------
def _live_holders(session: Path) -> list[int]:
    """Live processes (not zombies) with files open in ``session``."""
    from imgdiff_rt.batch.ray_watchdog import _holders

    alive = []
    for pid in _holders(str(session), {os.getpid()}):
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                alive.append(pid)
        except OSError:
            pass
    return alive


def test_killing_the_ray_driver_leaves_no_process_or_folder(tmp_path):
    pytest.importorskip("ray")
    pairs = make_pairs(tmp_path / "src", 60, size=(240, 320))
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", "from imgdiff_rt.cli.main import cli; cli()", "run", "--pairs",
                             str(pairs), "--out", str(out), "--engine", "ray", "--workers", "1", "--batch-size", "1",
                             "--quiet"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ray_root = Path(os.environ.get("RAY_TMPDIR", "/tmp")) / "ray"
    deadline, session = time.monotonic() + 120, None
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            session = next(iter(ray_root.glob(f"session_*_{proc.pid}")), None)
            if session is not None and len(parsed_lines(out / "results.jsonl")) >= 2:
                break  # the cluster is up and pairs are being computed
            time.sleep(0.2)
        assert session is not None and proc.poll() is None, "the batch ended before it could be killed"
        assert _live_holders(session)  # the cluster's processes, found by their open files
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        end = time.monotonic() + 30
        while time.monotonic() < end and (session.exists() or _live_holders(session)):
            time.sleep(0.5)
        assert not _live_holders(session), "Ray processes outlived their driver"
        assert not session.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
    done = len(parsed_lines(out / "results.jsonl"))
    print(f"\nRay driver killed with {done}/60 pairs done: no process, no session folder left")
