"""TensorRT engine builds of the tiny segmenter where TensorRT and a CUDA GPU exist (skipped elsewhere): fp16
with a timing cache, and int8 from a calibrated QDQ graph."""

from __future__ import annotations

import pytest

from imgdiff_rt.errors import EngineIncompatibleError
from imgdiff_rt.export import tensorrt_engine as T
from imgdiff_rt.runtime import tensorrt_engines as E
from imgdiff_rt.models.specs import get_spec
from helpers import HAVE_TENSORRT


# ---- real builds: only where TensorRT and a CUDA GPU exist -------------------------------------------
@pytest.fixture(scope="module")
def tiny_segmenter_onnx(tmp_path_factory):
    pytest.importorskip("ultralytics")
    from imgdiff_rt.export.segmenter import export_segmenter

    path = tmp_path_factory.mktemp("trt") / "segmenter.onnx"
    result = export_segmenter("FastSAM-s.pt", path, 64, tiny=True, check_parity=False)
    return path, get_spec("segmenter").bind(**result["sizes"])


@pytest.mark.tensorrt
@pytest.mark.skipif(not HAVE_TENSORRT, reason="needs the tensorrt package and a CUDA GPU")
def test_fp16_engine_build_with_timing_cache(tiny_segmenter_onnx, tmp_path):
    onnx_path, spec = tiny_segmenter_onnx
    cache = tmp_path / "timing.cache"
    info = T.build_engine(onnx_path, spec, tmp_path / "seg.engine", "fp16", cache, imgsz=64, max_batch=2)
    assert cache.is_file() and not info["timing_cache_loaded"]
    assert info["gpu"]["compute_capability"] and info["tensorrt_version"]
    again = T.build_engine(onnx_path, spec, tmp_path / "seg2.engine", "fp16", cache, imgsz=64, max_batch=2)
    assert again["timing_cache_loaded"]
    engine = E.load_engine(info["path"], info)
    assert engine is not None
    with pytest.raises(EngineIncompatibleError):
        E.load_engine(info["path"], {**info, "tensorrt_version": "0.0.1"})


@pytest.mark.tensorrt
@pytest.mark.skipif(not HAVE_TENSORRT, reason="needs the tensorrt package and a CUDA GPU")
def test_int8_engine_from_calibrated_qdq(tiny_segmenter_onnx, tmp_path):
    from imgdiff_rt.export.quantize import quantize_static_qdq, segmenter_calibration_feeds

    onnx_path, spec = tiny_segmenter_onnx
    qdq = tmp_path / "seg-int8.onnx"
    quantize_static_qdq(onnx_path, qdq, segmenter_calibration_feeds(64, limit=4))
    info = T.build_engine(qdq, spec, tmp_path / "seg-int8.engine", "int8", imgsz=64, max_batch=2)
    assert info["precision"] == "int8" and info["bytes"] > 0
