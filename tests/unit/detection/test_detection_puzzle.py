"""What broke pixel-exact puzzle pairs, built small: a faint edit, a border edit next to another edit, a row
of small lamps, and a moved light alone; an aerial tile with a broad change is warned. Each detector case
fails on the detector before this work (a faint edit as slivers, neighbouring edits merged into one box, a
lamp row split into several)."""

import cv2
import numpy as np

from imgdiff_rt.evaluation.evaluate import iou
from imgdiff_rt.detectors.pixel.detector import PixelConfig, detect_pixels
from imgdiff_rt.result import Region, Result

from helpers import textured


def _tint(img, box, delta_lab):
    x0, y0, x1, y1 = box
    lab = cv2.cvtColor(img[y0:y1, x0:x1].astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    rgb = cv2.cvtColor(lab + np.float32(delta_lab), cv2.COLOR_LAB2RGB)
    out = img.copy()
    out[y0:y1, x0:x1] = np.clip(rgb * 255 + 0.5, 0, 255).astype(np.uint8)
    return out


def _boxes(left, right):
    return [r.bbox for r in detect_pixels(left, right, PixelConfig()).regions]


def test_a_faint_edit_is_one_whole_region():
    left = textured(240, 320, seed=5)
    x0, y0, x1, y1 = 120, 80, 180, 140
    lab = cv2.cvtColor(left[y0:y1, x0:x1].astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    ramp = np.linspace(0.55, 1.45, x1 - x0, dtype=np.float32)[None, :, None]  # deltaE about 5 to 12
    right = left.copy()
    right[y0:y1, x0:x1] = np.clip(cv2.cvtColor(lab + ramp * np.float32([0, 6.5, -5.5]), cv2.COLOR_LAB2RGB) * 255
                                  + 0.5, 0, 255).astype(np.uint8)
    boxes = _boxes(left, right)
    assert len(boxes) == 1 and iou(boxes[0], (120, 80, 180, 140)) >= 0.7


def test_a_border_edit_beside_another_edit_is_its_own_region():
    left = textured(480, 640, seed=6)
    right = _tint(left, (0, 190, 60, 270), (0.0, -12.0, 10.0))  # touches the left border
    right = _tint(right, (77, 195, 137, 265), (0.0, 12.0, 12.0))  # 17 px (2% of the diagonal) to its right
    boxes = sorted(_boxes(left, right))
    assert len(boxes) == 2
    assert boxes[0][0] == 0 and iou(boxes[0], (0, 190, 60, 270)) >= 0.6 and iou(boxes[1], (77, 195, 137, 265)) >= 0.6


def test_a_row_of_lamps_is_one_region():
    left = textured(240, 320, seed=7)
    right = left.copy()
    for k in range(8):  # lamps of 5 px radius, 22 px apart along a roof line: the closing joins them thinly
        cv2.circle(right, (50 + 22 * k, 100), 5, (250, 230, 90), -1)
    boxes = _boxes(left, right)
    assert len(boxes) == 1 and iou(boxes[0], (45, 95, 210, 106)) >= 0.6


def test_a_moved_light_alone_is_no_change():
    """A soft shadow on a pair that also changed exposure (so the light is not 'unchanged')."""
    left = textured(240, 320, seed=8)
    yy, xx = np.mgrid[0:240, 0:320]
    shadow = 1 - 0.3 * np.exp(-(((xx - 160) / 45.0) ** 2 + ((yy - 120) / 30.0) ** 2))
    right = np.clip(left * shadow[..., None] * 1.1 + 4, 0, 255).astype(np.uint8)
    assert _boxes(left, right) == []


def test_aerial_tile_with_broad_change_is_warned():
    from imgdiff_rt.words.caveats import AERIAL_BROAD_SHARE, caveats

    def result(share):
        side = int(round((share * 100 * 100) ** 0.5))
        region = Region(id=1, bbox=(0, 0, side, side), score=1.0, area=side * side, source="pixel")
        return Result(id="t", left="a", right="b", size=(100, 100), settings={"detector": "pixel"},
                      regions=(region,))
    assert any("aerial" in w for w in caveats(result(AERIAL_BROAD_SHARE + 0.05)))
    assert not any("aerial" in w for w in caveats(result(AERIAL_BROAD_SHARE - 0.1)))
