"""Registering foreign segmenter ONNX files without exporting one: the real pretrained int8 shared fixture,
fake layouts that fit or mismatch; and missing weights offline name the flags."""

from __future__ import annotations

import pytest

pytest.importorskip("ultralytics")
torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from imgdiff_rt.errors import SpecLayoutError, UsageError, WeightsUnavailableError  # noqa: E402
from imgdiff_rt.export import segmenter as S  # noqa: E402
from imgdiff_rt.torch_models import segmenter as SM  # noqa: E402


def test_register_shared_pretrained_int8(shared_models):
    info = S.register_segmenter_onnx(shared_models / "yolov8n-seg-int8.onnx")
    assert info["tensor_names"] == {"images": "images", "preds": "output0", "protos": "output1"}
    assert info["shapes"] == {"images": [1, 3, 320, 320], "preds": [1, 116, 2100], "protos": [1, 32, 80, 80]}
    assert info["num_classes"] == 80 and info["imgsz"] == [320, 320]
    assert info["quantization"] == "dynamic-int8" and not info["tensorrt_parsable"]
    assert info["opset"] >= 17 and "person" in info["class_names"]


def _fake_segmenter_onnx(path, preds_rows=37, proto_channels=32, anchors=84, proto=16, size=64):
    """A layout-only graph (never run): registration reads declared shapes."""
    from onnx import TensorProto, helper

    inp = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, size, size])
    out0 = helper.make_tensor_value_info("a", TensorProto.FLOAT, [1, preds_rows, anchors])
    out1 = helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, proto_channels, proto, proto])
    nodes = [helper.make_node("ConstantOfShape", [n + "_shape"], [n]) for n in ("a", "b")]
    inits = [helper.make_tensor("a_shape", TensorProto.INT64, [3], [1, preds_rows, anchors]),
             helper.make_tensor("b_shape", TensorProto.INT64, [4], [1, proto_channels, proto, proto])]
    graph = helper.make_graph(nodes, "fake", [inp], [out0, out1], initializer=inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_register_fake_layout_ok_and_mismatches(tmp_path):
    ok = S.register_segmenter_onnx(_fake_segmenter_onnx(tmp_path / "ok.onnx"))
    assert ok["tensor_names"] == {"images": "x", "preds": "a", "protos": "b"} and ok["num_classes"] == 1
    with pytest.raises(SpecLayoutError, match="protos"):
        S.register_segmenter_onnx(_fake_segmenter_onnx(tmp_path / "p.onnx", proto_channels=16))
    with pytest.raises(SpecLayoutError, match="rows"):
        S.register_segmenter_onnx(_fake_segmenter_onnx(tmp_path / "r.onnx", preds_rows=30))
    with pytest.raises(SpecLayoutError, match="head sizes"):
        S.register_segmenter_onnx(_fake_segmenter_onnx(tmp_path / "a.onnx", anchors=100))
    with pytest.raises(SpecLayoutError, match="does not exist"):
        S.register_segmenter_onnx(tmp_path / "missing.onnx")


def test_missing_weights_offline_names_the_flags(tmp_path):
    with pytest.raises(WeightsUnavailableError, match="--random-init"):
        SM.build_segmenter("FastSAM-s.pt")
    with pytest.raises(WeightsUnavailableError, match="--segmenter-onnx"):
        SM.build_segmenter(str(tmp_path / "nowhere" / "FastSAM-x.pt"))
    with pytest.raises(UsageError, match="known architecture"):
        SM.build_segmenter("my-own-model.pt", random_init=True)
