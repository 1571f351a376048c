"""The bundle's rules before any graph is written: nothing to export, engines without TensorRT, fp16 ONNX
refused, the CLI's usage errors, every spec in an exported family, and the artifact table."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from imgdiff_rt.errors import ModelError, UsageError
from imgdiff_rt.export import build as build_mod
from imgdiff_rt.export.build import ExportOptions, run_export


def test_nothing_to_export_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="nothing to export"):
        run_export(ExportOptions(segmenter=None, clip=None, captioner="none"), tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_engine_format_without_tensorrt_fails_clearly(tmp_path):
    pytest.importorskip("imgdiff_rt.export.tensorrt_engine")
    try:
        import tensorrt  # noqa: F401

        pytest.skip("TensorRT is installed here; the engine tests cover it")
    except ImportError:
        pass
    with pytest.raises(ModelError, match="(?i)tensorrt"):
        run_export(ExportOptions(tiny=True, segmenter=None, captioner="none", formats=("onnx", "engine")),
                   tmp_path / "b")
    assert not (tmp_path / "b").exists()


# ---- CLI ------------------------------------------------------------------------------------------
def _cli():
    from imgdiff_rt.cli.main import cli

    return cli


CLI_CASES = [
    # (args, exit code, text expected in the output)
    (["export", "--help"], 0, "Examples:"),
    (["export", "--captioner", "gpt:foo", "--out", "{tmp}/x"], 2, "Error: --captioner"),
    (["export", "--segmenter", "none", "--clip", "none", "--captioner", "none", "--out", "{tmp}/x"], 2,
     "nothing to export"),
    (["export", "--check", "{tmp}/missing"], 2, "--check takes a model bundle folder"),
    (["export", "--precision", "fp16", "--out", "{tmp}/x"], 2, "Error: --precision 'fp16' is built as TensorRT"),
    (["export", "--segmenter", "none", "--clip", "{tmp}/no-clip", "--captioner", "none", "--out", "{tmp}/x"], 2,
     "--random-init"),
]


@pytest.mark.parametrize("args, code, text", CLI_CASES)
def test_cli_table(args, code, text, tmp_path):
    result = CliRunner().invoke(_cli(), [a.format(tmp=tmp_path) for a in args])
    assert result.exit_code == code, result.output
    assert text in result.output
    if code:
        assert result.output.count("Error:") == 1, "errors are one line"


def test_every_spec_belongs_to_an_exported_family():
    from imgdiff_rt.models.specs import FAMILIES, SPECS, family_specs

    assert {s for family in FAMILIES for s in family_specs(family)} == set(SPECS)


@pytest.mark.parametrize("formats, precision, built", [
    (("onnx",), "fp32", ["onnx-fp32"]),
    (("onnx",), "int8", ["onnx-fp32", "onnx-int8"]),
    (("engine",), "fp32", ["onnx-fp32", "engine-fp16"]),
    (("onnx", "engine"), "fp16", ["onnx-fp32", "engine-fp16"]),
])
def test_artifact_table(formats, precision, built):
    assert [f"{a.fmt}-{a.precision}" for a in build_mod.artifacts_for(formats, precision)] == built


def test_fp16_onnx_is_refused_not_written_as_fp32(tmp_path):
    with pytest.raises(UsageError, match="fp16") as caught:
        run_export(ExportOptions(tiny=True, captioner="none", precision="fp16"), tmp_path / "b")
    assert caught.value.parameter == "precision" and not (tmp_path / "b").exists()
