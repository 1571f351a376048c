"""The light install: one table says which extra each command or option needs; a missing one is one line with
the install command and exit 2 before any work; one OpenCV (the headless one) in every environment."""

from __future__ import annotations

import importlib.metadata as md
import re
import tomllib

import pytest
from click.testing import CliRunner

from imgdiff_rt import extras
from imgdiff_rt.cli.main import cli

from helpers import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PAIR = ["examples/left.png", "examples/right.png"]

#: one command line per extra (at least): what the user types, and the extra it must name
CASES = [
    (["export", "--tiny", "--random-init", "--out", "{out}"], "export"),
    (["run", *PAIR, "--detector", "segment"], "cpu"),
    (["run", *PAIR, "--filter", "segmenter"], "cpu"),
    (["run", *PAIR, "--detector", "segment", "--backend", "torch"], "export"),
    (["run", *PAIR, "--captioner", "blip", "--backend", "triton"], "triton"),
    (["run", *PAIR, "--detector", "segment", "--backend", "triton"], "triton"),
    (["run", *PAIR, "--detector", "segment", "--backend", "tensorrt"], "tensorrt"),
    (["eval-captions", "--pred", "p.json", "--refs", "r.json"], "captions"),
    (["bench", "--out", "{out}"], "bench"),
    (["web"], "web"),
    (["run", "--pairs", "examples", "--out", "{out}", "--engine", "ray"], "ray"),
    (["eval", "--pairs", "examples", "--out", "{out}", "--parquet"], "ray"),
]


def _hide(monkeypatch, extra: str) -> None:
    hidden = set(extras.EXTRAS[extra].modules)
    real = extras.is_installed
    monkeypatch.setattr(extras, "is_installed", lambda m: m not in hidden and real(m))


def test_every_extra_of_the_table_has_a_case_and_is_in_pyproject():
    assert {extra for _, extra in CASES} == set(extras.EXTRAS)
    declared = PYPROJECT["project"]["optional-dependencies"]
    for extra in extras.EXTRAS.values():
        assert extra.name in declared
        assert extra.alternative is None or extra.alternative in declared
    for command in extras.COMMAND_EXTRAS:
        assert command in __import__("imgdiff_rt.cli.main", fromlist=["COMMANDS"]).COMMANDS


@pytest.mark.parametrize("args,extra", CASES, ids=[f"{a[0]}-{e}-{i}" for i, (a, e) in enumerate(CASES)])
def test_a_missing_extra_is_one_line_exit_2_before_any_work(args, extra, monkeypatch, tmp_path):
    monkeypatch.chdir(ROOT)
    _hide(monkeypatch, extra)
    out = tmp_path / "out"
    res = CliRunner().invoke(cli, [a.format(out=out) for a in args])
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.stderr
    assert re.search(rf"pip install 'imgdiff-rt\[([a-z]+,)*{extra}(,[a-z]+)*\]'", lines[0]), lines[0]
    assert "Traceback" not in res.output and not out.exists()


def test_help_works_without_the_extra(monkeypatch):
    _hide(monkeypatch, "web")
    res = CliRunner().invoke(cli, ["web", "--help"])
    assert res.exit_code == 0 and "--max-jobs" in res.stdout


def test_the_pixel_detector_needs_no_extra(monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(extras, "is_installed", lambda m: False)
    res = CliRunner().invoke(cli, ["run", *PAIR])
    assert res.exit_code == 0, res.output
    # with no models installed the fallback note says how to add them
    assert f"pip install 'imgdiff-rt[{extras.MODELS_EXTRA}]'" in res.stderr


def test_the_base_install_holds_no_extra():
    base = " ".join(PYPROJECT["project"]["dependencies"]).lower()
    for extra in extras.EXTRAS.values():
        for module in extra.modules:
            assert not re.search(rf"\b{module}\b", base), module
    declared = PYPROJECT["project"]["optional-dependencies"]
    assert declared[extras.MODELS_EXTRA] == ["imgdiff-rt[export,cpu]"]


OPENCV_DISTS = ("opencv-python", "opencv-python-headless", "opencv-contrib-python", "opencv-contrib-python-headless")


def test_one_opencv_in_this_environment_the_headless_one():
    """Both wheels own the cv2 folder: with two, whichever installed last wins and uninstalling one breaks the
    other. Plain `ultralytics` pulls opencv-python; the project uses ultralytics-opencv-headless."""
    present = []
    for name in OPENCV_DISTS:
        try:
            md.distribution(name)
            present.append(name)
        except md.PackageNotFoundError:
            pass
    assert present == ["opencv-python-headless"]


def test_no_requirement_pulls_a_gui_opencv():
    every = PYPROJECT["project"]["dependencies"] + [
        r for reqs in PYPROJECT["project"]["optional-dependencies"].values() for r in reqs]
    names = {re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].lower() for r in every}
    assert not names & {"opencv-python", "opencv-contrib-python", "ultralytics"}
    for name in names - {"imgdiff-rt"}:  # what an installed requirement pulls in turn
        try:
            requires = md.requires(name) or []
        except md.PackageNotFoundError:
            continue
        pulled = {re.split(r"[<>=!~\[; (]", r, maxsplit=1)[0].lower() for r in requires if "extra ==" not in r}
        assert not pulled & {"opencv-python", "opencv-contrib-python"}, name


def test_the_suites_triton_environment_is_under_the_temp_home():
    from pathlib import Path
    import os

    from imgdiff_rt.triton.server import default_env_dir

    home = Path(os.environ["IMGDIFF_RT_HOME"])
    assert os.environ.get("IMGDIFF_RT_TRITON_ENV") or default_env_dir().is_relative_to(home)
    assert not default_env_dir().is_relative_to(Path.home() / ".cache")
