"""What keeps the CLI's start-up light, checked in process: the lazy command list equals the imported
commands, the package's attributes load on first use, and the label statistics used instead of SciPy's give
SciPy's numbers."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from imgdiff_rt.detectors.pixel.label_stats import label_boxes, label_sums

from helpers import LEFT, RIGHT


def test_lazy_listing_matches_the_imported_commands():
    import imgdiff_rt.cli.main as main

    lazy = CliRunner().invoke(main.cli, ["--help"]).output
    for name in main.COMMANDS:  # import every command; the listing must not change
        assert main.cli.commands[name].name == name
    assert CliRunner().invoke(main.cli, ["--help"]).output == lazy
    assert sorted(main.cli.commands) == sorted(main.COMMANDS)


def test_package_attributes_load_on_first_use():
    import imgdiff_rt

    assert imgdiff_rt.Pipeline.__name__ == "Pipeline"
    with pytest.raises(AttributeError, match="no_such_name"):
        imgdiff_rt.no_such_name  # noqa: B018


def _label_images():
    from imgdiff_rt.detectors.pixel.objects import split_objects
    from imgdiff_rt.imageio import read_image

    rng = np.random.default_rng(7)
    left = read_image(LEFT).astype(np.int16)
    right = read_image(RIGHT).astype(np.int16)
    real = split_objects(np.abs(left - right).max(axis=2) > 30)
    noisy = split_objects(rng.random((90, 70)) > 0.6)
    gaps = (5, np.where(rng.random((40, 50)) > 0.5, rng.integers(1, 6, (40, 50)), 0).astype(np.int32))
    gaps[1][gaps[1] == 3] = 0  # a label with no pixel
    return [real, noisy, gaps]


@pytest.mark.parametrize("count_labels", _label_images(), ids=["example-pair", "random-mask", "missing-label"])
def test_label_stats_match_scipy(count_labels):
    from scipy import ndimage

    count, labels = count_labels
    assert count > 0
    values = np.random.default_rng(1).random(labels.shape).astype(np.float32)
    slices = ndimage.find_objects(labels, max_label=count)
    expected = [[s[1].start, s[0].start, s[1].stop, s[0].stop] if s else [0, 0, 0, 0] for s in slices]
    np.testing.assert_array_equal(label_boxes(labels, count), np.array(expected))
    np.testing.assert_array_equal(label_sums(values, labels, count),
                                  ndimage.sum_labels(values, labels, np.arange(1, count + 1)))
