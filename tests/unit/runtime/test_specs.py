"""The spec registry: one flat record per graph, the single source of tensor names and sizes."""

from __future__ import annotations

import numpy as np
import pytest

from imgdiff_rt.errors import SpecLayoutError, UnknownSpecError, UsageError
from imgdiff_rt.models.specs import (
    DERIVED_SYMBOLS,
    DYNAMIC_SYMBOLS,
    SPECS,
    ModelSpec,
    get_spec,
    segmenter_num_outputs,
    segmenter_output_sizes,
)

# Sizes that bind each spec completely (small, as the tiny models use); one row per registered spec.
SAMPLE_SIZES = {
    "segmenter": dict(num_outputs=segmenter_num_outputs(1), num_classes=1, imgsz=64),
    "clip_image": dict(image_size=32, embed_dim=16),
    "clip_text": dict(text_len=16, embed_dim=16, vocab_size=128, bos_token_id=126, eos_token_id=127),
    "blip_vision": dict(image_size=32, num_image_tokens=17, vision_hidden=32),
    "llava_vision": dict(image_size=32, num_image_tokens=16, text_hidden=32),
}


def test_sample_sizes_cover_every_spec():
    assert set(SAMPLE_SIZES) == set(SPECS)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_spec_is_well_formed(name):
    spec = SPECS[name]
    assert isinstance(spec, ModelSpec) and spec.name == name and spec.doc
    names = spec.input_names + spec.output_names
    assert len(names) == len(set(names)), "tensor names must be unique"
    assert spec.opset >= 17
    assert spec.tolerance.as_dict(), "a spec needs at least one parity criterion"
    assert spec.max_batch >= 1
    assert set(spec.trt_profiles) == set(spec.input_names)
    for t in (*spec.inputs, *spec.outputs):
        np.dtype(t.dtype)  # a real numpy dtype name
        assert t.dims[0] == "batch", "every graph has a dynamic leading batch axis"


@pytest.mark.parametrize("name", sorted(SPECS))
def test_bind_dummy_inputs_and_profiles(name):
    spec = get_spec(name).bind(**SAMPLE_SIZES[name])
    assert spec.unbound_symbols() == []
    for axes in spec.dynamic_axes().values():
        assert set(axes.values()) <= set(DYNAMIC_SYMBOLS) | set(DERIVED_SYMBOLS)
    feeds = spec.dummy_inputs(3, rng=0)
    assert list(feeds) == spec.input_names
    for t in spec.inputs:
        arr = feeds[t.name]
        assert arr.dtype == np.dtype(t.dtype) and arr.shape[0] == 3 and arr.ndim == t.rank
        assert np.any(arr != 0), "dummy inputs are never all zeros"
        env = {"batch": 3, "height": arr.shape[-2] if t.rank == 4 else 0, "width": arr.shape[-1]}
        assert arr.shape == t.concrete_shape({**spec.sizes, **env})
    again = spec.dummy_inputs(3, rng=1)
    assert any(not np.array_equal(feeds[n], again[n]) for n in feeds), "fresh seeds give fresh inputs"
    profiles = spec.profiles()
    for tname, (lo, opt, hi) in profiles.items():
        assert len(lo) == spec.tensor(tname).rank
        assert all(a <= b <= c for a, b, c in zip(lo, opt, hi)), (tname, lo, opt, hi)
        assert hi[0] == spec.max_batch


def test_text_dummy_ends_rows_with_eos_and_pads():
    spec = get_spec("clip_text").bind(**SAMPLE_SIZES["clip_text"])
    feeds = spec.dummy_inputs(8, rng=3)
    for ids, mask in zip(feeds["input_ids"], feeds["attention_mask"]):
        n = int(mask.sum())
        assert ids[0] == 126 and ids[n - 1] == 127 and ids[: n - 1].max() < 127  # CLIP pools at argmax == EOS


def test_binding_a_dynamic_axis_is_refused():
    with pytest.raises(UsageError):
        get_spec("segmenter").bind(batch=1)


def test_unknown_spec_is_a_typed_error():
    with pytest.raises(UnknownSpecError, match="known: segmenter"):
        get_spec("no_such_graph")


def test_require_bound_names_missing_sizes():
    with pytest.raises(UsageError, match="image_size"):
        get_spec("clip_image").dummy_inputs(1)


@pytest.mark.parametrize("imgsz, anchors, proto", [(320, 2100, 80), (640, 8400, 160), (64, 84, 16)])
def test_segmenter_output_sizes(imgsz, anchors, proto):
    assert segmenter_output_sizes(imgsz) == {"num_anchors": anchors, "proto_h": proto, "proto_w": proto}


def test_segmenter_output_sizes_need_multiples_of_32():
    with pytest.raises(UsageError):
        segmenter_output_sizes(100)


def test_segmenter_spec_matches_the_shared_yolov8n_layout():
    # yolov8n-seg exported at 320: images [1,3,320,320] -> [1,116,2100] + [1,32,80,80]; FastSAM has 37 rows.
    spec = get_spec("segmenter").bind(num_outputs=segmenter_num_outputs(80))
    env = spec.match_shapes({"images": (1, 3, 320, 320), "preds": (1, 116, 2100), "protos": (1, 32, 80, 80)})
    assert env["num_anchors"] == 2100 and env["height"] == 320
    assert segmenter_num_outputs(1) == 37
    with pytest.raises(SpecLayoutError, match="preds"):
        spec.match_shapes({"images": (1, 3, 320, 320), "preds": (1, 117, 2100), "protos": (1, 32, 80, 80)})
    with pytest.raises(SpecLayoutError, match="missing tensor"):
        spec.match_shapes({"images": (1, 3, 320, 320), "preds": (1, 116, 2100)})
    # dynamic axes in a file ("batch" strings) are accepted
    spec.match_shapes({"images": ("batch", 3, "h", "w"), "preds": ("batch", 116, "n"), "protos": ("b", 32, "p", "q")})
