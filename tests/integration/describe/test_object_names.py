"""Object names in the descriptions: from the bundle's registered real segmenter (COCO YOLOv8n-seg from
../shared) when it is confident on the region, never from random or tiny weights."""

import cv2
import numpy as np
import pytest
from skimage import data

from imgdiff_rt.imageio import read_image
from imgdiff_rt.models.bundle import Bundle
from imgdiff_rt.pipeline import Pipeline
from imgdiff_rt.detectors.model.object_names import class_names, namer_for


@pytest.fixture(scope="module")
def named(registered_segmenter_bundle):
    pipeline = Pipeline(models=registered_segmenter_bundle)
    coffee = read_image(np.asarray(data.coffee()))
    segments = pipeline.object_namer().segments([coffee])[0]
    best = int(np.argmax(segments.scores))
    assert pipeline.object_namer().names[int(segments.classes[best])] == "cup"
    yield pipeline, coffee, segments.masks[best]
    pipeline.close()


def test_a_recoloured_cup_is_named_a_cup(named):
    pipeline, coffee, cup = named
    hsv = cv2.cvtColor(coffee, cv2.COLOR_RGB2HSV)
    hsv[..., 0][cup] = (hsv[..., 0][cup].astype(int) + 90) % 180
    result = pipeline(coffee, cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB))
    region = result.regions[0]
    assert region.change["kind"] == "recoloured"
    assert region.change["object"]["name"] == "cup" and region.change["object"]["score"] >= 0.5
    assert " cup turned " in region.description
    assert result.settings["object_names"]["min_score"] == 0.5


def test_a_removed_cup_is_named_from_the_left_image(named):
    pipeline, coffee, cup = named
    removed = cv2.inpaint(coffee, cv2.dilate(cup.astype(np.uint8), np.ones((9, 9), np.uint8)) * 255, 7,
                          cv2.INPAINT_TELEA)
    region = pipeline(coffee, removed).regions[0]
    assert region.change["kind"] == "disappeared" and region.change["object"]["side"] == "left"
    assert "cup in the left image is gone" in region.description


def test_what_the_segmenter_is_unsure_of_stays_an_object(named):
    pipeline, coffee, _ = named
    right = coffee.copy()
    right[20:60, 20:60] = (30, 60, 210)  # a plain blue square: no COCO class fits
    region = pipeline(coffee, right).regions[0]
    assert "object" not in region.change and " object " in region.description


def test_random_or_tiny_weights_never_name_anything(tiny_runtime_bundle):
    assert class_names(Bundle.load(tiny_runtime_bundle)) is None
    assert namer_for(tiny_runtime_bundle) is None
    assert namer_for(None) is None
