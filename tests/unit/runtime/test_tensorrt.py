"""TensorRT where it may be absent: typed errors on import, build and the default check, dynamic int8 ONNX
refused, profile shapes from the specs, and the engine compatibility rules."""

from __future__ import annotations

import sys

import pytest

from imgdiff_rt.errors import EngineIncompatibleError, TensorRTUnavailableError, UsageError
from imgdiff_rt.export import tensorrt_engine as T
from imgdiff_rt.runtime import tensorrt_engines as E
from imgdiff_rt.models.specs import get_spec

SEG = get_spec("segmenter").bind(num_outputs=37, num_classes=1)


@pytest.fixture
def no_tensorrt(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # makes `import tensorrt` raise ImportError


def test_import_without_tensorrt_is_a_typed_error(no_tensorrt):
    with pytest.raises(TensorRTUnavailableError, match="tensorrt"):
        E.import_tensorrt()
    with pytest.raises(TensorRTUnavailableError):
        E.runtime_identity()


def test_build_without_tensorrt_is_a_typed_error(no_tensorrt, tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, "height", "width"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3, "height", "width"])
    graph = helper.make_graph([helper.make_node("Identity", ["images"], ["y"])], "g", [x], [y])
    path = tmp_path / "g.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(TensorRTUnavailableError, match="imgdiff-rt\\[tensorrt\\]"):
        T.build_engine(path, SEG, tmp_path / "g.engine")
    # input errors are reported before TensorRT is even needed
    with pytest.raises(UsageError, match="precision"):
        T.build_engine(path, SEG, tmp_path / "g.engine", precision="int4")
    with pytest.raises(UsageError, match="QDQ"):
        T.build_engine(path, SEG, tmp_path / "g.engine", precision="int8")
    with pytest.raises(UsageError, match="does not exist"):
        T.build_engine(tmp_path / "missing.onnx", SEG, tmp_path / "g.engine")


def test_dynamic_int8_onnx_is_refused_for_tensorrt(shared_models, tmp_path):
    with pytest.raises(UsageError, match="ConvInteger"):
        T.build_engine(shared_models / "yolov8n-seg-int8.onnx", SEG, tmp_path / "x.engine")


def test_segmenter_profiles_from_the_spec():
    profiles = T.engine_profiles(SEG, imgsz=640)
    assert profiles == {"images": ((1, 3, 320, 320), (1, 3, 640, 640), (8, 3, 1024, 1024))}
    small = T.engine_profiles(SEG, imgsz=256, max_batch=4)
    assert small["images"] == ((1, 3, 256, 256), (1, 3, 256, 256), (4, 3, 1024, 1024))
    big = T.engine_profiles(SEG, imgsz=1280)
    assert big["images"][2] == (8, 3, 1280, 1280)
    with pytest.raises(UsageError, match="multiples of 32"):
        T.engine_profiles(SEG, imgsz=650)
    with pytest.raises(UsageError, match="min <= opt <= max"):
        T.engine_profiles(SEG, imgsz=640, max_batch=0)


def test_encoder_profiles_from_the_spec():
    clip = get_spec("clip_image").bind(image_size=224, embed_dim=512)
    low, opt, high = T.engine_profiles(clip)["pixel_values"]
    assert low == (1, 3, 224, 224) and opt[1:] == (3, 224, 224) and high == (clip.max_batch, 3, 224, 224)
    with pytest.raises(UsageError):
        T.engine_profiles(get_spec("clip_image"))  # unbound image_size


A10G = {"name": "NVIDIA A10G", "compute_capability": "8.6"}
TURING = {"name": "Tesla T4", "compute_capability": "7.5"}
BUILT = {"path": "seg.engine", "tensorrt_version": "10.3.0", "gpu": A10G}


def test_compatible_engine_passes():
    E.check_engine_compatible(BUILT, {"tensorrt_version": "10.3.0",
                                      "gpu": {"name": "NVIDIA RTX A6000", "compute_capability": "8.6"}})


@pytest.mark.parametrize("current,reason", [
    ({"tensorrt_version": "10.4.0", "gpu": A10G}, "TensorRT 10.3.0"),
    ({"tensorrt_version": "10.3.0", "gpu": {"name": "Tesla T4", "compute_capability": "7.5"}}, "Tesla T4"),
    ({"tensorrt_version": "10.3.0", "gpu": {}}, "compute capability unknown"),
])
def test_mismatched_engine_fails_clearly(current, reason):
    with pytest.raises(EngineIncompatibleError, match=reason):
        E.check_engine_compatible(BUILT, current)


def test_compatibility_modes():
    portable = {**BUILT, "version_compatible": True, "hardware_compatibility": "ampere_plus"}
    E.check_engine_compatible(portable, {"tensorrt_version": "10.5.1", "gpu": {"compute_capability": "9.0"}})
    with pytest.raises(EngineIncompatibleError, match="Ampere"):
        E.check_engine_compatible(portable, {"tensorrt_version": "10.5.1", "gpu": TURING})
    with pytest.raises(EngineIncompatibleError, match="version-compatible"):
        E.check_engine_compatible(portable, {"tensorrt_version": "10.2.0", "gpu": A10G})


def test_default_check_without_tensorrt_is_a_typed_error(no_tensorrt):
    with pytest.raises(TensorRTUnavailableError):
        E.check_engine_compatible(BUILT)
