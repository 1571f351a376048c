"""int8 helpers on small inputs: the calibration letterbox, dynamic quantisation (transformer MatMuls
quantised, Conv refused) and the accuracy measures."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("ultralytics")
torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from imgdiff_rt.errors import UsageError  # noqa: E402
from imgdiff_rt.runtime import int8_tools as S  # noqa: E402
from imgdiff_rt.export import quantize as Q  # noqa: E402
from imgdiff_rt.runtime.backends.onnx_backend import ort_session  # noqa: E402
from imgdiff_rt.runtime.compare import compare  # noqa: E402
from imgdiff_rt.models.specs import get_spec  # noqa: E402
from imgdiff_rt.runtime.preprocess import LETTERBOX_PAD  # noqa: E402


def test_letterbox_keeps_aspect_and_range():
    image = np.full((50, 100, 3), 200, np.uint8)
    out = Q.letterbox(image, 64)
    assert out.shape == (3, 64, 64) and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0
    assert np.isclose(out[0, 32, 32], 200 / 255) and np.isclose(out[0, 0, 32], LETTERBOX_PAD / 255)
    assert Q.letterbox(np.zeros((30, 40), np.uint8), 32).shape == (3, 32, 32)  # grey -> RGB


def test_dynamic_quantisation_refuses_conv_and_quantises_matmul(tmp_path):
    with pytest.raises(UsageError, match="quantize_static_qdq"):
        Q.quantize_dynamic("x.onnx", "y.onnx", op_types=("Conv", "MatMul"))
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.GELU(), torch.nn.Linear(256, 64)).eval()
    src = tmp_path / "mlp.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter's notice
        torch.onnx.export(mlp, (torch.randn(4, 10, 64),), str(src), input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, opset_version=17, dynamo=False)
    summary = Q.quantize_dynamic(src, tmp_path / "mlp-int8.onnx")
    assert "MatMulInteger" in summary["quantized_ops"] or "DynamicQuantizeMatMul" in summary["quantized_ops"]
    x = {"x": np.random.default_rng(1).standard_normal((3, 10, 64)).astype(np.float32)}
    (want,), (got,) = ort_session(src).run(None, x), ort_session(tmp_path / "mlp-int8.onnx").run(None, x)
    cosine = (want * got).sum(-1) / (np.linalg.norm(want, axis=-1) * np.linalg.norm(got, axis=-1))
    assert cosine.min() > 0.99


def test_accuracy_helpers():
    spec = get_spec("clip_image").bind(image_size=8, embed_dim=8)
    a = {"image_embeds": np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32)}
    assert np.isclose(compare(spec, a, a, tolerance=None)["image_embeds"]["min_cosine"], 1.0)
    flipped = {"image_embeds": -a["image_embeds"]}
    assert np.isclose(compare(spec, flipped, a, tolerance=None)["image_embeds"]["min_cosine"], -1.0)
    err = compare(spec, {"image_embeds": a["image_embeds"] + 0.5}, a, tolerance=None)["image_embeds"]
    assert np.isclose(err["max_abs"], 0.5) and np.isclose(err["mean_abs"], 0.5)
    preds = np.zeros((1, 4 + 2 + 32, 3), np.float32)
    preds[0, :4, 0] = [20, 20, 10, 10]
    preds[0, :4, 1] = [21, 20, 10, 10]  # overlaps anchor 0: suppressed by NMS
    preds[0, :4, 2] = [50, 50, 8, 8]
    preds[0, 4, :2] = [0.9, 0.8]
    preds[0, 5, 2] = 0.7
    assert [(c, round(s, 2)) for c, s, _ in S.top_detections(preds[0], 2)] == [(0, 0.9), (1, 0.7)]
    assert S.detection_agreement(preds, preds, 2)["recall"] == 1.0
    moved = preds.copy()
    moved[0, 0, 2] += 30
    assert S.detection_agreement(preds, moved, 2)["matched"] == 1
