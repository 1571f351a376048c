"""What a batch says on stderr: the failed pairs by name and why under the summary line, progress off a terminal
at the start and the end of even a short batch, and the flags that resume over other settings."""

from __future__ import annotations

import io

from click.testing import CliRunner

from imgdiff_rt.batch import progress as progress_module
from imgdiff_rt.cli.batch_cli import failure_lines
from imgdiff_rt.cli.main import cli
from imgdiff_rt.pairs import PairItem

from helpers import make_folder


def test_the_summary_names_each_failed_pair_and_why(tmp_path):
    src = make_folder(tmp_path / "src", n=3)
    (src / "right" / "p1.png").write_bytes(b"not a picture")
    res = CliRunner().invoke(cli, ["run", "--pairs", str(src), "--out", str(tmp_path / "o"), "-q"])
    assert res.exit_code == 1
    lines = res.output.splitlines()
    at = next(i for i, x in enumerate(lines) if x.startswith("3 pairs: 2 done, 0 already done, 1 failed -> "))
    assert lines[at + 1].startswith("failed: p1: ") and "p1.png" in lines[at + 1]
    assert len(lines) == at + 2


def test_failure_lines_are_bounded():
    items = [PairItem(f"p{k}", None, None) for k in range(9)]
    records = {it.id: {"id": it.id, "error": f"broken\nline {k}"} for k, it in enumerate(items)}
    records["p0"] = {"id": "p0", "regions": []}
    lines = failure_lines(items, records, limit=3)
    assert lines == ["failed: p1: broken\\nline 1", "failed: p2: broken\\nline 2", "failed: p3: broken\\nline 3",
                     "... and 5 more failed (see the results file)"]


def test_a_short_batch_off_a_terminal_shows_its_start_and_end(tmp_path):
    # the plain line's period is the default (10 s): a one-second batch still prints
    assert progress_module.PLAIN_EVERY_S >= 10
    src = make_folder(tmp_path / "src", n=2)
    res = CliRunner().invoke(cli, ["run", "--pairs", str(src), "--out", str(tmp_path / "o")])
    assert res.exit_code == 0
    lines = [x for x in res.output.splitlines() if x.startswith("pairs ")]
    assert lines[0].startswith("pairs 0/2 (0%)") and lines[-1].startswith("pairs 2/2 (100%), ")
    assert len(lines) == 2


def test_plain_progress_prints_no_end_line_twice():
    stream = io.StringIO()
    with progress_module.Progress(0, already=0, stream=stream):
        pass
    assert stream.getvalue().splitlines() == ["pairs 0/0 (100%), ? pairs/s, ETA ?"]


def test_a_settings_mismatch_names_the_flags(tmp_path):
    src = make_folder(tmp_path / "src", n=1)
    args = ["run", "--pairs", str(src), "--out", str(tmp_path / "o"), "-q"]
    assert CliRunner().invoke(cli, args).exit_code == 0
    res = CliRunner().invoke(cli, args + ["--threshold", "20"])
    assert res.exit_code == 2
    assert "--redo to recompute every pair" in res.output and "--force to keep the finished pairs" in res.output
