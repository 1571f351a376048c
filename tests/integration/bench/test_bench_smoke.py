"""The benchmark suite stays alive: one `imgdiff-rt bench` run on a tiny CLIP-only bundle (real sessions,
torch vs ONNX Runtime fp32/int8, a skipped TensorRT, results.json / report.md / plot), its graph work counts
and its usage error. The full suite is run on demand (docs/benchmarks.md), never here."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from imgdiff_rt.bench.work import graph_work_batched


@pytest.fixture(scope="module")
def clip_bundle(tmp_path_factory):
    """A tiny CLIP-only bundle, fp32 + int8 (the segmenter and BLIP cost too much time for a CI smoke test)."""
    from imgdiff_rt.export.build import ExportOptions, run_export

    out = tmp_path_factory.mktemp("bench") / "bundle"
    run_export(ExportOptions(tiny=True, random_init=True, segmenter=None, captioner="none", precision="int8"), out)
    return out


def test_bench_command_writes_results_report_and_plot(clip_bundle, tmp_path):
    from imgdiff_rt.cli.main import cli

    out = tmp_path / "results"
    result = CliRunner().invoke(cli, [
        "bench", "--models", str(clip_bundle), "--stages", "clip,segment",
        "--backends", "torch,onnx,onnx-int8,tensorrt", "--batch", "1,2", "--runs", "2", "--warmup", "1",
        "--no-peak", "--concurrency", "1,2", "--concurrency-backends", "onnx", "--cli-runs", "1",
        "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "results.json").read_text())
    assert {"cpu", "logical_cores", "libraries"} <= set(data["machine"])
    clip = next(c for c in data["cells"] if c["key"] == "clip/b2")
    assert set(clip["backends"]) == {"torch", "onnx", "onnx-int8"}
    for name in ("onnx", "onnx-int8"):
        row = clip["backends"][name]
        assert {"median_ms", "p95_ms", "p99_ms", "min_ms", "throughput_per_s", "peak_rss_bytes"} <= set(row)
        assert row["speedup_vs_torch"]["median"] > 0 and len(row["times_ms"]) == 2
    assert "tensorrt" in clip["skipped"] and clip["work"]["flops"] > 0 and not clip["work"]["uncounted"]
    seg = next(c for c in data["cells"] if c["stage"] == "segment")
    assert not seg["backends"] and set(seg["skipped"]) == {"torch", "onnx", "onnx-int8", "tensorrt"}
    assert set(data["ratios"]["clip"]) == {"onnx", "onnx-int8"}
    assert [r["clients"] for r in data["concurrency"]["backends"]["onnx"]] == [1, 2]
    report = (out / "report.md").read_text()
    assert "| clip/b1 | onnx |" in report and "Skipped" in report and "tensorrt (all cells)" in report
    cli_cell = data["cli_latency"]["commands"]
    assert set(cli_cell) == {"help", "run-pixel", "python-start"} and cli_cell["run-pixel"]["median_ms"] > 0
    assert "CLI latency" in report and "`imgdiff-rt run` (pixel detector, no bundle)" in report
    assert (out / "latency.png").stat().st_size > 1000 and (out / "concurrency.png").is_file()


def test_graph_work_counts_vit_matmuls(clip_bundle):
    from imgdiff_rt.models.bundle import Bundle

    bundle = Bundle.load(clip_bundle)
    size = bundle.spec("clip_image").sizes["image_size"]
    one = graph_work_batched(bundle.path("clip_image"), {"pixel_values": (1, 3, size, size)})
    four = graph_work_batched(bundle.path("clip_image"), {"pixel_values": (4, 3, size, size)})
    assert one["flops"] > 0 and four["flops"] == 4 * one["flops"] and not one["uncounted"]
    assert {"Conv", "MatMul"} <= set(one["flops_by_op"]) and one["weight_bytes"] > 0


def test_unknown_backend_is_a_usage_error(clip_bundle):
    from imgdiff_rt.cli.main import cli

    result = CliRunner().invoke(cli, ["bench", "--models", str(clip_bundle), "--backends", "torch,cuda-magic"])
    assert result.exit_code == 2 and "cuda-magic" in result.output
