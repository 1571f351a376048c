"""`imgdiff-rt synth --jitter` through the CLI on a full-size photo: the re-shot right image and the moved
truth it writes."""

import json

from click.testing import CliRunner

from imgdiff_rt.cli.main import cli


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_synth_jitter_writes_moved_truth(tmp_path):
    res = invoke("synth", "skimage:coffee", "--out", tmp_path, "--jitter", "--seed", "3")
    assert res.exit_code == 0, res.output
    truth = json.loads((tmp_path / "truth.json").read_text())
    assert "jitter" in truth and all("bbox_right" in c for c in truth["changes"])
    assert json.loads((tmp_path / "pairs.jsonl").read_text().splitlines()[0])["id"].startswith("coffee-l1-j-")
