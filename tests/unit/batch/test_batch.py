"""Batch runs: pair sources, file names, resume, the lock, settings check, progress and interrupt, eval's batch."""

import fcntl
import io
import json
import os
import shutil

import pytest
from click.testing import CliRunner

from imgdiff_rt import files as files_module
from imgdiff_rt.batch import BatchOptions, EvalJob, RunJob, run_batch
from imgdiff_rt.batch import progress as progress_module
from imgdiff_rt.batch.store import LOCK_FILE
from imgdiff_rt.cli.main import cli
from imgdiff_rt.errors import OutputError, PairsFileError
from imgdiff_rt.writers.pair import change_mask_name
from imgdiff_rt.pairs import CLEVR_SEMANTIC_UNSCORED, load_pairs, safe_stem
from imgdiff_rt.pipeline import Pipeline

from helpers import make_folder, save, textured


def rows(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def visible_json(folder):
    return sorted(p.name for p in folder.glob("*.json") if not p.name.startswith("."))


def test_folder_batch(tmp_path):
    src = make_folder(tmp_path / "src")
    res = CliRunner().invoke(cli, ["run", "--pairs", str(src), "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    got = rows(tmp_path / "o" / "results.jsonl")
    assert [r["id"] for r in got] == ["p0", "p1", "p2", "p3"]
    assert all(r["regions"] for r in got)  # each pair has a change
    assert all((tmp_path / "o" / f"p{k}.png").exists() for k in range(4))
    assert not (tmp_path / "o" / LOCK_FILE).exists()  # released at the end


def test_folder_missing_right_image_is_reported(tmp_path):
    src = make_folder(tmp_path / "src", n=2)
    (src / "right" / "p1.png").unlink()
    items = load_pairs(src)
    assert items[1].error and "no image named p1" in items[1].error


def test_img_diff_format_batch_writes_one_line_per_region(tmp_path):
    src = make_folder(tmp_path / "src", n=2)
    res = CliRunner().invoke(cli, ["run", "--pairs", str(src), "--out", str(tmp_path / "o"), "--format", "img-diff"])
    assert res.exit_code == 0
    got = rows(tmp_path / "o" / "results.jsonl")
    per_pair = {pid: json.loads((tmp_path / "o" / f"{pid}.json").read_text()) for pid in ("p0", "p1")}
    assert got == per_pair["p0"] + per_pair["p1"] and all("conversations" in r for r in got)
    assert [r["id"] for r in got] == [f"{pid}-{k}" for pid in per_pair for k in range(1, len(per_pair[pid]) + 1)]


# -- file names ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ids", [
    ["a/b", "a_b"], ["日本", "中国"], ["x y", "x_y", "x?y"], [".hidden", "hidden"], ["a" * 300, "a" * 301],
    ["p-0123abcd", "p"], ["", "_"], ["..", "__"], ["x_mask", "x"],
])
def test_distinct_ids_get_distinct_safe_names(ids):
    stems = [safe_stem(i) for i in ids]
    assert len(set(stems)) == len(ids)
    pictures = [f"{s}.png" for s in stems] + [change_mask_name(s) for s in stems]
    assert len(set(pictures)) == 2 * len(ids)  # no pair's picture is another pair's mask
    for s in stems:
        assert "/" not in s and not s.startswith(".") and len(s) <= 100 and s.isascii()


def test_colliding_ids_are_all_processed_once(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    img = textured(80, 100, seed=3)
    changed = img.copy()
    changed[10:40, 10:40] = (0, 255, 0)
    save(src / "l.png", img)
    save(src / "r.png", changed)
    ids = ["a/b", "a_b", "日本", "中国"]
    (src / "pairs.jsonl").write_text("".join(json.dumps({"id": i, "left": "l.png", "right": "r.png"}) + "\n"
                                             for i in ids), encoding="utf-8")
    out = tmp_path / "o"
    res = CliRunner().invoke(cli, ["run", "--pairs", str(src / "pairs.jsonl"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert [r["id"] for r in rows(out / "results.jsonl")] == ids
    assert len(visible_json(out)) == 4 and "4 done, 0 already done" in res.output


# -- pair sources -------------------------------------------------------------------------------------------
def test_levir_cd_layout(shared_data):
    items = load_pairs(shared_data / "levir-cd")
    assert len(items) == 12 and not any(it.error for it in items)
    assert sum(it.truth is not None for it in items) == 11  # test_113_0256 has no mask
    assert all(it.left.parent.name == "A" and it.right.parent.name == "B" for it in items)


def test_clevr_change_layout(shared_data):
    items = load_pairs(shared_data / "clevr-change")
    semantic = [it for it in items if it.id.endswith("-semantic")]
    nonsemantic = [it for it in items if it.id.endswith("-nonsemantic")]
    assert len(semantic) == len(nonsemantic) == 50 and len(items) == 100
    assert all(it.unscored == CLEVR_SEMANTIC_UNSCORED and not it.has_truth for it in semantic)
    assert all(it.truth_boxes == () for it in nonsemantic)  # only camera jitter: "no change" is the truth


@pytest.mark.parametrize("make, message", [
    (lambda p: (p / "stuff").mkdir(parents=True), "not a pairs folder"),
    (lambda p: p.mkdir(), "holds no pairs"),
])
def test_unusable_pair_sources(tmp_path, make, message):
    make(tmp_path / "src")
    if message == "holds no pairs":
        (tmp_path / "src" / "left").mkdir()
        (tmp_path / "src" / "right").mkdir()
    with pytest.raises(PairsFileError, match=message):
        load_pairs(tmp_path / "src")


# -- resume, retry, redo --------------------------------------------------------------------------------------
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
            raise Interrupt()  # like a kill in the middle of pair 3
        return real(self, left, right, id)

    monkeypatch.setattr(Pipeline, "process", flaky)
    with pytest.raises(Interrupt):
        run_batch(Pipeline(), load_pairs(src), RunJob(), out, BatchOptions(progress="quiet"))
    assert visible_json(out) == ["p0.json", "p1.json"]
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]  # no half-written files

    counted = []
    monkeypatch.setattr(Pipeline, "process", lambda self, l, r, id=None: counted.append(id) or real(self, l, r, id))
    summary, _ = run_batch(Pipeline(), load_pairs(src), RunJob(), out, BatchOptions(progress="quiet"))
    assert counted == ["p2", "p3", "p4"] and summary.skipped == 2 and summary.done == 3
    assert [r["id"] for r in rows(out / "results.jsonl")] == ["p0", "p1", "p2", "p3", "p4"]


def test_failed_pairs_are_retried_on_resume(tmp_path):
    src = make_folder(tmp_path / "src", n=2)
    (src / "right" / "p1.png").write_bytes(b"garbage")
    out = tmp_path / "o"
    first, _ = run_batch(Pipeline(), load_pairs(src), RunJob(), out, BatchOptions(progress="quiet"))
    assert first.failed == 1 and "error" in json.loads((out / "p1.json").read_text())
    save(src / "right" / "p1.png", textured(120, 160, seed=1))
    second, _ = run_batch(Pipeline(), load_pairs(src), RunJob(), out, BatchOptions(progress="quiet"))
    assert (second.skipped, second.done, second.failed) == (1, 1, 0)
    assert [r["id"] for r in rows(out / "results.jsonl")] == ["p0", "p1"]  # the old error line is gone


def test_leftover_temp_files_are_cleaned(tmp_path):
    src = make_folder(tmp_path / "src", n=1)
    out = tmp_path / "o"
    out.mkdir()
    (out / ".p0.png.k3j2.tmp").write_bytes(b"half")
    (out / "keep.tmp").write_bytes(b"not ours: not hidden")
    assert CliRunner().invoke(cli, ["run", "--pairs", str(src), "--out", str(out)]).exit_code == 0
    assert sorted(p.name for p in out.iterdir() if p.name.endswith(".tmp")) == ["keep.tmp"]


SETTINGS_CASES = [  # (second run's extra args, exit code, text in stderr, pairs computed again)
    ([], 0, "0 done, 2 already done", 0),
    (["--threshold", "20"], 2, "other settings (pipeline.pixel.threshold", 0),
    (["--threshold", "20", "--force"], 0, "kept them (forced)", 0),
    (["--threshold", "20", "--redo"], 0, "2 done, 0 already done", 2),
    (["--format", "img-diff"], 2, "format: 'result' -> 'img-diff'", 0),
]


@pytest.mark.parametrize("extra, code, text, recomputed", SETTINGS_CASES)
def test_resume_settings_check(tmp_path, monkeypatch, extra, code, text, recomputed):
    src = make_folder(tmp_path / "src", n=2)
    out = tmp_path / "o"
    args = ["run", "--pairs", str(src), "--out", str(out)]
    assert CliRunner().invoke(cli, args).exit_code == 0
    real, counted = Pipeline.process, []
    monkeypatch.setattr(Pipeline, "process", lambda self, l, r, id=None: counted.append(id) or real(self, l, r, id))
    res = CliRunner().invoke(cli, args + extra)
    assert res.exit_code == code, res.output
    assert text in res.output and len(counted) == recomputed


# -- lock ---------------------------------------------------------------------------------------------------
def test_second_batch_on_one_folder_is_refused(tmp_path):
    src = make_folder(tmp_path / "src", n=1)
    out = tmp_path / "o"
    out.mkdir()
    fd = os.open(out / LOCK_FILE, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what a running batch holds
        os.write(fd, b"4242 otherhost\n")
        res = CliRunner().invoke(cli, ["run", "--pairs", str(src), "--out", str(out)])
    finally:
        os.close(fd)
    assert res.exit_code == 2 and "another batch is writing" in res.output and "4242 otherhost" in res.output
    assert visible_json(out) == []


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    src = make_folder(tmp_path / "src", n=1)
    out = tmp_path / "o"
    out.mkdir()
    (out / LOCK_FILE).write_text("999999999 somehost\n")  # its owner was killed: nobody holds the lock
    res = CliRunner().invoke(cli, ["run", "--pairs", str(src), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert not (out / LOCK_FILE).exists()


def test_output_folder_holding_the_inputs_is_refused(tmp_path):
    src = make_folder(tmp_path / "src", n=1)
    res = CliRunner().invoke(cli, ["run", "--pairs", str(src), "--out", str(src / "left")])
    assert res.exit_code == 2 and "holds input images" in res.output
    assert sorted(p.name for p in (src / "left").iterdir()) == ["p0.png"]


# -- progress and interrupt -----------------------------------------------------------------------------------
def test_interrupt_says_how_far_it_got_and_resumes(tmp_path, monkeypatch):
    src = make_folder(tmp_path / "src", n=4)
    out = tmp_path / "o"
    real, calls = Pipeline.process, []

    def ctrl_c_on_third(self, left, right, id=None):
        calls.append(id)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self, left, right, id)

    monkeypatch.setattr(Pipeline, "process", ctrl_c_on_third)
    res = CliRunner().invoke(cli, ["run", "--pairs", str(src), "--out", str(out)])
    assert res.exit_code == 130
    assert "interrupted: 2 of 4 done; rerun the same command to resume" in res.output
    monkeypatch.setattr(Pipeline, "process", real)
    res = CliRunner().invoke(cli, ["run", "--pairs", str(src), "--out", str(out)])
    assert res.exit_code == 0 and "2 done, 2 already done" in res.output


@pytest.mark.parametrize("quiet", [False, True])
def test_plain_progress_lines_when_not_a_terminal(tmp_path, monkeypatch, quiet):
    monkeypatch.setattr(progress_module, "PLAIN_EVERY_S", 0.0)
    src = make_folder(tmp_path / "src", n=3)
    res = CliRunner().invoke(cli, ["run", "--pairs", str(src), "--out", str(tmp_path / "o")]
                             + (["--quiet"] if quiet else []))
    assert res.exit_code == 0
    lines = [x for x in res.output.splitlines() if x.startswith("pairs ")]
    if quiet:
        assert lines == []
    else:
        assert lines[-1].startswith("pairs 3/3 (100%), ") and " pairs/s, ETA " in lines[-1]


def test_progress_bar_on_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    with progress_module.Progress(3, already=1, stream=stream) as bar:
        bar.advance()
        bar.advance()
    assert bar.mode == "bar" and "3/3" in stream.getvalue() and "pairs/s" in stream.getvalue()
    assert "ETA" in stream.getvalue()


def test_batch_options_are_refused_for_a_single_pair(tmp_path):
    src = make_folder(tmp_path / "src", n=1)
    res = CliRunner().invoke(cli, ["run", str(src / "left" / "p0.png"), str(src / "right" / "p0.png"),
                                   "--engine", "ray"])
    assert res.exit_code == 2 and "are for batches" in res.output


@pytest.mark.parametrize("args", [["--workers", "2"], ["--address", "auto"], ["--batch-size", "8"]])
def test_ray_options_without_the_ray_engine_are_refused(tmp_path, args):
    src = make_folder(tmp_path / "src", n=1)
    res = CliRunner().invoke(cli, ["run", "--pairs", str(src), "--out", str(tmp_path / "o"), *args])
    assert res.exit_code == 2 and "are for engine 'ray'" in res.output and not (tmp_path / "o").exists()


def test_parquet_results(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    src = make_folder(tmp_path / "src", n=2)
    res = CliRunner().invoke(cli, ["run", "--pairs", str(src), "--out", str(tmp_path / "o"), "--parquet"])
    assert res.exit_code == 0, res.output
    table = pq.read_table(tmp_path / "o" / "results.parquet").to_pylist()
    assert [(r["id"], r["status"]) for r in table] == [("p0", "done"), ("p1", "done")]
    assert [json.loads(r["record"]) for r in table] == rows(tmp_path / "o" / "results.jsonl")


# -- eval as a batch ---------------------------------------------------------------------------------------------
def test_eval_unscored_pairs_and_resume(tmp_path, shared_data, monkeypatch):
    src = tmp_path / "levir"
    for sub in ("A", "B", "label"):
        (src / sub).mkdir(parents=True)
    masked = sorted(p.name for p in (shared_data / "levir-cd" / "label").iterdir())[:2]
    names = masked + ["test_113_0256.png"]  # the sample without a mask
    for name in names:
        for sub in ("A", "B", "label"):
            if (shared_data / "levir-cd" / sub / name).exists():
                shutil.copy(shared_data / "levir-cd" / sub / name, src / sub / name)
    out = tmp_path / "eval"
    res = CliRunner().invoke(cli, ["eval", "--pairs", str(src), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "pairs       3: 2 scored, 1 unscored" in res.output and "failed" not in res.output
    got = rows(out / "eval.jsonl")
    assert [r.get("unscored") for r in got].count("no truth given for this pair") == 1
    summary = json.loads((out / "eval_summary.json").read_text())
    assert summary["unscored_pairs"] == 1 and summary["failed_pairs"] == 0

    monkeypatch.setattr(Pipeline, "process", lambda *a, **k: pytest.fail("a finished pair was computed again"))
    again = CliRunner().invoke(cli, ["eval", "--pairs", str(src), "--out", str(out)])
    assert again.exit_code == 0 and again.stdout.splitlines()[1:] == res.stdout.splitlines()[1:]
    resumed = json.loads((out / "eval_summary.json").read_text())  # counted from every record, not this run's
    assert resumed["unscored_pairs"] == 1 and resumed["counts"]["scored"] == 2


def test_eval_records_cannot_collide_with_the_summary(tmp_path):
    src = make_folder(tmp_path / "src", n=1, names=["eval_summary"])
    (src / "truth").mkdir()
    (src / "truth" / "eval_summary.json").write_text(json.dumps({"changes": [{"bbox": [30, 20, 80, 60]}]}))
    out = tmp_path / "eval"
    summary, _ = run_batch(Pipeline(), load_pairs(src), EvalJob(), out, BatchOptions(progress="quiet"))
    assert summary.done == 1 and (out / "pairs" / "eval_summary.json").is_file()


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    target = tmp_path / "results.jsonl"
    files_module.write_text_atomic(target, "old\n")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises((OSError, OutputError)):
        files_module.write_text_atomic(target, "new\n")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["results.jsonl"]  # the temp file was cleaned up
