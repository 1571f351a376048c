"""Batch runs: JSONL and folder inputs, resume after an interruption, atomic writes."""

import json
import os

import pytest
from click.testing import CliRunner

from imgdiff_rt import files as files_module
from imgdiff_rt.cli.main import cli
from imgdiff_rt.outputs import run_batch
from imgdiff_rt.pairs import load_pairs
from imgdiff_rt.pipeline import Pipeline

from helpers import save, textured


def make_folder(root, n=4):
    (root / "left").mkdir(parents=True)
    (root / "right").mkdir()
    for k in range(n):
        left = textured(120, 160, seed=k)
        right = left.copy()
        right[20 + 5 * k:60 + 5 * k, 30:80] = (255, 0, 255)
        save(root / "left" / f"p{k}.png", left)
        save(root / "right" / f"p{k}.png", right)
    return root


def test_folder_batch(tmp_path):
    src = make_folder(tmp_path / "src")
    res = CliRunner().invoke(cli, ["run", "--pairs", str(src), "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    rows = [json.loads(x) for x in (tmp_path / "o" / "results.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["p0", "p1", "p2", "p3"]
    assert all(len(r["regions"]) == 1 for r in rows)
    assert all((tmp_path / "o" / f"p{k}.png").exists() for k in range(4))


def test_folder_missing_right_image_is_reported(tmp_path):
    src = make_folder(tmp_path / "src", n=2)
    (src / "right" / "p1.png").unlink()
    items = load_pairs(src)
    assert items[1].error and "no image named p1" in items[1].error


def test_img_diff_format_batch_writes_one_line_per_region(tmp_path):
    src = make_folder(tmp_path / "src", n=2)
    res = CliRunner().invoke(cli, ["run", "--pairs", str(src), "--out", str(tmp_path / "o"), "--format", "img-diff"])
    assert res.exit_code == 0
    rows = [json.loads(x) for x in (tmp_path / "o" / "results.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["p0-1", "p1-1"] and all("conversations" in r for r in rows)


class Interrupt(BaseException):
    pass


def test_resume_after_interruption_skips_done_pairs(tmp_path, monkeypatch):
    src = make_folder(tmp_path / "src", n=5)
    out = tmp_path / "o"
    calls = []
    real = Pipeline.process

    def flaky(self, left, right, id=None):
        calls.append(id)
        if len(calls) == 3:
            raise Interrupt()  # like Ctrl-C in the middle of pair 3
        return real(self, left, right, id)

    monkeypatch.setattr(Pipeline, "process", flaky)
    with pytest.raises(Interrupt):
        run_batch(Pipeline(), load_pairs(src), out)
    assert sorted(p.name for p in out.glob("*.json")) == ["p0.json", "p1.json"]
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]  # no half-written files

    calls.clear()
    monkeypatch.setattr(Pipeline, "process", real)
    counted = []
    monkeypatch.setattr(Pipeline, "process", lambda self, l, r, id=None: counted.append(id) or real(self, l, r, id))
    summary = run_batch(Pipeline(), load_pairs(src), out)
    assert counted == ["p2", "p3", "p4"] and summary.skipped == 2 and summary.done == 3
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["p0", "p1", "p2", "p3", "p4"]


def test_failed_pairs_are_retried_on_resume(tmp_path):
    src = make_folder(tmp_path / "src", n=2)
    (src / "right" / "p1.png").write_bytes(b"garbage")
    out = tmp_path / "o"
    first = run_batch(Pipeline(), load_pairs(src), out)
    assert first.failed == 1 and "error" in json.loads((out / "p1.json").read_text())
    save(src / "right" / "p1.png", textured(120, 160, seed=1))
    second = run_batch(Pipeline(), load_pairs(src), out)
    assert (second.skipped, second.done, second.failed) == (1, 1, 0)


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    target = tmp_path / "results.jsonl"
    files_module.write_text_atomic(target, "old\n")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        files_module.write_text_atomic(target, "new\n")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["results.jsonl"]  # the temp file was cleaned up
