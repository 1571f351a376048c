import numpy as np
import pytest
from skimage import data

from imgdiff_rt.errors import UsageError
from imgdiff_rt.evaluation.synth import LEVEL_AREA, TRUTH_SCHEMA, synthesize


@pytest.fixture(scope="module")
def chelsea():
    return np.asarray(data.chelsea())


def test_same_seed_same_pair_other_seed_other_pair(chelsea):
    a, b = synthesize(chelsea, 3, 1, seed=5), synthesize(chelsea, 3, 1, seed=5)
    assert (a.right == b.right).all() and a.truth == b.truth
    c = synthesize(chelsea, 3, 1, seed=6)
    assert not (a.right == c.right).all()


@pytest.mark.parametrize("level", [1, 2])
def test_truth_boxes_cover_exactly_the_changed_pixels(chelsea, level):
    pair = synthesize(chelsea, 3, level, seed=1)
    assert pair.truth["schema"] == TRUTH_SCHEMA and len(pair.truth["changes"]) == 3
    assert (pair.left == chelsea).all()
    changed = np.abs(pair.left.astype(int) - pair.right.astype(int)).max(axis=2) > 0
    inside = np.zeros_like(changed)
    h, w = changed.shape
    for c in pair.truth["changes"]:
        x0, y0, x1, y1 = c["bbox"]
        inside[max(0, y0 - 4):y1 + 4, max(0, x0 - 4):x1 + 4] = True
        assert c["kind"] in ("remove", "recolour", "paste")
        assert c["mean_delta_e"] >= 12
        lo, hi = LEVEL_AREA[level]
        assert c["area"] <= 2 * hi * h * w  # dilated truth can exceed the segment slightly, never wildly
    # Nothing changed outside the truth boxes (inpainting and pasting stay local).
    assert not (changed & ~inside).any()


def test_level_two_changes_are_smaller(chelsea):
    big = np.mean([c["area"] for s in range(3) for c in synthesize(chelsea, 3, 1, s).truth["changes"]])
    small = np.mean([c["area"] for s in range(3) for c in synthesize(chelsea, 3, 2, s).truth["changes"]])
    assert small < big / 2


@pytest.mark.parametrize("kwargs", [dict(level=4), dict(spots=0), dict(jitter="wobbly")])
def test_bad_settings(chelsea, kwargs):
    with pytest.raises(UsageError):
        synthesize(chelsea, **{"spots": 3, "level": 1, **kwargs})


def test_a_photo_with_no_suitable_region_is_a_clear_error():
    with pytest.raises(UsageError, match="no region"):
        synthesize(np.full((100, 100, 3), 127, np.uint8), 3, 1, seed=0)
