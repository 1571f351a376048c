"""One `imgdiff-rt bench` run of the real-pair cells on a tiny bundle (the real pretrained segmenter
registered as is, tiny random-init CLIP and BLIP, fp32 + int8) with two real pairs: Img-Diff as published vs
the product's defaults."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from helpers import LEFT, RIGHT


@pytest.fixture(scope="module")
def real_bundle(tmp_path_factory, shared_models):
    """The real pretrained segmenter registered as is, tiny random-init CLIP and BLIP, fp32 and int8."""
    from imgdiff_rt.export.build import ExportOptions, run_export

    out = tmp_path_factory.mktemp("bench-real") / "models"
    run_export(ExportOptions(segmenter_onnx=str(shared_models / "yolov8n-seg-int8.onnx"), tiny=True,
                             random_init=True, captioner="blip", precision="int8"), out, progress=lambda _: None)
    return out


def test_bench_runs_the_real_pair_cells(real_bundle, shared_data, tmp_path):
    from imgdiff_rt.cli.main import cli

    out = tmp_path / "results"
    result = CliRunner().invoke(cli, [
        "bench", "--models", str(real_bundle), "--stages", "detect-real,pipeline-real",
        "--backends", "torch,default,onnx,onnx-int8,triton", "--runs", "1", "--warmup", "0", "--no-peak", "--no-plots",
        "--cli-runs", "0", "--real-sets", "levir-cd:1,clevr-semantic:1", "--real-data", str(shared_data),
        "--left", str(LEFT), "--right", str(RIGHT), "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "results.json").read_text())
    detect, pipeline = data["cells"]
    assert (detect["key"], pipeline["key"]) == ("detect-real", "pipeline-real")
    assert detect["pairs"] == ["levir-cd/test_102_0512_0000", "clevr-semantic/000000"]
    assert detect["segmenter"] == {"weights": "registered-onnx", "precision": "int8"}
    assert "triton" in detect["skipped"]
    ref = detect["backends"]["torch"]
    kept = sum(len(p["regions"]) for p in ref["pairs_detail"])
    assert kept > 0, "the reference keeps regions on these pairs, or the comparison below proves nothing"
    for cell in (detect, pipeline):
        assert set(cell["backends"]) == {"torch", "default", "onnx", "onnx-int8"}
        for name in ("default", "onnx", "onnx-int8"):
            entry = cell["backends"][name]
            assert entry["speedup_vs_torch"]["median"] > 0 and entry["stage_speedup_vs_torch"]["segment"]["median"] > 0
            assert entry["work"]["flops_by_stage"]["segment"] > 0 and entry["work"]["flops_by_stage"]["clip"] > 0
    # the default pixel gate may not change what detection keeps
    assert detect["backends"]["onnx"]["same_regions"]["pairs_same"] == 2
    # precision auto on this bundle: the registered int8 segmenter (no rebuild), int8 CLIP (its check passed)
    assert detect["backends"]["default"]["segmenter_precision"] == "int8"
    assert detect["backends"]["default"]["same_regions"]["pairs_same"] == 2
    assert detect["backends"]["onnx"]["accuracy"]["clip_image"].startswith("ok")
    assert detect["backends"]["onnx-int8"]["accuracy"]["clip_image"].startswith("int8 cos>=")
    # the reference runs every candidate through CLIP, one BLIP call per crop; the product batches
    sessions = {n: pipeline["backends"][n]["work"]["sessions"] for n in ("torch", "onnx")}
    captioned = sum(p["captioned_regions"] for p in pipeline["backends"]["torch"]["pairs_detail"])
    assert sessions["torch"]["blip_vision"]["calls"] == 2 * captioned > 0
    assert sessions["onnx"]["blip_vision"]["calls"] <= 2
    assert pipeline["backends"]["torch"]["work"]["flops_by_stage"]["caption"] > 0
    report = (out / "report.md").read_text()
    assert "| detect-real | onnx |" in report and "same kept regions on 2/2 pairs" in report
    assert "Img-Diff reference" in report and "the graph each column ran: torch int8, default int8" in report
