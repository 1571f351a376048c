"""What `--engine ray` says: no token-authentication warning and no "constructor arguments in the object store"
error (the actors' arguments travel inline), no token file in the home folder, a progress line with a rate as
soon as one is known, and a note when start-up took most of the batch."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time

import pytest

from imgdiff_rt.batch import progress as progress_module
from imgdiff_rt.batch.ray_engine import start_up_note

from helpers import make_folder


def test_a_burst_of_records_is_no_rate_and_the_first_real_rate_is_shown_at_once():
    stream = io.StringIO()
    assert progress_module.PLAIN_EVERY_S >= 10
    with progress_module.Progress(12, stream=stream, mode="lines") as bar:
        for _ in range(4):  # one Ray task's records arrive together
            bar.advance()
        assert bar.rate() is None
        time.sleep(progress_module.MIN_RATE_WINDOW_S + 0.05)
        bar.advance()
        shown = stream.getvalue().splitlines()
        assert len(shown) == 2 and shown[1].startswith("pairs 5/12 (42%), ") and "? pairs/s" not in shown[1]
        assert "ETA 0:00:" in shown[1]
        bar.advance()  # once shown, the rate waits for the periodic line again
        assert len(stream.getvalue().splitlines()) == 2


def test_the_start_up_note():
    assert start_up_note(6.5, 10.0).startswith("note: Ray start-up took 6.5 s of 10.0 s")
    assert start_up_note(1.0, 10.0) is None


def test_a_ray_batch_says_nothing_of_ray_internals(tmp_path):
    pytest.importorskip("ray")
    src = make_folder(tmp_path / "src", n=3)
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    env["HOME"] = str(home)
    res = subprocess.run([sys.executable, "-c", "from imgdiff_rt.cli.main import cli; cli()", "run", "--pairs", str(src), "--out",
                          str(tmp_path / "o"), "--engine", "ray", "--workers", "1"],
                         env=env, capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stderr
    for noise in ("Token authentication", "core_worker", "max_restarts", "WARNING", "Progress bars"):
        assert noise not in res.stderr, res.stderr
    assert "note: Ray start-up took " in res.stderr and "3 pairs: 3 done" in res.stderr
    assert not (home / ".ray").exists()  # the batch's cluster used a token of its own
