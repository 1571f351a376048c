"""Output files get the usual permissions under the user's umask (0644 under 022), not mkstemp's private 0600."""

import os
import stat

import pytest
from click.testing import CliRunner

from imgdiff_rt.cli.main import cli

from helpers import one_patch_pair


@pytest.fixture()
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.fixture()
def pair(tmp_path):
    return one_patch_pair(tmp_path)


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_run_outputs_follow_the_umask(pair, tmp_path, umask):
    old = os.umask(umask)
    try:
        out, json_path = tmp_path / "out", tmp_path / "result.json"
        res = CliRunner().invoke(cli, ["run", *map(str, pair), "--out", str(out), "--json", str(json_path),
                                       "--models", str(tmp_path / "no-bundle")], catch_exceptions=False)
    finally:
        os.umask(old)
    assert res.exit_code == 0, res.output
    written = [json_path, *sorted(p for p in out.iterdir() if p.is_file())]
    assert any(p.suffix == ".png" for p in written) and any(p.suffix == ".json" for p in written)
    for p in written:
        assert _mode(p) == 0o666 & ~umask, (p.name, oct(_mode(p)))


def test_batch_results_are_readable_by_others(pair, tmp_path, umask_022):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(f'{{"id": "p1", "left": "{pair[0].name}", "right": "{pair[1].name}"}}\n')
    out = tmp_path / "batch"
    res = CliRunner().invoke(cli, ["run", "--pairs", str(pairs), "--out", str(out), "--quiet",
                                   "--models", str(tmp_path / "no-bundle")], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    files = [p for p in out.rglob("*") if p.is_file() and not p.name.startswith(".")]
    assert any(p.name == "results.jsonl" for p in files)
    for p in files:
        if p.suffix in (".json", ".jsonl", ".png"):
            assert _mode(p) == 0o644, (p.name, oct(_mode(p)))
