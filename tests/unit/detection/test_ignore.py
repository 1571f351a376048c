"""Ignore regions: boxes (pixels or fractions) and a mask never make a region; the settings record them and the
annotated picture shades them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from imgdiff_rt import Pipeline
from imgdiff_rt.cli.main import cli
from imgdiff_rt.errors import UsageError
from imgdiff_rt.detectors.ignore import IGNORED_SHARE, IgnoreSpec, drop_ignored, parse_box, pixel_box
from imgdiff_rt.result import Region

from helpers import LEFT, RIGHT

PAIR = [str(LEFT), str(RIGHT)]


def _run(*args: str) -> dict:
    res = CliRunner().invoke(cli, ["run", *PAIR, *args])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_boxes_in_pixels_or_fractions():
    assert parse_box("10,20,30,40") == (10, 20, 30, 40)
    assert pixel_box(parse_box("0.5,0,1,0.25"), 512, 400) == (256, 0, 512, 100)
    assert pixel_box(parse_box("0,0,1,1"), 64, 32) == (0, 0, 64, 32)  # all four in 0..1: the whole image
    assert pixel_box(parse_box("500,0,900,10"), 512, 512) == (500, 0, 512, 10)  # clipped to the image


@pytest.mark.parametrize("spec", ["1,2,3", "a,b,c,d", "-1,0,5,5", "5,5,1,1", "0,0,nan,4", "0,0,inf,4", ""])
def test_bad_boxes_are_usage_errors(spec):
    with pytest.raises(UsageError):
        parse_box(spec)


def test_ignore_over_a_found_region_removes_exactly_that_region():
    found = _run()["regions"]
    first = found[0]
    ignored = _run("--ignore", ",".join(map(str, first["bbox"])))
    assert [(r["bbox"], r["area"]) for r in ignored["regions"]] == [(r["bbox"], r["area"]) for r in found[1:]]
    assert [r["id"] for r in ignored["regions"]] == list(range(1, len(found)))
    facts = ignored["settings"]["ignore"]
    assert facts["boxes"] == [first["bbox"]] and facts["boxes_px"] == [first["bbox"]]
    assert 0 < facts["ignored_share"] < 1


def test_a_mask_png_ignores_what_is_white(tmp_path):
    found = _run()["regions"]
    x0, y0, x1, y1 = found[1]["bbox"]
    mask = np.zeros((512, 512), np.uint8)
    mask[y0:y1, x0:x1] = 255
    Image.fromarray(mask).resize((256, 256), Image.NEAREST).save(tmp_path / "m.png")  # resized to the image
    ignored = _run("--ignore-mask", str(tmp_path / "m.png"))
    assert [r["bbox"] for r in ignored["regions"]] == [found[0]["bbox"], found[2]["bbox"]]
    assert ignored["settings"]["ignore"]["mask"] == str(tmp_path / "m.png")


def test_a_missing_mask_is_one_line(tmp_path):
    res = CliRunner().invoke(cli, ["run", *PAIR, "--ignore-mask", str(tmp_path / "none.png")])
    assert res.exit_code == 2 and len(res.stderr.strip().splitlines()) == 1


def test_ignored_pixels_never_make_a_region():
    """A change straddling the ignored box: what is found lies outside it, and nothing grows into it."""
    rng = np.random.default_rng(0)
    left = rng.integers(90, 110, (200, 200, 3), dtype=np.uint8)
    right = left.copy()
    right[40:120, 40:160] = (250, 20, 20)
    box = (60, 50, 140, 110)
    processed = Pipeline(align="none", ignore=IgnoreSpec.parse([box])).process(left, right)
    ignore = processed.images.ignore
    assert ignore[50:110, 60:140].all() and ignore.sum() == 80 * 60
    assert processed.result.regions
    assert not (processed.images.change_mask & ignore).any()
    only = Pipeline(align="none", ignore=IgnoreSpec.parse([(0, 0, 1, 1)])).process(left, right)
    assert only.result.regions == ()


def test_a_pair_adds_its_own_ignore_and_the_settings_say_so():
    pipeline = Pipeline(align="none", ignore=IgnoreSpec.parse(["0,0,10,10"]))
    assert pipeline.settings()["ignore"] == {"boxes": [[0, 0, 10, 10]], "mask": None}
    found = pipeline.process(*PAIR)
    x0, y0, x1, y1 = found.result.regions[0].bbox
    again = pipeline.process(*PAIR, ignore=IgnoreSpec.parse([(x0, y0, x1, y1)]))
    assert again.result.settings["ignore"]["boxes"] == [[0, 0, 10, 10], [x0, y0, x1, y1]]
    assert len(again.result.regions) == len(found.result.regions) - 1


def test_model_regions_mostly_inside_are_dropped():
    ignored = np.zeros((100, 100), bool)
    ignored[:, :50] = True
    regions = [Region(1, (0, 0, 40, 40), 0.9, 100), Region(2, (30, 0, 90, 40), 0.8, 100),
               Region(3, (10, 0, 70, 10), 0.7, 100)]
    kept = drop_ignored(regions, ignored)
    assert [(r.id, r.bbox) for r in kept] == [(1, (30, 0, 90, 40))]  # (10..70): 40/60 >= IGNORED_SHARE
    assert IGNORED_SHARE <= 40 / 60


def test_the_annotated_picture_shades_ignored_pixels(tmp_path):
    res = CliRunner().invoke(cli, ["run", *PAIR, "--ignore", "0.8,0.8,1,1", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    pic = np.asarray(Image.open(tmp_path / "examples.png").convert("RGB"))
    left = np.asarray(Image.open(PAIR[0]).convert("RGB"))
    assert (pic[480:512, 480:512] != left[480:512, 480:512]).any()  # shaded
    assert (pic[300:320, 10:30] == left[300:320, 10:30]).all()  # elsewhere untouched
    right_side = pic[:, 512 + 20:]
    assert (right_side[480:512, 480:512] != np.asarray(Image.open(PAIR[1]).convert("RGB"))[480:512, 480:512]).any()
