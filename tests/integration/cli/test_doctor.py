"""`imgdiff-rt doctor`: the environment and the bundle at --models in one report (text and JSON)."""

from __future__ import annotations

import json
import shutil

from click.testing import CliRunner

from imgdiff_rt.cli.main import cli


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_doctor_reports_environment_and_bundle_json(tiny_runtime_bundle):
    res = invoke("doctor", "--models", tiny_runtime_bundle, "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert "CPUExecutionProvider" in report["onnxruntime_providers"]
    assert report["packages"]["onnxruntime"] and "available" in report["cuda"]
    assert {"available"} <= set(report["tensorrt"]) and {"available"} <= set(report["java"])
    assert "server_env" in report["triton"]
    bundle = report["bundle"]
    assert bundle["ok"] and bundle["hashes_checked"] and bundle["weights"] == ["tiny"]
    graphs = {(g["graph"], g["precision"]) for g in bundle["graphs"]}
    assert {("segmenter", "fp32"), ("clip_image", "fp32"), ("clip_text", "fp32")} <= graphs
    assert all(g["sha256_ok"] for g in bundle["graphs"])


def test_doctor_text_flags_a_changed_file(tmp_path, tiny_runtime_bundle):
    copy = tmp_path / "bundle"
    shutil.copytree(tiny_runtime_bundle, copy)
    with open(copy / "onnx" / "clip_text.fp32.onnx", "ab") as fh:
        fh.write(b"\0")
    res = invoke("doctor", "--models", copy)
    assert res.exit_code == 1
    assert "SHA256 MISMATCH" in res.stdout and "ONNX Runtime providers:" in res.stdout
    assert "clip_text" in res.stdout and "tiny" in res.stdout


def test_doctor_without_a_bundle_says_how_to_make_one(tmp_path):
    res = invoke("doctor", "--models", tmp_path / "nothing", "--no-hashes")
    assert res.exit_code == 0
    assert "no model bundle at" in res.stdout and "imgdiff-rt export" in res.stdout
