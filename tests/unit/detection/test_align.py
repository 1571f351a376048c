import cv2
import numpy as np

from imgdiff_rt.detectors.registration import register, warp_to_left
from imgdiff_rt.pipeline import Pipeline
from imgdiff_rt.detectors.pixel.detector import PixelConfig, detect_pixels

from helpers import textured


def _shift(img, dx, dy, angle=0.0):
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    m[:, 2] += (dx, dy)
    return cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REFLECT)


def test_registration_recovers_a_camera_shake():
    left = textured(300, 400, seed=3)
    right = _shift(left, 7, -5, angle=1.5)
    alignment = register(left, right)
    assert alignment.method in ("orb", "ecc") and alignment.overlap > 0.9
    warped, valid = warp_to_left(right, alignment)
    err = np.abs(warped.astype(int) - left.astype(int)).mean(axis=2)[valid]
    assert np.median(err) < 3.0


def test_alignment_removes_false_alarms_and_keeps_the_real_change():
    left = textured(300, 400, seed=4)
    changed = left.copy()
    changed[120:170, 180:240] = (20, 200, 30)
    right = _shift(changed, 6, 4, angle=1.0)
    unaligned = detect_pixels(left, right, PixelConfig()).regions
    result = Pipeline(align=True)(left, right)
    assert len(unaligned) > 1  # the shake alone makes pixel differencing light up
    assert len(result.regions) == 1
    x0, y0, x1, y1 = result.regions[0].bbox
    assert abs(x0 - 180) <= 6 and abs(y0 - 120) <= 6 and abs(x1 - 240) <= 6 and abs(y1 - 170) <= 6
    assert result.settings["alignment"]["method"] in ("orb", "ecc")
    assert len(result.settings["alignment"]["matrix"]) == 3


def test_unregistrable_pair_is_reported_not_hidden():
    rng = np.random.default_rng(0)
    left = rng.integers(0, 255, (100, 100, 3), dtype=np.uint8)
    right = rng.integers(0, 255, (100, 100, 3), dtype=np.uint8)
    result = Pipeline(align=True)(left, right)
    assert result.settings["alignment"]["method"] in ("none", "orb", "ecc")
    if result.settings["alignment"]["method"] == "none":
        assert "failed" in result.settings["alignment"]["note"]
