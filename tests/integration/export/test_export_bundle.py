"""The bundle of a tiny export: manifest, reader, re-export reuse, atomic replacement, --check,
--segmenter-onnx, the CLI's export and check, and engines on a GPU."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from imgdiff_rt.errors import ModelError
from imgdiff_rt.export.build import ExportOptions, run_export
from imgdiff_rt.models.bundle import SCHEMA, Bundle, sha256_file
from imgdiff_rt.export.bundle_check import check_bundle
from imgdiff_rt.torch_models.tokenizers import SYNTHETIC_MARKER

TINY = dict(tiny=True, random_init=True, imgsz=64, precision="int8", captioner="blip")
EXPECTED_SPECS = {"segmenter", "clip_image", "clip_text", "blip_vision"}


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory):
    """One tiny bundle (fp32 + int8, segmenter + CLIP + BLIP) exported once for the whole session."""
    out = tmp_path_factory.mktemp("bundle") / "models"
    messages: list[str] = []
    manifest = run_export(ExportOptions(**TINY), out, progress=messages.append)
    return out, manifest, messages


def test_manifest_records_every_graph(tiny_bundle):
    out, manifest, messages = tiny_bundle
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk["schema"] == SCHEMA == manifest.schema
    assert {e["spec"] for e in on_disk["entries"].values()} == EXPECTED_SPECS
    assert {e["precision"] for e in on_disk["entries"].values()} == {"fp32", "int8"}
    for key, entry in on_disk["entries"].items():
        file = out / entry["file"]
        assert file.is_file() and sha256_file(file) == entry["sha256"] and file.stat().st_size == entry["bytes"]
        assert entry["opset"] >= 17 and entry["inputs"] and entry["outputs"]
        assert entry["source"]["weights"] == "tiny" and "tiny" in entry["source"]["label"]
        assert entry["libraries"]["torch"] and entry["export_seconds"] >= 0 and entry["fingerprint"]
        if entry["precision"] == "fp32":
            assert entry["parity"]["ok"], key
        else:
            assert all(0.5 < r["min_cosine"] <= 1.0 + 1e-9 for r in entry["accuracy"]["vs_fp32"].values())
    blip = on_disk["entries"]["blip_vision/onnx-fp32"]["parity"]["generation"]
    assert blip["exact"] and blip["distinct_captions"] > 1
    assert "token_agreement" in on_disk["entries"]["blip_vision/onnx-int8"]["accuracy"]["generation"]
    assert any("parity ok" in m for m in messages), "progress is reported per step"


def test_generation_and_tokenizer_files_are_saved_and_marked_synthetic(tiny_bundle):
    out, manifest, _ = tiny_bundle
    gen = manifest.generation["blip"]
    assert gen.tokenizer_synthetic and gen.weights == "tiny"
    folder = out / gen.path
    for name in ("config.json", "model.safetensors", "tokenizer_config.json", "preprocessor_config.json",
                 SYNTHETIC_MARKER):
        assert (folder / name).is_file(), name
    from transformers import AutoTokenizer, BlipForConditionalGeneration

    assert BlipForConditionalGeneration.from_pretrained(str(folder)).config.text_config.vocab_size == 128
    assert len(AutoTokenizer.from_pretrained(str(folder))) == 128
    clip_tok = manifest.tokenizers["clip"]
    assert clip_tok.synthetic and (out / clip_tok.path / SYNTHETIC_MARKER).is_file()


def test_bundle_reader(tiny_bundle):
    out, _, _ = tiny_bundle
    bundle = Bundle.load(out)
    spec = bundle.spec("clip_image")
    assert spec.unbound_symbols() == [] and spec.sizes["image_size"] == 32
    assert bundle.path("segmenter", precision="int8").is_file()
    assert bundle.tensor_names("segmenter") == {"images": "images", "preds": "preds", "protos": "protos"}
    assert (bundle.generation_dir("blip") / "config.json").is_file()
    with pytest.raises(ModelError, match="no llava_vision"):
        bundle.entry("llava_vision")
    with pytest.raises(ModelError, match="no model bundle"):
        Bundle.load(out.parent / "nowhere")


def test_check_passes_and_catches_a_changed_file(tiny_bundle, tmp_path):
    out, _, _ = tiny_bundle
    report = check_bundle(out)
    assert all(r["ok"] for r in report.values())
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    victim = copy / "onnx" / "clip_text.int8.onnx"
    victim.write_bytes(victim.read_bytes() + b"\0")
    with pytest.raises(ModelError, match="clip_text/onnx-int8: sha256"):
        check_bundle(copy, parity=False)


def test_reexport_keeps_current_entries_without_loading(tiny_bundle, tmp_path, monkeypatch):
    out, manifest, _ = tiny_bundle
    target = tmp_path / "models"
    shutil.copytree(out, target)

    def no_loading(*_a, **_k):
        raise AssertionError("a current family must not be loaded again")

    monkeypatch.setattr("imgdiff_rt.torch_models.hf.load_family", no_loading)
    monkeypatch.setattr("imgdiff_rt.torch_models.segmenter.build_segmenter", no_loading)
    messages: list[str] = []
    again = run_export(ExportOptions(**TINY), target, progress=messages.append)
    assert sum("current, kept" in m for m in messages) == len(manifest.entries)
    assert {k: e.sha256 for k, e in again.entries.items()} == {k: e.sha256 for k, e in manifest.entries.items()}
    assert (target / again.generation["blip"].path / "config.json").is_file()


def test_failed_export_leaves_the_previous_bundle_intact(tiny_bundle, tmp_path, monkeypatch):
    out, _, _ = tiny_bundle
    target = tmp_path / "models"
    shutil.copytree(out, target)
    before = (target / "manifest.json").read_bytes()

    def boom(*_a, **_k):
        raise ModelError("simulated export failure")

    monkeypatch.setattr("imgdiff_rt.export.onnx_export.export_onnx", boom)
    with pytest.raises(ModelError, match="simulated"):
        run_export(ExportOptions(**{**TINY, "force": True, "segmenter": None}), target)
    assert (target / "manifest.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models"], "no staging folder is left behind"


def test_segmenter_onnx_is_registered_as_is(shared_models, tmp_path):
    path = shared_models / "yolov8n-seg-int8.onnx"
    manifest = run_export(ExportOptions(segmenter_onnx=str(path), segmenter=None, clip=None, captioner=None),
                          tmp_path / "b")
    (key, entry), = manifest.entries.items()
    assert key == "segmenter/onnx-int8" and entry.weights == "registered-onnx"
    assert dict(entry.tensor_names) == {"images": "images", "preds": "output0", "protos": "output1"}
    assert entry.inputs["images"].shape == (1, 3, 320, 320)
    assert entry.outputs["preds"].shape == (1, 116, 2100)
    assert entry.outputs["protos"].shape == (1, 32, 80, 80)
    assert entry.sha256 == sha256_file(path)
    assert check_bundle(tmp_path / "b")[key]["layout"] == "ok"


@pytest.mark.tensorrt
def test_engine_bundle_on_a_gpu(tmp_path):
    pytest.importorskip("tensorrt", reason="TensorRT is not installed (CI has no GPU): engines are built on GPUs")
    manifest = run_export(ExportOptions(tiny=True, captioner="none", formats=("onnx", "engine")), tmp_path / "b")
    engines = [e for e in manifest.entries.values() if e.format == "engine"]
    assert {e.spec for e in engines} == {"segmenter", "clip_image", "clip_text"}
    assert all(e.precision == "fp16" and e.engine for e in engines)


# ---- CLI ------------------------------------------------------------------------------------------
def _cli():
    from imgdiff_rt.cli.main import cli

    return cli


def test_cli_tiny_export_and_check(tmp_path):
    out = tmp_path / "b"
    result = CliRunner().invoke(_cli(), ["export", "--tiny", "--random-init", "--segmenter", "none",
                                         "--captioner", "none", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "random weights" in result.output and "parity ok" in result.output
    assert Bundle.load(out).entry("clip_text").weights == "tiny"
    result = CliRunner().invoke(_cli(), ["export", "--check", str(out)])
    assert result.exit_code == 0 and "bundle ok" in result.output
