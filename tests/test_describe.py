import numpy as np
import pytest

from imgdiff_rt.describe import classify_change, colour_name, position_words, size_words, summary_line, _lab
from imgdiff_rt.pipeline import Pipeline

from helpers import flat, textured


def _mask(shape, box):
    m = np.zeros(shape[:2], bool)
    m[box[1]:box[3], box[0]:box[2]] = True
    return m


@pytest.mark.parametrize("rgb,name", [((200, 30, 30), "red"), ((30, 60, 210), "blue"), ((245, 245, 245), "white"),
                                      ((10, 10, 10), "black"), ((40, 170, 50), "green"), ((128, 128, 128), "gray")])
def test_colour_names(rgb, name):
    lab = _lab(np.array([[rgb]], np.uint8))[0, 0]
    assert colour_name(lab) == name


@pytest.mark.parametrize("box,words", [((0, 0, 30, 30), "top left"), ((135, 85, 165, 115), "centre"),
                                       ((270, 170, 300, 200), "bottom right"), ((140, 0, 160, 20), "top"),
                                       ((0, 90, 20, 110), "left")])
def test_position_words(box, words):
    assert position_words(box, (300, 200)) == words


def test_size_words_report_the_share():
    assert size_words(510, (300, 200)) == "small, 0.9% of the image"
    assert size_words(600, (300, 200)) == "medium, 1.0% of the image"
    assert size_words(30, (300, 200)).startswith("tiny")


KIND_CASES = [
    ("appeared", lambda l, r: r.__setitem__((slice(80, 120), slice(130, 170)), (200, 30, 30))),
    ("disappeared", lambda l, r: l.__setitem__((slice(80, 120), slice(130, 170)), (30, 60, 210))),
]


@pytest.mark.parametrize("kind,edit", KIND_CASES)
def test_object_appearing_or_disappearing_on_a_uniform_surface(kind, edit):
    left, right = flat(), flat()
    edit(left, right)
    result = Pipeline()(left, right)
    assert len(result.regions) == 1
    assert f"object {kind}" in result.description
    assert result.regions[0].description.startswith("Centre (medium, ")
    assert ("appears in the right image" if kind == "appeared" else "is gone from the right image") in \
        result.regions[0].description


def test_recolour_names_both_colours():
    left = textured()
    left[80:120, 130:170] = (200, 30, 30)
    right = left.copy()
    right[80:120, 130:170] = (30, 60, 210)
    result = Pipeline()(left, right)
    assert "colour changed from red to blue" in result.regions[0].description
    assert result.description == "1 difference: centre (colour red -> blue)."


def test_brighter_and_darker():
    left = textured()
    left[80:120, 130:170] = (100, 100, 100)
    right = left.copy()
    right[80:120, 130:170] = (170, 170, 170)
    m = _mask(left.shape, (130, 80, 170, 120))
    assert classify_change(_lab(left), _lab(right), m).kind == "brighter"
    assert classify_change(_lab(right), _lab(left), m).kind == "darker"


def test_summary_lines():
    assert summary_line([]) == "No differences found."
    assert summary_line(["top left (content changed)"]) == "1 difference: top left (content changed)."
    assert summary_line(["a", "b", "c"]).startswith("3 differences: a, b, c")


def test_identical_images_summary():
    img = textured()
    result = Pipeline()(img, img)
    assert result.regions == () and result.description == "No differences found."
