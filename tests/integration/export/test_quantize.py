"""int8 on exported graphs: static QDQ for the tiny segmenter (decode tail kept fp32) calibrated on real
photos, the speed helper, and the fp32 rebuild of the shared pretrained segmenter's ORT ConvInteger graph."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ultralytics")
torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from imgdiff_rt.errors import QuantizationError, UsageError  # noqa: E402
from imgdiff_rt.runtime import int8_tools as S  # noqa: E402
from imgdiff_rt.export import quantize as Q  # noqa: E402
from imgdiff_rt.export.checks import int8_accuracy  # noqa: E402
from imgdiff_rt.models.onnx_file import op_counts  # noqa: E402
from imgdiff_rt.runtime.backends.onnx_backend import ort_session  # noqa: E402
from imgdiff_rt.export.segmenter import export_segmenter  # noqa: E402
from imgdiff_rt.models.specs import get_spec  # noqa: E402

IMGSZ = 64


@pytest.fixture(scope="module")
def tiny_fp32(tmp_path_factory):
    path = tmp_path_factory.mktemp("q") / "segmenter.onnx"
    export_segmenter("FastSAM-s.pt", path, IMGSZ, tiny=True, check_parity=False)
    return path


@pytest.fixture(scope="module")
def feeds():
    return Q.segmenter_calibration_feeds(IMGSZ)


def test_calibration_feeds_are_real_photos(feeds, shared_data):
    name = get_spec("segmenter").input_names[0]
    assert len(feeds) == len(Q.SKIMAGE_PHOTOS) + len(Q.SKIMAGE_GREY_PHOTOS)
    assert all(set(f) == {name} and f[name].shape == (1, 3, IMGSZ, IMGSZ) for f in feeds)
    assert all(f[name].std() > 0.02 for f in feeds)  # not blank
    more = Q.segmenter_calibration_feeds(IMGSZ, images=[], paths=[shared_data / "levir-cd" / "A"], limit=3)
    assert len(more) == 3
    with pytest.raises(QuantizationError):
        Q.segmenter_calibration_feeds(IMGSZ, images=[])


def test_decode_tail_stays_outside_the_learned_convs(tiny_fp32):
    model = onnx.load(str(tiny_fp32))
    by_name = {n.name: n for n in model.graph.node}
    tail = Q.decode_tail_nodes(model, "preds")
    ops = {by_name[n].op_type for n in tail}
    assert "Softmax" in ops and "Sigmoid" in ops  # DFL and class scores
    convs = [by_name[n] for n in tail if by_name[n].op_type == "Conv"]
    assert len(convs) == 1  # only the DFL conv (one output channel)
    with_heads = Q.decode_tail_nodes(model, "preds", include_head_convs=True)
    assert sum(by_name[n].op_type == "Conv" for n in with_heads) == 1 + 3 * 3  # + box/cls/coef 1x1 per level


def test_static_qdq_segmenter(tiny_fp32, feeds, tmp_path):
    dst = tmp_path / "int8.onnx"
    summary = Q.quantize_static_qdq(tiny_fp32, dst, feeds[:4])
    assert summary["kind"] == "static-qdq-int8" and summary["calibration_feeds"] == 4
    assert summary["fp32_nodes_kept"] > 0
    ops = op_counts(dst)
    assert ops.get("QuantizeLinear", 0) > 10 and "ConvInteger" not in ops
    spec = get_spec("segmenter").bind(num_outputs=4 + 1 + 32, num_classes=1, imgsz=IMGSZ)
    report = int8_accuracy(spec, tiny_fp32, dst, feeds[4:6])
    assert set(report) == {"preds", "protos"}
    assert report["preds"]["min_cosine"] > 0.99
    # the dynamic axes survive quantisation
    session = ort_session(dst)
    images = np.random.default_rng(0).uniform(0.02, 1, (2, 3, 96, 64)).astype(np.float32)
    out = session.run(None, {"images": images})
    assert out[0].shape[0] == 2 and out[1].shape[2:] == (24, 16)
    with pytest.raises(QuantizationError):
        Q.quantize_static_qdq(tiny_fp32, tmp_path / "none.onnx", [])
    with pytest.raises(UsageError):
        Q.quantize_static_qdq(tiny_fp32, tmp_path / "bad.onnx", feeds[:1], method="magic")


def test_benchmark_returns_medians(tiny_fp32, feeds):
    result = S.benchmark_cpu([tiny_fp32], feeds[0], runs=3)
    assert list(result) == [str(tiny_fp32)] and result[str(tiny_fp32)] > 0


def test_requantise_the_shared_pretrained_segmenter(shared_models, tmp_path):
    """Shared ConvInteger yolov8n-seg -> fp32 rebuild -> static QDQ: the known objects survive both steps."""
    src = shared_models / "yolov8n-seg-int8.onnx"
    fp32, int8 = tmp_path / "fp32.onnx", tmp_path / "qdq.onnx"
    rebuilt = S.dequantize_conv_integer(src, fp32)
    assert rebuilt["convs_rebuilt"] == 76 and "ConvInteger" not in rebuilt["op_counts"]
    photos = Q.segmenter_calibration_feeds(320)
    Q.quantize_static_qdq(fp32, int8, photos)
    expected = {0: "astronaut", 15: "chelsea", 41: "coffee"}  # COCO person, cat, cup
    for path in (src, fp32, int8):
        session = ort_session(path)
        for cls, feed in zip(expected, photos[:len(expected)]):
            detections = S.top_detections(session.run(None, feed)[0][0], 80, conf=0.5)
            assert detections and detections[0][0] == cls, (path.name, expected[cls], detections[:2])
    with pytest.raises(QuantizationError):
        S.dequantize_conv_integer(fp32, tmp_path / "again.onnx")
