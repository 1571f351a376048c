"""--device cpu on export and bench: a tiny export and a bench run on it record the device they ran on."""

from __future__ import annotations

import json

from click.testing import CliRunner

from imgdiff_rt.cli.main import cli


def test_export_and_bench_on_cpu_record_the_device(tmp_path):
    """A tiny CLIP bundle exported with --device cpu records it (options and every parity check), and a bench
    on it with --device cpu runs the onnx cell on the CPU provider and says so in results.json and report.md."""
    bundle, results = tmp_path / "bundle", tmp_path / "results"
    res = CliRunner().invoke(cli, ["export", "--tiny", "--random-init", "--segmenter", "none", "--captioner", "none",
                                   "--device", "cpu", "--out", str(bundle), "--json"])
    assert res.exit_code == 0, res.output
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["options"]["device"] == "cpu"
    assert {e["parity"]["device"] for e in manifest["entries"].values()} == {"cpu"}
    res = CliRunner().invoke(cli, ["bench", "--models", str(bundle), "--stages", "clip", "--backends", "torch,onnx",
                                   "--runs", "1", "--warmup", "0", "--no-plots", "--no-peak", "--cli-runs", "0",
                                   "--device", "cpu", "--out", str(results)])
    assert res.exit_code == 0, res.output
    recorded = json.loads((results / "results.json").read_text())
    assert recorded["config"]["device"] == "cpu"
    assert recorded["device"] == {"device": "cpu", "onnx_providers": ["CPUExecutionProvider"], "torch_device": "cpu"}
    assert "device cpu" in (results / "report.md").read_text()
