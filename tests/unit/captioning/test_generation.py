"""Generation's bookkeeping: distinct crops keep their first-seen order and map back, and token agreement is
counted as documented."""

from __future__ import annotations

import numpy as np
import pytest

from imgdiff_rt.captioners.generation import distinct_images, token_agreement, until_eos


def test_distinct_images_keeps_first_seen_order_and_maps_back():
    a = np.zeros((4, 5, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0] = 1
    c = np.zeros((5, 4, 3), np.uint8)  # same bytes as a, other shape: a different crop
    distinct, inverse = distinct_images([a, b, a.copy(), c, b])
    assert len(distinct) == 3 and inverse == [0, 1, 0, 2, 1]
    assert all(np.array_equal(distinct[i], x) for i, x in zip(inverse, [a, b, a, c, b]))


@pytest.mark.parametrize("ref,got,prefix,exact", [
    ([[5, 6, 2, 0]], [[5, 6, 2, 9]], 1.0, 1.0),  # tokens after eos (2) do not count
    ([[5, 6, 7, 2]], [[5, 9, 7, 2]], 0.25, 0.0),  # diverges at the second token
    ([[5, 2], [7, 7, 2]], [[5, 2], [8, 7, 2]], 0.5, 0.5),
])
def test_token_agreement(ref, got, prefix, exact):
    a = token_agreement(ref, got, eos=2)
    assert a["mean_prefix_agreement"] == pytest.approx(prefix) and a["exact_sequences"] == pytest.approx(exact)
    assert until_eos([1, 2, 3], 2) == [1, 2]
