"""The segmenter similarity filter (--filter segmenter): the real segmenter's neck maps as extra outputs, the
region comparison, the threshold rule and the usage error without a registered segmenter."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from imgdiff_rt.cli.main import cli
from imgdiff_rt.errors import UsageError
from imgdiff_rt.imageio import read_image
from imgdiff_rt.pipeline import Pipeline
from imgdiff_rt.detectors.model import segmenter_features as SF


@pytest.fixture(scope="module")
def features(shared_models) -> SF.SegmenterFeatures:
    return SF.SegmenterFeatures(shared_models / "yolov8n-seg-int8.onnx", threads=1)


def test_neck_maps_are_found_and_have_strides_8_16_32(shared_models, features):
    model = onnx.load(str(shared_models / "yolov8n-seg-int8.onnx"))
    assert len(SF.neck_feature_names(model)) == 3
    assert [o.name for o in model.graph.output] == ["output0", "output1"]  # the file is not changed
    image = np.random.default_rng(0).integers(0, 255, (200, 300, 3), np.uint8)
    (maps,), _ = features.maps([image])
    size = features.imgsz
    assert [m.shape[1:] for m in maps] == [(size // 8, size // 8), (size // 16, size // 16), (size // 32, size // 32)]
    assert all(m.dtype == np.float32 and np.isfinite(m).all() for m in maps)


def test_identical_regions_agree_and_a_replaced_one_differs(features, shared_data):
    clevr = shared_data / "clevr-change"
    left = read_image(clevr / "before" / "000000.png")
    right = left.copy()
    right[180:300, 300:460] = read_image(clevr / "semantic" / "000003.png")[0:120, 0:160]
    boxes = [(300, 180, 460, 300), (10, 10, 120, 90)]
    done = SF.filter_boxes(features, left, right, boxes, threshold=0.99)
    # far from the pasted patch the features barely move (the coarse maps' receptive field reaches a little)
    assert done.similarities[1] > 0.99
    assert done.similarities[0] < 0.9 and done.kept == [0]


@pytest.mark.parametrize("threshold, kept_all", [(1.01, True), (-1.0, False)])
def test_threshold_rule(features, shared_data, threshold, kept_all):
    clevr = shared_data / "clevr-change"
    left, right = read_image(clevr / "before" / "000001.png"), read_image(clevr / "semantic" / "000001.png")
    boxes = [(0, 0, 240, 160), (240, 160, 480, 320)]
    done = SF.filter_boxes(features, left, right, boxes, threshold)
    assert done.kept == ([0, 1] if kept_all else [])


def test_pipeline_records_the_filter(registered_segmenter_bundle, shared_data):
    clevr = shared_data / "clevr-change"
    pipe = Pipeline(models=registered_segmenter_bundle, feature_filter="segmenter", feature_threshold=1.01)
    result = pipe(clevr / "before" / "000002.png", clevr / "semantic" / "000002.png")
    assert result.settings["filter"]["name"] == "segmenter"
    assert result.settings["segmenter_filter"]["dropped"] == []
    assert all(r.similarity is not None and r.similarity < 1.01 for r in result.regions)
    # the result says a model ran: the registered segmenter, with its weights label
    weights = result.weights
    assert weights["models_ran"] is True and "segmenter" in weights["graphs"]


def test_without_registered_segmenter_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="segmenter-onnx"):
        Pipeline(models=tmp_path / "absent", feature_filter="segmenter")
    with pytest.raises(UsageError, match="segmenter-onnx"):
        Pipeline(models=None, feature_filter="segmenter")


@pytest.mark.parametrize("args, fix", [
    (["--detector", "pixel", "--filter", "clip"], "--detector hybrid"),
    (["--filter", "segmenter", "--models", "MISSING"], "--segmenter-onnx"),
])
def test_filter_usage_errors_are_one_line(tmp_path, shared_data, args, fix):
    left = shared_data / "clevr-change" / "before" / "000000.png"
    args = [str(tmp_path / "absent") if a == "MISSING" else a for a in args]
    res = CliRunner().invoke(cli, ["run", str(left), str(left), *args])
    assert res.exit_code == 2, res.output
    assert res.output.startswith("Error:") and fix in res.output and len(res.output.strip().splitlines()) == 1
