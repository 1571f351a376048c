"""Runtime sessions: one interface over every backend, checked inputs, the backend table, onnx vs torch."""

from __future__ import annotations


import numpy as np
import pytest

from imgdiff_rt.errors import ModelError, SpecLayoutError, UsageError
from imgdiff_rt.models.bundle import Bundle
from imgdiff_rt.runtime import session as S
from helpers import HAVE_TENSORRT


@pytest.fixture(scope="session")
def bundle(tiny_runtime_bundle) -> Bundle:
    return Bundle.load(tiny_runtime_bundle)


def _feeds(spec, seed=0):
    if spec.name == "segmenter":
        return spec.dummy_inputs(2, rng=seed, height=64, width=96)  # non-square: dynamic H/W
    return spec.dummy_inputs(3, rng=seed)


@pytest.mark.parametrize("spec_name", ["segmenter", "clip_image", "clip_text"])
def test_onnx_matches_the_torch_reference(bundle, spec_name):
    with S.open_session(bundle, spec_name, "onnx", threads=1) as onnx, \
            S.open_session(bundle, spec_name, "torch") as ref:
        assert onnx.spec == ref.spec == bundle.spec(spec_name)
        feeds = _feeds(onnx.spec)
        got, want = onnx.run(feeds), ref.run(feeds)
    assert list(got) == list(want) == onnx.spec.output_names
    tol = onnx.spec.tolerance
    for name in got:
        assert got[name].shape == want[name].shape
        bound = (tol.atol or 0) + (tol.rtol or 0) * np.abs(want[name])
        assert np.all(np.abs(got[name] - want[name]) <= bound + 1e-6), name


def test_inputs_are_checked_against_the_spec(bundle):
    with S.open_session(bundle, "clip_image") as session:
        size = session.spec.sizes["image_size"]
        good = np.zeros((1, 3, size, size), np.float32)
        assert session.run({"pixel_values": good})["image_embeds"].shape == (1, session.spec.sizes["embed_dim"])
        cases = [({}, "missing input"), ({"pixel_values": good, "x": good}, "unknown input"),
                 ({"pixel_values": good.astype(np.float64)}, "dtype float64"),
                 ({"pixel_values": good[0]}, "rank 3"),
                 ({"pixel_values": np.zeros((1, 3, size + 1, size), np.float32)}, f"needs {size}")]
        for feeds, message in cases:
            with pytest.raises(SpecLayoutError, match=message):
                session.run(feeds)
    assert session.closed
    with pytest.raises(ModelError, match="closed"):
        session.run({"pixel_values": good})


def test_backend_table_takes_fakes_and_names_unknown_backends(bundle):
    calls = []

    class FakeSession(S.Session):
        backend = "fake"

        def _run(self, feeds):
            calls.append({k: v.shape for k, v in feeds.items()})
            return {"image_embeds": np.ones((len(feeds["pixel_values"]), 4), np.float32)}

    @S.register_backend("fake")
    def open_fake(bundle, spec_name, precision="fp32", **opts):
        return FakeSession(bundle.spec(spec_name))

    try:
        with S.open_session(bundle.root, "clip_image", "fake") as session:
            x = session.spec.dummy_inputs(2, rng=0)
            assert session.run(x)["image_embeds"].shape == (2, 4) and len(calls) == 1
    finally:
        S.BACKENDS.pop("fake")
    with pytest.raises(UsageError, match="backend 'nope' is not available"):
        S.open_session(bundle, "clip_image", "nope")
    with pytest.raises(UsageError, match="precision"):
        S.open_session(bundle, "clip_image", "onnx", precision="int4")
    with pytest.raises(ModelError, match="no clip_image onnx int8"):
        S.open_session(bundle, "clip_image", "onnx", precision="int8")


def test_tensorrt_backend_without_an_engine_is_a_clear_error(bundle):
    with pytest.raises(ModelError, match="no segmenter engine"):
        S.open_session(bundle, "segmenter", "tensorrt")


def test_registered_segmenter_has_file_names_mapped_and_no_torch_module(registered_segmenter_bundle):
    bundle = Bundle.load(registered_segmenter_bundle)
    with S.open_session(bundle, "segmenter", "onnx", precision="int8") as session:
        assert session.input_shapes["images"] == (1, 3, 320, 320) and session.fixed_dim("images", 0) == 1
        out = session.run({"images": np.full((1, 3, 320, 320), 0.5, np.float32)})
        assert out["preds"].shape == (1, 116, 2100) and out["protos"].shape == (1, 32, 80, 80)
        with pytest.raises(SpecLayoutError, match=r"images\[0\] = 2, the model needs 1"):
            session.run({"images": np.zeros((2, 3, 320, 320), np.float32)})
    with pytest.raises(ModelError, match="registered foreign ONNX has no PyTorch module"):
        S.open_session(bundle, "segmenter", "torch", precision="fp32")


@pytest.mark.tensorrt
@pytest.mark.skipif(not HAVE_TENSORRT, reason="needs TensorRT and a CUDA GPU (CI has neither)")
def test_tensorrt_engine_matches_onnx_and_rejects_shapes_outside_the_profile(tmp_path):
    from imgdiff_rt.export.build import ExportOptions, run_export

    out = tmp_path / "models"
    run_export(ExportOptions(tiny=True, random_init=True, imgsz=64, captioner=None, formats=("onnx", "engine")),
               out)
    bundle = Bundle.load(out)
    with S.open_session(bundle, "clip_image", "tensorrt") as trt, S.open_session(bundle, "clip_image") as ort:
        x = trt.spec.dummy_inputs(4, rng=0)
        for _ in range(3):  # the third call replays a captured CUDA graph
            got = trt.run(x)["image_embeds"]
        cos = (got * ort.run(x)["image_embeds"]).sum(1)
        assert cos.min() > 0.999
        too_many = trt.spec.dummy_inputs(trt.spec.max_batch + 1, rng=0)
        with pytest.raises(SpecLayoutError, match="outside the engine profile"):
            trt.run(too_many)
