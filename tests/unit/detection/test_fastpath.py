"""The pixel-exact fast path gives the whole-image detector's regions (boxes, scores, areas, masks) and falls back
to the whole image when a pair does not qualify."""

from __future__ import annotations

import numpy as np
import pytest

from imgdiff_rt.detectors.pixel import windowed as FP
from imgdiff_rt.bench.exact_pairs import make_pair
from imgdiff_rt.detectors.pixel.masks import encode
from imgdiff_rt.detectors.pixel.detector import PixelConfig, detect_pixels

from helpers import LEFT, RIGHT


def _facts(found):
    """What the result JSON shows of each region (it rounds scores to 6 decimals: window sums may differ in the
    last bits of a float from the whole image's, summed in another order)."""
    return [(r.bbox, round(r.score, 6), r.area, round(r.mean_diff, 4), round(r.peak_diff, 4), r.mask)
            for r in found.regions]


def test_window_rle_is_the_whole_image_rle():
    rng = np.random.default_rng(1)
    mask = np.zeros((60, 45), bool)
    mask[10:30, 5:20] = rng.random((20, 15)) > 0.5
    mask[:, 22] = True  # a run that continues from one column into the next
    mask[:4, 23] = True
    assert FP.global_rle(mask[:, 5:24], 5, 0, 45, 60) == encode(mask)
    assert FP.global_rle(np.zeros((3, 3), bool), 2, 2, 45, 60) == encode(np.zeros((60, 45), bool))


@pytest.mark.parametrize("config", [PixelConfig(), PixelConfig(metric="absdiff", photometric="none"),
                                    PixelConfig(merge_gap=0.05, blur_sigma=0.0)])
def test_windows_give_the_whole_image_regions(config):
    left, right, _ = make_pair(1280, 800, seed=5)
    right[:20, -30:] = 255 - right[:20, -30:]  # a change at the image's corner: its own border handling
    whole, fast = detect_pixels(left, right, config), FP.detect_windowed(left, right, config)
    assert fast is not None and len(whole.regions) >= 5
    assert _facts(fast) == _facts(whole)
    assert np.array_equal(fast.mask, whole.mask)
    assert (fast.threshold_used, fast.min_area_used, fast.photometric) == \
        (whole.threshold_used, whole.min_area_used, whole.photometric)


def test_pairs_that_do_not_qualify_run_the_whole_image():
    left, right, _ = make_pair(320, 200, seed=2)
    noisy = np.clip(right.astype(int) + np.random.default_rng(0).integers(-2, 3, right.shape), 0, 255)
    assert FP.detect_windowed(left, noisy.astype(np.uint8), PixelConfig()) is None  # noise everywhere
    assert FP.detect_windowed(left, right, PixelConfig(threshold="otsu")) is None  # a whole-image statistic
    assert FP.detect_windowed(left, right, PixelConfig(), ignore=np.zeros(left.shape[:2], bool)) is None


def test_the_pipeline_result_is_unchanged_on_the_example(monkeypatch):
    from imgdiff_rt import pipeline as P

    fast = P.Pipeline()(LEFT, RIGHT)
    monkeypatch.setattr(P, "detect_windowed", lambda *a, **k: None)
    whole = P.Pipeline()(LEFT, RIGHT)
    assert fast.to_dict()["regions"] == whole.to_dict()["regions"]
    assert fast.description == whole.description
