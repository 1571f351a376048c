"""The words for a bundle's weights agree everywhere: `serve` names the tiny segmenter as `run` does (the label
`triton-repo` writes from the manifest), `export --tiny` says it builds random weights (no download), and
`export --check` lists every entry it counts."""

from __future__ import annotations

import json
import re

from click.testing import CliRunner

from imgdiff_rt.cli.main import cli
from imgdiff_rt.models.bundle import Bundle
from imgdiff_rt.triton.repo_check import served_weights

from helpers import LEFT, RIGHT


def test_serve_and_run_give_the_tiny_segmenter_one_label(tiny_runtime_bundle, tmp_path):
    repo = tmp_path / "repo"
    res = CliRunner().invoke(cli, ["triton-repo", "--bundle", str(tiny_runtime_bundle), "--platform", "python",
                                   "--out", str(repo)])
    assert res.exit_code == 0, res.output
    bundle = Bundle.load(tiny_runtime_bundle)
    assert served_weights(repo) == {g: bundle.weights_label(g) for g in served_weights(repo)}
    assert served_weights(repo)["segmenter"] == "tiny"
    run = CliRunner().invoke(cli, ["run", str(LEFT), str(RIGHT), "--models", str(tiny_runtime_bundle),
                                   "--detector", "segment"])
    assert run.exit_code == 0, run.output
    assert json.loads(run.stdout)["weights"]["graphs"]["segmenter"]["weights"] == "tiny"
    foreign = tmp_path / "not-an-env"  # serve says its notice, then refuses this folder before any server starts
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    res = CliRunner().invoke(cli, ["serve", "--repo", str(repo), "--env-dir", str(foreign)])
    assert "segmenter: tiny" in res.stderr and "random-init" not in res.stderr


def test_export_tiny_says_it_builds_random_weights(tmp_path):
    res = CliRunner().invoke(cli, ["export", "--tiny", "--random-init", "--segmenter", "none", "--captioner", "none",
                                   "--out", str(tmp_path / "b")])
    assert res.exit_code == 0, res.output
    assert "clip: building a tiny config of openai/clip-vit-base-patch32's architecture with random weights " \
           "(no download)" in res.stderr
    assert "loading openai" not in res.stderr


def test_export_check_lists_every_entry_it_counts(tiny_runtime_bundle):
    res = CliRunner().invoke(cli, ["export", "--check", str(tiny_runtime_bundle)])
    assert res.exit_code == 0, res.output
    listed = re.findall(r"^\[[ 0-9.]+s\]   (\S+): ok$", res.stderr, re.M)
    counted = int(re.search(r"bundle ok \((\d+) entries\)", res.stderr).group(1))
    assert len(listed) == counted and "tokenizer/clip" in listed
