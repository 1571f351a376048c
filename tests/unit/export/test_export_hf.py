"""Export's rules without exporting: every registered spec has an export and a parity test, and the parity and
token-agreement measures."""

from __future__ import annotations

import numpy as np
import pytest

from imgdiff_rt.errors import ParityError
from imgdiff_rt.export.captioner_export import token_agreement
from imgdiff_rt.runtime.compare import compare
from imgdiff_rt.models.specs import SPECS, get_spec

from helpers import PARITY_CASES


def test_every_registered_spec_has_an_export_and_parity_test():
    assert set(PARITY_CASES) == set(SPECS), "add a PARITY_CASES row for each new spec"


def test_token_agreement():
    assert token_agreement([[1, 2, 3]], [[1, 2, 3]]) == 1.0
    assert token_agreement([[1, 2, 3, 4]], [[1, 2]]) == 0.5


def test_compare_cosine_and_atol():
    spec = get_spec("clip_image").bind(image_size=32, embed_dim=4)
    want = {"image_embeds": np.array([[1.0, 0, 0, 0], [0, 1.0, 0, 0]], np.float32)}
    assert compare(spec, want, want)["image_embeds"]["ok"]
    bad = {"image_embeds": np.array([[1.0, 0, 0, 0], [1.0, 0, 0, 0]], np.float32)}
    with pytest.raises(ParityError, match="beyond tolerance") as caught:
        compare(spec, bad, want)
    row = caught.value.report["image_embeds"]
    assert not row["ok"] and row["min_cosine"] == pytest.approx(0.0)
    assert compare(spec, bad, want, tolerance=None)["image_embeds"]["min_cosine"] == pytest.approx(0.0)


def test_segmenter_box_rows_are_held_to_a_pixel_tolerance_and_protos_to_the_graph_one():
    spec = get_spec("segmenter").bind(num_outputs=37, num_classes=1)
    rng = np.random.default_rng(0)
    preds = rng.uniform(1, 600, (1, 37, 84)).astype(np.float32)
    protos = rng.standard_normal((1, 32, 16, 16)).astype(np.float32)
    want = {"preds": preds, "protos": protos}
    nudged = preds.copy()
    nudged[0, 0, 0] += 0.02  # a fiftieth of a pixel in a box coordinate: float32 noise, accepted
    report = compare(spec, {"preds": nudged, "protos": protos}, want)
    assert report["preds"]["ok"] and report["preds"]["tolerance"]["atol"] == pytest.approx(0.05)
    moved = preds.copy()
    moved[0, 0, 0] += 1.0  # a whole pixel: a real export error
    with pytest.raises(ParityError, match="preds"):
        compare(spec, {"preds": moved, "protos": protos}, want)
    with pytest.raises(ParityError, match="protos"):
        compare(spec, want | {"protos": protos + 0.01}, want)  # prototypes keep the graph's 2e-3
