"""Pixel-exact puzzle pairs (synth level 3) and the strong re-shoot jitter on full-size photos: the level
makes the cases it promises (object, border, thin and adjacent edits, a quarter of them faint) and the pixel
detector finds them (F1 at least 0.95 over six pairs); the strong jitter zooms and moves the light (the mild
one does neither); and `synth --level 3 --jitter-strength strong` through the CLI."""

import numpy as np
from click.testing import CliRunner
from skimage import data

from imgdiff_rt.cli.main import cli
from imgdiff_rt.evaluation.evaluate import Tally
from imgdiff_rt.detectors.pixel.detector import PixelConfig, detect_pixels
from imgdiff_rt.evaluation.synth import synthesize


def _boxes(left, right):
    return [r.bbox for r in detect_pixels(left, right, PixelConfig()).regions]


def test_puzzle_level_makes_the_cases_it_promises():
    photo = np.asarray(data.chelsea())
    changes = [c for s in range(4) for c in synthesize(photo, None, 3, seed=s).truth["changes"]]
    h, w = photo.shape[:2]
    assert {c["shape"] for c in changes} == {"object", "border", "thin", "adjacent"}
    assert all(0.003 * h * w <= c["area"] <= 0.02 * h * w for c in changes)
    faint = [c["mean_delta_e"] for c in changes if c["faint"]]
    assert len(faint) >= len(changes) / 4 and all(8 <= d <= 20 for d in faint)
    assert 4 <= len(synthesize(photo, None, 3, seed=9).truth["changes"]) <= 7


def test_puzzle_pairs_are_found():
    tally = Tally()
    for name in ("astronaut", "coffee"):
        photo = np.asarray(getattr(data, name)())
        for seed in range(3):
            pair = synthesize(photo, None, 3, seed=seed)
            tally.add(_boxes(pair.left, pair.right), [tuple(c["bbox"]) for c in pair.truth["changes"]])
    assert tally.f1 >= 0.95, tally.summary()


def test_strong_jitter_zooms_and_moves_the_light():
    pair = synthesize(np.asarray(data.coffee()), 3, 1, seed=2, jitter="strong")
    facts = pair.truth["jitter"]
    assert facts["strength"] == "strong" and abs(facts["zoom"] - 1) >= 0.03 and len(facts["moved_light"]) == 2
    mild = synthesize(np.asarray(data.coffee()), 3, 1, seed=2, jitter=True).truth["jitter"]
    assert mild["zoom"] == 1.0 and "moved_light" not in mild


def test_synth_cli_level_3_and_strong_jitter(tmp_path):
    res = CliRunner().invoke(cli, ["synth", "skimage:chelsea", "--out", str(tmp_path / "p"), "--level", "3",
                                   "--jitter-strength", "strong"])
    assert res.exit_code == 0, res.output
    assert "-l3-js-s0" in res.output and (tmp_path / "p" / "truth.json").exists()
