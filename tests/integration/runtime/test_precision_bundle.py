"""`--precision int8` with a model detector on a bundle exported without int8 graphs: one line, exit 2, naming
the export command that adds them (with the bundle's own kind of weights), before any session opens."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from imgdiff_rt.cli.main import cli

from helpers import LEFT, RIGHT

PAIR = [str(LEFT), str(RIGHT)]


@pytest.mark.parametrize("detector", ["segment", "hybrid"])
def test_int8_on_an_fp32_bundle_names_the_export_that_adds_it(tiny_runtime_bundle, detector):
    res = CliRunner().invoke(cli, ["run", *PAIR, "--models", str(tiny_runtime_bundle), "--detector", detector,
                                   "--precision", "int8"])
    assert res.exit_code == 2, res.output
    lines = [x for x in res.output.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: --precision 'int8': ")
    assert f"`imgdiff-rt export --tiny --random-init --precision int8 --out {tiny_runtime_bundle}`" in lines[0]


def test_int8_with_the_pixel_detector_needs_no_int8_graph(tiny_runtime_bundle):
    res = CliRunner().invoke(cli, ["run", *PAIR, "--models", str(tiny_runtime_bundle), "--detector", "pixel",
                                   "--precision", "int8"])
    assert res.exit_code == 0, res.output
