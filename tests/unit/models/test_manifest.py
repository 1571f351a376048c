"""The typed manifest (models.manifest): parsed and checked in one place, unknown keys kept and written back as
they were read, hostile shapes refused with one ModelError line, the reader's records used by attribute."""

from __future__ import annotations

import json

import pytest

from imgdiff_rt.errors import ModelError
from imgdiff_rt.models import auto_precision as AP
from imgdiff_rt.models.bundle import Bundle, ManifestDraft
from imgdiff_rt.models.export_checks import parity_cell
from imgdiff_rt.models.manifest import MANIFEST, SCHEMA, Entry, Manifest, TorchPart, load_manifest

SHA = "ab" * 32


def _entry(spec="clip_image", precision="fp32", **extra) -> dict:
    return {"spec": spec, "format": "onnx", "precision": precision, "file": f"onnx/{spec}.{precision}.onnx",
            "sha256": SHA, "bytes": 10, "sizes": {"image_size": 32, "embed_dim": 16},
            "inputs": {"pixel_values": {"dtype": "float32", "shape": ["batch", 3, 32, 32]}},
            "source": {"family": "clip", "id": "x", "revision": None, "weights": "tiny", "label": "tiny (clip)"},
            **extra}


def _doc(**entries) -> dict:
    return {"schema": SCHEMA, "imgdiff_rt_version": "0.1.0", "entries": entries,
            "generation": {"blip": {"family": "blip", "weights": "tiny", "tokenizer_synthetic": True, "path": "blip",
                                    "files": ["config.json"], "future_field": [1, 2]}},
            "tokenizers": {"clip": {"path": "clip", "synthetic": True}},
            "torch": {"segmenter": {"family": "segmenter", "file": "segmenter/state_dict.pt",
                                    "info": {"source": "FastSAM-s.pt", "tiny": True}}},
            "export_seconds": 1.5}


def test_records_read_by_attribute(tmp_path):
    parity = {"outputs": {"image_embeds": {"max_abs": 1e-7, "min_cosine": 1.0, "ok": True}}, "ok": True}
    manifest = Manifest.from_json(_doc(**{"clip_image/onnx-fp32": _entry(parity=parity)}), tmp_path)
    entry = manifest.entries["clip_image/onnx-fp32"]
    assert (entry.key, entry.spec, entry.precision, entry.file, entry.sha256) == \
        ("clip_image/onnx-fp32", "clip_image", "fp32", "onnx/clip_image.fp32.onnx", SHA)
    assert entry.weights == "tiny" and entry.source.name == "tiny (clip)"
    assert entry.inputs["pixel_values"].shape == ("batch", 3, 32, 32) and entry.sizes["image_size"] == 32
    assert entry.parity.ok and entry.parity.outputs["image_embeds"].min_cosine == 1.0
    assert parity_cell(entry) == "ok max|d|=1.0e-07"
    assert manifest.generation["blip"].path == "blip" and manifest.generation["blip"].tokenizer_synthetic
    assert manifest.tokenizers["clip"].synthetic and manifest.export_seconds == 1.5
    torch_part = manifest.torch["segmenter"]
    assert isinstance(torch_part, TorchPart) and torch_part.build.source == "FastSAM-s.pt" and torch_part.build.tiny
    assert set(manifest.parts("clip")) == {"tokenizers"} and manifest.parts("segmenter")["torch"] is torch_part
    with pytest.raises(AttributeError):
        entry.spec = "other"  # frozen
    with pytest.raises(TypeError):
        entry.sizes["image_size"] = 64  # read-only mapping


def test_unknown_keys_are_kept_and_written_back_as_read(tmp_path):
    doc = _doc(**{"clip_image/onnx-fp32": _entry(from_a_later_version={"nested": [1, 2, 3]})})
    doc["a_new_section"] = {"anything": True}
    text = json.dumps(doc, indent=2) + "\n"
    manifest = Manifest.from_json(json.loads(text), tmp_path)
    assert manifest.to_json() == text
    assert manifest.entries["clip_image/onnx-fp32"].to_dict()["from_a_later_version"] == {"nested": [1, 2, 3]}
    assert manifest.generation["blip"].to_dict()["future_field"] == [1, 2]
    manifest.to_dict()["entries"].clear()  # a copy: the typed manifest keeps what it read
    assert len(manifest.entries) == 1 and manifest.to_json() == text


def test_descriptive_fields_of_the_wrong_type_read_as_absent(tmp_path):
    entry = _entry(bytes="ten", parity=[1], accuracy="no", registered={}, sizes=None, inputs={"x": 3})
    manifest = Manifest.from_json(_doc(**{"clip_image/onnx-fp32": entry}), tmp_path)
    typed = manifest.entries["clip_image/onnx-fp32"]
    assert typed.bytes is None and typed.parity is None and typed.accuracy is None and typed.registered is None
    assert dict(typed.sizes) == {} and dict(typed.inputs) == {}


@pytest.mark.parametrize("mutate, problem", [
    (lambda d: d.update(entries=[]), "'entries' is a JSON list, not an object"),
    (lambda d: d["entries"].update(bad="x"), "entry 'bad' is not an object"),
    (lambda d: d["entries"]["clip_image/onnx-fp32"].pop("sha256"), "has no 'sha256'"),
    (lambda d: d["entries"]["clip_image/onnx-fp32"].update(sha256="zz"), "sha256 is not 64 hex digits"),
    (lambda d: d["entries"]["clip_image/onnx-fp32"].update(file=7), "has no 'file'"),
    (lambda d: d["entries"]["clip_image/onnx-fp32"].update(file="../../etc/passwd"), "leaves the bundle"),
    (lambda d: d["entries"]["clip_image/onnx-fp32"].update(file="/etc/passwd"), "must be relative"),
    (lambda d: d["generation"]["blip"].update(path="../.."), "leaves the bundle"),
    (lambda d: d["torch"]["segmenter"].update(file=3), "torch.segmenter.file is not a string"),
    (lambda d: d.update(tokenizers=[]), "'tokenizers' is not an object"),
    (lambda d: d.update(schema="other/v9"), "schema 'other/v9' is not"),
])
def test_a_hostile_manifest_is_refused_with_one_model_error(tmp_path, mutate, problem):
    doc = _doc(**{"clip_image/onnx-fp32": _entry()})
    mutate(doc)
    (tmp_path / MANIFEST).write_text(json.dumps(doc))
    with pytest.raises(ModelError, match="re-export the bundle|must be relative|leaves the bundle") as caught:
        Bundle.load(tmp_path)
    assert problem in str(caught.value) and "\n" not in str(caught.value)


def test_a_manifest_that_is_no_object_or_no_json_is_refused(tmp_path):
    file = tmp_path / MANIFEST
    file.write_text("[]")
    with pytest.raises(ModelError, match="the manifest is a JSON list, not an object"):
        load_manifest(file)
    file.write_text('{"schema": "imgdiff-rt/bun')
    with pytest.raises(ModelError, match="cannot be read"):
        load_manifest(file)


def test_the_draft_writes_what_the_reader_reads(tmp_path):
    draft = ManifestDraft({"tiny": True})
    draft.add_entry("clip_image/onnx-fp32", _entry())
    draft.add_part("tokenizers", "clip", {"path": "clip", "synthetic": True})
    written = draft.write(tmp_path, 2.0)
    on_disk = (tmp_path / MANIFEST).read_text()
    assert written.to_json() == on_disk and list(json.loads(on_disk)) == \
        ["schema", "imgdiff_rt_version", "created", "options", "libraries", "entries", "generation", "tokenizers",
         "torch", "export_seconds"]
    bundle = Bundle.load(tmp_path)
    assert bundle.manifest == written and bundle.tokenizer_dir("clip") == tmp_path / "clip"
    refused = ManifestDraft({})
    refused.add_entry("x/onnx-fp32", {**_entry(), "file": "../outside.onnx"})
    with pytest.raises(ModelError, match="leaves the bundle"):
        refused.write(tmp_path / "other", 1.0)


def test_auto_precision_reads_the_typed_records():
    int8 = Entry.from_json("clip_image/onnx-int8", _entry(precision="int8", accuracy={
        "vs_fp32": {"image_embeds": {"min_cosine": 0.9998}}, "generation": {"token_agreement": 0.95}}))
    weak = Entry.from_json("clip_image/onnx-int8", _entry(precision="int8", accuracy={
        "vs_fp32": {"image_embeds": {"min_cosine": 0.98}}}))
    assert AP.int8_passed(int8) and not AP.int8_passed(weak)
    assert parity_cell(int8) == "int8 cos>=0.9998"
    rebuilt = Entry.from_json("segmenter/onnx-fp32", _entry(
        "segmenter", dequantized_from="segmenter/onnx-int8", parity={
            "ok": True, "outputs": {"preds": {"min_cosine": 0.9994, "max_abs": 1.0}},
            "detections": {"matched": 12, "reference_detections": 12, "recall": 1.0}}))
    assert AP.dequantized_passed(rebuilt)
    assert parity_cell(rebuilt) == "fp32 rebuild vs int8: cos>=0.9994, detections 12/12"
