"""The documentation states the code's defaults: docs/defaults.md is generated from the code and current, and
every default the README names equals the code's."""

from __future__ import annotations

import re

import pytest

from imgdiff_rt.cli.defaults_doc import render
from imgdiff_rt.imageio import DEFAULT_MAX_PIXELS
from imgdiff_rt.detectors.pixel.detector import DEFAULT_NOISE_FLOOR, DEFAULT_THRESHOLD, PixelConfig
from imgdiff_rt.detectors.model.detector import SegmentConfig

from helpers import ROOT

_PIXEL, _SEGMENT = PixelConfig(), SegmentConfig()

#: (pattern capturing a number the README states, the code's value, how the README scales it)
README_DEFAULTS = [
    (r"`--max-regions N` \((\d+)\)", _PIXEL.max_regions, 1),
    (r"`--max-pixels N` \((\d+) MP\)", DEFAULT_MAX_PIXELS, 1e6),
    (r"`--clip-threshold[^`]*` \(([\d.]+)\)", _SEGMENT.clip_threshold, 1),
    (r"`--max-proposals[^`]*` \((\d+)\)", _SEGMENT.max_proposals, 1),
    (r"Gaussian blur \(sigma ([\d.]+) px\)", _PIXEL.blur_sigma, 1),
    (r"threshold \(fixed deltaE ([\d.]+)", float(DEFAULT_THRESHOLD["lab"]), 1),
    (r"noise floor of deltaE ([\d.]+)", DEFAULT_NOISE_FLOOR["lab"], 1),
    (r"opening \((\d+) px\)", _PIXEL.open_px, 1),
    (r"closing \((\d+) px\)", _PIXEL.close_px, 1),
    (r"`--merge-gap FRACTION` \(([\d.]+)\)", _PIXEL.merge_gap, 1),
    (r"closer than\s+(\d+)% of the image diagonal", _PIXEL.merge_gap, 0.01),
]


def test_docs_defaults_is_generated_from_the_current_code():
    committed = (ROOT / "docs" / "defaults.md").read_text(encoding="utf-8")
    assert committed == render(), "docs/defaults.md is stale: run python scripts/gen_defaults_doc.py"


def test_defaults_doc_lists_the_pixel_detector_values_of_the_code():
    text = render()
    assert f"| `close_px` | {_PIXEL.close_px} |" in text
    assert f"| lab | {DEFAULT_THRESHOLD['lab']} | {DEFAULT_NOISE_FLOOR['lab']:g} |" in text
    assert f"| `--clip-threshold` | {_SEGMENT.clip_threshold} |" in text


@pytest.mark.parametrize("pattern,code_value,scale", README_DEFAULTS)
def test_readme_defaults_equal_the_code(pattern, code_value, scale):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    stated = re.findall(pattern, readme)
    assert stated, f"the README no longer states {pattern}"
    for value in stated:
        assert float(value) * scale == pytest.approx(float(code_value)), (pattern, value, code_value)
