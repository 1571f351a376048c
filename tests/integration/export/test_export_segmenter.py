"""Segmenter export: the tiny YOLOv8-seg config end to end (fast), a local checkpoint, real-size architectures
(slow), and registration of the segmenter's own export."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ultralytics")
torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from imgdiff_rt.errors import UsageError  # noqa: E402
from imgdiff_rt.export import segmenter as S  # noqa: E402
from imgdiff_rt.torch_models import segmenter as SM  # noqa: E402
from imgdiff_rt.models.specs import get_spec, segmenter_output_sizes  # noqa: E402

SPEC = get_spec("segmenter")
IMGSZ = 64


@pytest.fixture(scope="module")
def tiny():
    return SM.build_segmenter("FastSAM-s.pt", tiny=True)


@pytest.fixture(scope="module")
def tiny_onnx(tiny, tmp_path_factory):
    path = tmp_path_factory.mktemp("seg") / "segmenter.onnx"
    return S.export_segmenter(tiny, path, IMGSZ)


def test_tiny_module_outputs_follow_the_spec(tiny):
    info = tiny.info
    assert info.num_classes == 1 and info.tiny and info.random_init
    assert info.architecture == "yolov8s-seg.yaml" and info.strides == (8, 16, 32)
    assert info.bind_sizes()["num_outputs"] == 4 + 1 + 32
    assert not tiny.training
    with torch.no_grad():
        preds, protos = tiny(torch.rand(2, 3, 64, 96))
    sizes = segmenter_output_sizes(64, 96)
    assert tuple(preds.shape) == (2, 37, sizes["num_anchors"])
    assert tuple(protos.shape) == (2, 32, sizes["proto_h"], sizes["proto_w"])
    scores = preds[:, 4]
    assert float(scores.min()) >= 0.0 and float(scores.max()) <= 1.0  # sigmoid scores: export-mode head


def test_export_has_spec_names_dynamic_axes_metadata_and_parity(tiny_onnx):
    model = onnx.load(tiny_onnx["path"])
    assert [i.name for i in model.graph.input] == SPEC.input_names
    assert [o.name for o in model.graph.output] == SPEC.output_names
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    dims = [d.dim_param for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims[0] and dims[2] and dims[3]  # batch, height, width all symbolic
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["imgdiff_rt.spec"] == "segmenter" and meta["imgdiff_rt.source"] == "FastSAM-s.pt"
    assert meta["task"] == "segment"
    assert tiny_onnx["parity"] and all(r["ok"] for r in tiny_onnx["parity"].values())
    assert not any(n.op_type == "NonMaxSuppression" for n in model.graph.node)


def test_exported_graph_matches_torch_at_another_batch_and_size(tiny, tiny_onnx):
    session = ort.InferenceSession(tiny_onnx["path"], providers=["CPUExecutionProvider"])
    images = np.random.default_rng(7).uniform(0.02, 1.0, (3, 3, 96, 128)).astype(np.float32)
    got = session.run(SPEC.output_names, {SPEC.input_names[0]: images})
    with torch.no_grad():
        want = [t.numpy() for t in tiny(torch.from_numpy(images))]
    for g, w in zip(got, want):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, atol=2e-3, rtol=2e-3)


def test_register_own_export(tiny_onnx):
    info = S.register_segmenter_onnx(tiny_onnx["path"])
    assert info["tensor_names"] == {n: n for n in (*SPEC.input_names, *SPEC.output_names)}
    assert info["num_classes"] == 1 and info["dynamic_batch"] and info["dynamic_hw"]
    assert info["quantization"] is None and info["imgsz"] == [IMGSZ, IMGSZ]


def test_local_checkpoint_loads(tmp_path):
    from ultralytics.nn.tasks import SegmentationModel, yaml_model_load

    cfg = yaml_model_load("yolov8n-seg.yaml")
    cfg["scales"], cfg["scale"] = {"tiny": list(SM.TINY_SCALE)}, "tiny"
    model = SegmentationModel(cfg, nc=3, verbose=False)
    path = tmp_path / "tiny-seg.pt"
    torch.save({"model": model, "train_args": {}}, path)
    module = SM.build_segmenter(str(path))
    assert module.info.num_classes == 3 and not module.info.random_init
    with torch.no_grad():
        preds, _ = module(torch.rand(1, 3, 64, 64))
    assert preds.shape[1] == 4 + 3 + 32


def test_bad_imgsz_is_a_usage_error(tiny, tmp_path):
    with pytest.raises(UsageError, match="multiple of 32"):
        S.export_segmenter(tiny, tmp_path / "x.onnx", 100)


@pytest.mark.slow
@pytest.mark.parametrize("name,params", [("FastSAM-s.pt", 11.8e6), ("FastSAM-x.pt", 72.2e6)])
def test_real_size_random_init_architecture(name, params):
    module = SM.build_segmenter(name, random_init=True)
    assert module.info.num_classes == 1
    assert abs(module.info.num_parameters - params) / params < 0.03


@pytest.mark.slow
def test_real_size_fastsam_s_export_640(tmp_path):
    result = S.export_segmenter("FastSAM-s.pt", tmp_path / "fastsam-s.onnx", 640, random_init=True)
    assert all(r["ok"] for r in result["parity"].values())
    assert result["bytes"] > 40e6
