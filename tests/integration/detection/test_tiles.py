"""Pairs above the pixel cap: the strips give the whole-image regions where both fit, the cap's message names the
tiled path, and a tiled pipeline reads a pair over the cap and says where it is."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest

from imgdiff_rt.detectors.pixel import tiles as T
from imgdiff_rt.bench.exact_pairs import make_pair
from imgdiff_rt.errors import ImageTooLargeError, UsageError
from imgdiff_rt.detectors.pixel.detector import PixelConfig, detect_pixels


def _facts(found):
    return [(r.bbox, round(r.score, 6), r.area, round(r.mean_diff, 4), round(r.peak_diff, 4), r.mask)
            for r in found.regions]


@pytest.fixture(scope="module")
def pair():
    left, right, _ = make_pair(1280, 800, seed=5)
    right[100:700, 50:90] = 255 - right[100:700, 50:90]  # taller than the overlap: pieces in four strips
    return left, right


def _strips(left, right, lines=None):
    with mock.patch.object(T, "detect_windowed", lambda *a, **k: None):  # the strips, not the windows
        return T.detect_large(left, right, PixelConfig(), progress=None if lines is None else lines.append, strip_pixels=200_000)


def test_strips_give_the_whole_image_regions(pair):
    left, right = pair
    lines = []
    got, whole = _strips(left, right, lines), detect_pixels(left, right, PixelConfig())
    assert len(whole.regions) >= 5 and _facts(got) == _facts(whole)
    assert np.array_equal(got.mask, whole.mask)
    assert lines[0].startswith("tiled: strip 1/4") and len(lines) == 4


def test_strips_on_a_noisy_pair_find_the_same_changes(pair):
    """Noise everywhere: light and noise are fitted per strip, so edges may move by a pixel or two."""
    from imgdiff_rt.runtime.segment_decode import box_iou

    left, right = pair
    right = np.clip(right + np.random.default_rng(0).normal(0, 2, right.shape).round(), 0, 255).astype(np.uint8)
    got, whole = _strips(left, right), detect_pixels(left, right, PixelConfig())
    assert len(got.regions) == len(whole.regions) >= 5
    ious = box_iou(np.array([r.bbox for r in got.regions], float), np.array([r.bbox for r in whole.regions], float))
    assert np.diag(ious).min() >= 0.95


def test_the_cap_names_the_tiled_path_and_a_tiled_pipeline_reads_over_it(pair):
    from imgdiff_rt.pipeline import Pipeline

    left, right = pair
    with pytest.raises(ImageTooLargeError, match="--tiled"):
        Pipeline(max_pixels=500_000)(left, right)
    lines = []
    tiled = Pipeline(max_pixels=500_000, tiled=True, progress=lines.append)(left, right)
    plain = Pipeline()(left, right)
    assert [r.bbox for r in tiled.regions] == [r.bbox for r in plain.regions]
    assert tiled.settings["tiled"] is True and "tiled" in tiled.settings["alignment"]["note"]
    with pytest.raises(UsageError, match="pixel detector only"):
        Pipeline(detector="segment", tiled=True, models="/nonexistent")
