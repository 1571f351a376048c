"""The measured descriptions: colour names, the kind of change from both sides, related changes (moved,
copied), the sentences, and the summary line."""

import numpy as np
import pytest

from imgdiff_rt.pipeline import Pipeline
from imgdiff_rt.words.colours import TYPICAL, name_surface, oklab, oklab_to_rgb
from imgdiff_rt.words.describe import position_words, size_words, summary_line
from imgdiff_rt.words.kinds import classify

from helpers import flat, textured


def _surface(rgb, n=60):
    return oklab(np.array([rgb] * n, np.uint8))


# Colours as people name them, including the muted and shaded ones the nearest-prototype rule got wrong
# (a muted blue read "gray", CLEVR's renders "dark green"/"brown").
COLOUR_CASES = [
    ((200, 30, 30), "red"), ((30, 60, 210), "blue"), ((245, 245, 245), "white"), ((10, 10, 10), "black"),
    ((40, 170, 50), "green"), ((128, 128, 128), "gray"), ((100, 122, 178), "blue"), ((162, 113, 74), "brown"),
    ((173, 35, 35), "red"), ((42, 75, 215), "blue"), ((29, 105, 20), "green"), ((126, 75, 42), "brown"),
    ((129, 38, 192), "purple"), ((41, 208, 208), "cyan"), ((255, 238, 51), "yellow"), ((87, 87, 87), "gray"),
    ((255, 165, 0), "orange"), ((255, 192, 203), "pink"), ((0, 0, 128), "blue"), ((128, 0, 128), "purple"),
]


@pytest.mark.parametrize("rgb,name", COLOUR_CASES)
def test_colour_names(rgb, name):
    assert name_surface(_surface(rgb)).term == name


def test_lightness_modifiers():
    assert name_surface(_surface((0, 0, 110))).words == "dark blue"
    assert name_surface(_surface((135, 206, 235))).words == "light blue"


def test_the_mode_not_the_mean_names_a_shaded_object_with_highlights():
    """A blue ball: lit and shaded sides, white specular highlights and grey floor between its parts. The mean
    of these is a grey-blue; people say blue."""
    rng = np.random.default_rng(0)
    shades = [(int(40 * k), int(70 * k), int(200 * k)) for k in rng.uniform(0.45, 1.1, 300)]
    pixels = [tuple(min(255, c) for c in s) for s in shades] + [(250, 250, 250)] * 60 + [(120, 120, 120)] * 120
    assert name_surface(oklab(np.array(pixels, np.uint8))).term == "blue"


def test_too_small_or_too_dark_is_said_not_guessed():
    assert name_surface(_surface((200, 30, 30), n=5)).term is None
    dark = name_surface(_surface((18, 4, 30)))
    assert dark.term is None and dark.reason == "too dark"


@pytest.mark.parametrize("term", sorted(TYPICAL))
def test_each_typical_colour_reads_as_its_name(term):
    hue, chroma, (lo, hi) = TYPICAL[term]
    for light in (lo, (lo + hi) / 2, hi):
        lab = np.array([[light, chroma * np.cos(np.radians(hue)), chroma * np.sin(np.radians(hue))]] * 40,
                       np.float32)
        assert name_surface(oklab(oklab_to_rgb(lab))).term == term


@pytest.mark.parametrize("box,words", [((0, 0, 30, 30), "top left"), ((135, 85, 165, 115), "centre"),
                                       ((270, 170, 300, 200), "bottom right"), ((140, 0, 160, 20), "top"),
                                       ((0, 90, 20, 110), "left")])
def test_position_words(box, words):
    assert position_words(box, (300, 200)) == words


def test_size_words_report_the_share():
    assert size_words(510, (300, 200)) == "small, 0.9% of the image"
    assert size_words(600, (300, 200)) == "medium, 1.0% of the image"
    assert size_words(30, (300, 200)).startswith("tiny")


def test_object_appearing_on_a_uniform_surface():
    left, right = flat(), flat()
    right[80:120, 130:170] = (200, 30, 30)
    result = Pipeline()(left, right)
    assert len(result.regions) == 1
    assert result.regions[0].change["kind"] == "appeared"
    assert result.regions[0].description.startswith("Centre (medium, ")
    assert result.regions[0].description.endswith("of the image): a red object appears that is not in the left image.")
    assert result.description == "1 difference: centre (red object added)."


def test_object_disappearing_from_a_uniform_surface():
    left, right = flat(), flat()
    left[80:120, 130:170] = (30, 60, 210)
    result = Pipeline()(left, right)
    assert result.regions[0].change["kind"] == "disappeared"
    assert "the blue object in the left image is gone" in result.regions[0].description


def test_recolour_names_both_colours():
    left = textured()
    left[80:120, 130:170] = (200, 30, 30)
    right = left.copy()
    right[80:120, 130:170] = (30, 60, 210)
    result = Pipeline()(left, right)
    assert "the red object turned blue" in result.regions[0].description
    assert result.description == "1 difference: centre (red -> blue)."
    change = result.regions[0].change
    assert (change["colour_left"]["name"], change["colour_right"]["name"]) == ("red", "blue")


def test_a_shaded_recolour_keeps_its_shape_and_reads_as_a_recolour():
    left = textured()
    yy = np.linspace(0.6, 1.0, 40)[:, None, None]
    left[80:120, 130:170] = (np.array([220, 200, 40]) * yy).astype(np.uint8)  # a shaded yellow
    right = left.copy()
    right[80:120, 130:170] = (np.array([60, 80, 220]) * yy).astype(np.uint8)  # the same shading, blue
    change = Pipeline()(left, right).regions[0].change
    assert change["kind"] == "recoloured"
    assert (change["colour_left"]["name"], change["colour_right"]["name"]) == ("yellow", "blue")


def test_brighter_and_darker():
    left = textured()
    left[80:120, 130:170] = (100, 100, 100)
    left[90:110, 140:160] = (80, 80, 80)  # a shape inside, so both sides share it
    right = left.copy()
    right[80:120, 130:170] = np.clip(left[80:120, 130:170].astype(int) + 70, 0, 255)
    mask = np.zeros(left.shape[:2], bool)
    mask[80:120, 130:170] = True
    assert classify(left, right, mask).kind == "brighter"
    assert classify(right, left, mask).kind == "darker"


def test_a_moved_object_is_one_move_not_a_removal_and_an_addition():
    left = textured()
    rng = np.random.default_rng(3)
    thing = rng.integers(0, 255, (30, 30, 3), np.uint8)
    thing[..., 0] = 220  # a reddish textured object
    background = left.copy()
    left[40:70, 40:70] = thing
    right = background.copy()
    right[150:180, 230:260] = thing
    result = Pipeline()(left, right)
    kinds = sorted(r.change["kind"] for r in result.regions)
    assert kinds == ["moved", "moved"]
    arrived = next(r for r in result.regions if "moved_from" in r.change)
    assert "moved here from the top left" in arrived.description


def test_a_pasted_copy_names_where_it_was_copied_from():
    left = textured()
    rng = np.random.default_rng(5)
    left[30:70, 30:80] = rng.integers(0, 255, (40, 50, 3), np.uint8)  # a detailed patch, in both images
    right = left.copy()
    right[150:190, 220:270] = left[30:70, 30:80]
    result = Pipeline()(left, right)
    assert len(result.regions) == 1
    change = result.regions[0].change
    assert change["kind"] == "copied"
    x0, y0, x1, y1 = change["copy_of"]
    assert abs(x0 - 30) <= 3 and abs(y0 - 30) <= 3
    assert "a copy of the one at the top left" in result.regions[0].description


def test_summary_lines():
    assert summary_line([]) == "No differences found."
    assert summary_line(["top left (texture or detail changed)"]) == \
        "1 difference: top left (texture or detail changed)."
    assert summary_line(["a", "b", "c"]).startswith("3 differences: a, b, c")


def test_nothing_found_under_a_warning_is_never_a_bare_none():
    line = summary_line([], ("registration fitted poorly",))
    assert line != "No differences found." and "warning" in line


def test_identical_images_summary():
    img = textured()
    result = Pipeline()(img, img)
    assert result.regions == () and result.description == "No differences found." and result.warnings == ()
