"""A real `--engine ray` batch says nothing of Ray's internals: no token-authentication warning and no
"constructor arguments in the object store" error (the actors' arguments travel inline), no token file in the
home folder; and it notes how long start-up took."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from helpers import make_folder


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
