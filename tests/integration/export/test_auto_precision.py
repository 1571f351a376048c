"""Export registers the dequantized fp32 rebuild of a registered int8 segmenter (the real one from ../shared)
with its own check against that graph, which precision auto reads."""

from __future__ import annotations

from imgdiff_rt.models import auto_precision as AP


def test_export_registers_the_rebuild_with_its_check(shared_models, tmp_path):
    from imgdiff_rt.export.build import ExportOptions, run_export
    from imgdiff_rt.models.bundle import Bundle

    run_export(ExportOptions(segmenter_onnx=str(shared_models / "yolov8n-seg-int8.onnx"), segmenter_fp32=True,
                             clip=None, captioner=None), tmp_path / "b", progress=lambda _: None)
    bundle = Bundle.load(tmp_path / "b")
    entry = bundle.entry("segmenter", "onnx", "fp32")
    check = entry.parity
    assert entry.dequantized_from == "segmenter/onnx-int8" and check.ok
    assert min(r.min_cosine for r in check.outputs.values()) >= 0.99
    assert check.detections.recall >= 0.9 and check.cpu_ms["dequantized"] > 0
    assert AP.resolve(bundle, "segmenter", "auto") == "fp32"
    from imgdiff_rt.weights_report import graph_precisions, weights_block

    ran = graph_precisions(tmp_path / "b", "segment", "none", "none", "onnx", "auto")
    assert ran == {"segmenter": "fp32-dequantized"}  # what the settings and the weights block record
    assert weights_block(tmp_path / "b", "segment", "none", "none", ran)["graphs"]["segmenter"]["precision"] == \
        "fp32-dequantized"
