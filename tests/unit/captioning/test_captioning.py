"""The captioning stage's rules without a model: exact-match captions ignore case and punctuation, and the
square window (and padding) around a region's crop."""

from __future__ import annotations

import numpy as np

from imgdiff_rt.captioners.blip import ExactTextMatch
from imgdiff_rt.detectors.model.crops import pad_to_square, square_window


def test_exact_match_normalises_case_and_punctuation():
    m = ExactTextMatch()
    assert list(m.scores(["A red car.", "a dog"], ["a  red car", "a cat"])) == [1.0, 0.0]


# ---- crops, options, errors ----------------------------------------------------------------------------
def test_square_window_policy():
    # side 40 * 1.3 = 52 around the centre (30, 25); shifted down to stay inside the top edge
    assert square_window((10, 10, 50, 40), (180, 120)) == (4, 0, 56, 52)
    for box in [(0, 0, 5, 5), (170, 100, 180, 120), (0, 0, 180, 120), (20, 30, 160, 40)]:
        x0, y0, x1, y1 = square_window(box, (180, 120))
        assert 0 <= x0 < x1 <= 180 and 0 <= y0 < y1 <= 120
        assert (x1 - x0 == y1 - y0) or (x1 - x0 == 180 or y1 - y0 == 120)
        assert x0 <= box[0] and y0 <= box[1] and x1 >= box[2] and y1 >= box[3]
    sq = pad_to_square(np.zeros((10, 30, 3), np.uint8), (1, 2, 3))
    assert sq.shape == (30, 30, 3) and tuple(sq[0, 0]) == (1, 2, 3) and sq[15, 15].sum() == 0
