"""The README's option list and result sample are generated from the code and a real run
(scripts/gen_readme.py), and current."""

from __future__ import annotations

import json
import re

from click.testing import CliRunner

from imgdiff_rt.cli.main import cli
from imgdiff_rt.cli.options import pipeline_option_names
from imgdiff_rt.cli.readme_doc import (EXAMPLE, GROUPS, OPTIONS_MARKERS, SAMPLE_MARKERS, abridged, between,
                                       option_list)

from helpers import ROOT

STALE = "the README is stale: run python scripts/gen_readme.py"


def _readme() -> str:
    return (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_option_of_the_table_is_in_exactly_one_group():
    grouped = [name for _, names in GROUPS for name in names]
    assert sorted(grouped) == sorted(pipeline_option_names())


def test_the_readme_option_list_is_the_generated_one():
    listed = between(_readme(), OPTIONS_MARKERS)
    assert listed == option_list(), STALE
    for flag in ("--pixel-gate", "--filter", "--filter-threshold", "--ignore", "--ignore-mask"):
        assert f"`{flag} " in listed or f"`{flag}`" in listed


def test_the_readme_result_sample_is_what_run_prints(monkeypatch):
    block = between(_readme(), SAMPLE_MARKERS)
    sample = json.loads(re.fullmatch(r"```json\n(.*)\n```", block, re.S).group(1))
    monkeypatch.chdir(ROOT)
    res = CliRunner().invoke(cli, ["run", *EXAMPLE])
    assert res.exit_code == 0, res.output
    real = abridged(json.loads(res.stdout))
    assert sample["timings_ms"].keys() == real["timings_ms"].keys()
    sample.pop("timings_ms"), real.pop("timings_ms")  # the one part that differs from run to run
    assert sample == real, STALE
