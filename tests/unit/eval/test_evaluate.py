import json

import numpy as np
import pytest
from PIL import Image

from imgdiff_rt.errors import TruthError
from imgdiff_rt.evaluation.evaluate import Tally, iou, load_truth, match


def test_iou():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0


def test_match_rules_iou_or_centre_inside_and_one_to_one():
    truths = [(10, 10, 20, 20)]
    assert match([(12, 12, 22, 22)], truths)  # IoU 0.47
    assert match([(0, 0, 200, 200)], truths)  # IoU 0.0025 but the centre lies inside
    assert not match([(19, 19, 60, 60)], truths)  # overlaps a corner only
    # Two predictions on one truth: one match, the better one.
    m = match([(0, 0, 200, 200), (10, 10, 21, 21)], truths)
    assert len(m) == 1 and m[0][0] == 1
    # One big prediction over two truths: still one match.
    assert len(match([(0, 0, 100, 100)], [(10, 10, 20, 20), (50, 50, 60, 60)])) == 1


def test_tally_pools_pairs():
    t = Tally()
    t.add([(0, 0, 10, 10), (50, 50, 60, 60)], [(0, 0, 10, 10)], 5.0)
    t.add([], [(0, 0, 10, 10)], 7.0)
    s = t.summary()
    assert (s["precision"], s["recall"]) == (0.5, 0.5) and s["f1"] == 0.5
    assert s["median_ms"] == 6.0 and s["mean_iou"] == 1.0 and s["pairs"] == 2
    empty = Tally()
    empty.add([], [], 1.0)
    assert empty.summary()["precision"] == 1.0 and empty.summary()["recall"] == 1.0


def test_truth_from_json_and_mask(tmp_path):
    (tmp_path / "t.json").write_text(json.dumps({"changes": [{"kind": "remove", "bbox": [1, 2, 30, 40]}]}))
    assert load_truth(tmp_path / "t.json") == [(1, 2, 30, 40)]
    mask = np.zeros((64, 64), np.uint8)
    mask[5:15, 5:25] = 255
    mask[40:60, 40:50] = 255
    mask[0, 63] = 255  # a single labelled pixel is noise, not a truth item
    Image.fromarray(mask).save(tmp_path / "m.png")
    assert sorted(load_truth(tmp_path / "m.png")) == [(5, 5, 25, 15), (40, 40, 50, 60)]


@pytest.mark.parametrize("content", ["not json", '{"changes": [{"bbox": [5, 5, 1, 1]}]}', '{"other": 1}'])
def test_bad_truth(tmp_path, content):
    (tmp_path / "t.json").write_text(content)
    with pytest.raises(TruthError):
        load_truth(tmp_path / "t.json")
