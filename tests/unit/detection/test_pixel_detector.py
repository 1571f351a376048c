import numpy as np
import pytest

from imgdiff_rt.errors import UsageError
from imgdiff_rt.detectors.pixel.detector import (PixelConfig, Threshold, clean_mask, detect_pixels, difference_map,
                                       merge_boxes, region_score, threshold_value)

from helpers import flat, textured


def test_difference_map_units():
    a = flat(20, 20, (128, 128, 128))
    b = flat(20, 20, (128, 128, 160))
    lab = difference_map(a, b, "lab", 0)
    absd = difference_map(a, b, "absdiff", 0)
    assert np.allclose(absd, 32, atol=0.01)
    assert 10 < lab.mean() < 30  # a clear but moderate colour shift in deltaE
    assert difference_map(a, a, "lab", 1.5).max() == 0


@pytest.mark.parametrize("spec,kind,value", [("otsu", "otsu", None), ("percentile:99", "percentile", 99.0),
                                             ("12.5", "fixed", 12.5), (20, "fixed", 20.0)])
def test_threshold_parse(spec, kind, value):
    t = Threshold.parse(spec)
    assert (t.kind, t.value) == (kind, value)


@pytest.mark.parametrize("spec", ["", "abc", "percentile:", "percentile:100", "-3", "0", "nan"])
def test_threshold_parse_rejects(spec):
    with pytest.raises(UsageError):
        Threshold.parse(spec)


def test_threshold_values():
    diff = np.zeros((100, 100), np.float32)
    diff[:10] = 50.0
    assert threshold_value(diff, Threshold.parse("7"), noise_floor=8.0) == 7.0  # fixed: exactly as asked
    otsu = threshold_value(diff, Threshold.parse("otsu"), noise_floor=8.0)
    assert 8.0 <= otsu < 50.0
    assert threshold_value(diff, Threshold.parse("percentile:95"), noise_floor=8.0) == 50.0
    # An all-quiet map never drops the threshold under the noise floor.
    assert threshold_value(np.zeros((10, 10), np.float32), Threshold.parse("otsu"), 8.0) == 8.0


def test_clean_mask_removes_speckle_and_joins_pieces():
    m = np.zeros((60, 60), bool)
    m[5, 5] = True  # speckle
    m[20:40, 20:29] = True
    m[20:40, 31:40] = True  # same object, split by a 2 px gap
    cleaned = clean_mask(m, open_px=3, close_px=7)
    assert not cleaned[5, 5]
    assert cleaned[30, 30]


def test_merge_boxes_groups_by_gap():
    boxes = np.array([[0, 0, 10, 10], [12, 0, 20, 10], [100, 100, 110, 110]])
    assert list(merge_boxes(boxes, gap=3)) == [0, 0, 1]
    assert len(set(merge_boxes(boxes, gap=1))) == 3


def test_region_score_prefers_strong_and_large():
    assert region_score(40, 5000, 100_000, "lab") > region_score(15, 5000, 100_000, "lab")
    assert region_score(40, 5000, 100_000, "lab") > region_score(40, 20, 100_000, "lab")
    assert 0 <= region_score(1000, 10**6, 10**6, "lab") <= 1


def test_identical_images_give_no_regions():
    img = textured()
    assert detect_pixels(img, img, PixelConfig()).regions == ()


def test_one_square_gives_one_tight_region():
    left = textured()
    right = left.copy()
    right[100:140, 200:250] = (250, 20, 20)
    found = detect_pixels(left, right, PixelConfig())
    assert len(found.regions) == 1
    x0, y0, x1, y1 = found.regions[0].bbox
    assert abs(x0 - 200) <= 3 and abs(y0 - 100) <= 3 and abs(x1 - 250) <= 3 and abs(y1 - 140) <= 3
    assert found.regions[0].area == pytest.approx(40 * 50, rel=0.2)
    assert found.regions[0].peak_diff >= found.regions[0].mean_diff > 14


def test_max_regions_min_area_and_ordering():
    left = flat(300, 300)
    right = left.copy()
    for k in range(6):
        s = 6 + 4 * k  # squares of increasing size
        right[20 + 45 * k: 20 + 45 * k + s, 40:40 + s] = (0, 0, 0)
    found = detect_pixels(left, right, PixelConfig(max_regions=3, merge="none"))
    areas = [r.area for r in found.regions]
    assert len(areas) == 3 and areas == sorted(areas, reverse=True)
    assert [r.id for r in found.regions] == [1, 2, 3]
    assert len(detect_pixels(left, right, PixelConfig(min_area=500, merge="none")).regions) == 2


def test_valid_mask_limits_the_comparison():
    left = textured()
    right = left.copy()
    right[:, :40] = 0
    valid = np.ones(left.shape[:2], bool)
    valid[:, :50] = False
    assert detect_pixels(left, right, PixelConfig(), valid).regions == ()


@pytest.mark.parametrize("kwargs", [dict(metric="hsv"), dict(threshold="x"), dict(blur_sigma=-1),
                                    dict(min_area=0), dict(max_regions=0), dict(merge_gap=2.0)])
def test_config_rejects_bad_values(kwargs):
    with pytest.raises(UsageError):
        PixelConfig(**kwargs)


def test_absdiff_metric_has_its_own_default_threshold():
    assert str(PixelConfig(metric="absdiff").resolved_threshold()) != str(PixelConfig().resolved_threshold())
    left = textured()
    right = left.copy()
    right[50:90, 50:90] = 255 - right[50:90, 50:90]
    assert len(detect_pixels(left, right, PixelConfig(metric="absdiff")).regions) == 1
