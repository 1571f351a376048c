"""What the CLI lets through besides its one error line: nothing on stdout before an error, nothing written
outside its outputs and its own home by the libraries it imports, a file given where a bundle folder belongs
named as such."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from imgdiff_rt.cli.main import cli

from helpers import ROOT


def test_check_given_a_file_says_a_bundle_folder_is_expected(tmp_path):
    file = tmp_path / "manifest.json"
    file.write_text("{}")
    res = CliRunner().invoke(cli, ["export", "--check", str(file)])
    assert res.exit_code == 2
    line = res.output.strip()
    assert line.startswith(f"Error: {file}: is a file") and "model bundle folder" in line, line
    assert "Directory" not in line and len(res.output.strip().splitlines()) == 1


_REFUSED_STATE_DICT = """
import os, sys, torch
class Payload:
    def __reduce__(self):
        return (os.system, ("true",))
torch.save({"model": Payload()}, sys.argv[1])
from imgdiff_rt.errors import ModelError
from imgdiff_rt.runtime.backends.torch_backend import _load_segmenter
try:
    _load_segmenter(sys.argv[1], 1, "FastSAM-s.pt", True)
except ModelError as e:
    print("refused:", e, file=sys.stderr)
"""


def test_ultralytics_writes_nothing_in_home_nor_on_stdout(tmp_path):
    """A fresh HOME, no YOLO_CONFIG_DIR: Ultralytics' first import creates its settings file and announces it
    on stdout; both must stay out of the user's home and out of stdout (which carries result JSON)."""
    pytest.importorskip("ultralytics")
    pytest.importorskip("torch")
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "YOLO_CONFIG_DIR"}
    env.update(HOME=str(home), IMGDIFF_RT_HOME=str(tmp_path / "irt"), YOLO_OFFLINE="1")
    done = subprocess.run([sys.executable, "-c", _REFUSED_STATE_DICT, str(tmp_path / "state_dict.pt")], cwd=ROOT,
                          env=env, capture_output=True, timeout=300)
    assert b"refused:" in done.stderr and b"refused by the safe loader" in done.stderr, done.stderr[-2000:]
    assert done.stdout == b"", done.stdout[:500]
    assert list(home.iterdir()) == [], sorted(str(p) for p in home.rglob("*"))
    assert list(Path(tmp_path / "irt").rglob("settings.json"))  # where it went instead
