"""The typed manifest on real exported bundles: what the exporter wrote reads back into records and serialises
to the same bytes, and a re-export carrying every entry over writes them as they were."""

from __future__ import annotations

import json
import shutil

import pytest

from imgdiff_rt.models.bundle import Bundle
from imgdiff_rt.models.manifest import MANIFEST, Manifest


@pytest.mark.parametrize("fixture", ["tiny_runtime_bundle", "registered_segmenter_bundle"])
def test_an_exported_manifest_round_trips_byte_for_byte(request, fixture):
    root = request.getfixturevalue(fixture)
    text = (root / MANIFEST).read_text(encoding="utf-8")
    bundle = Bundle.load(root)
    assert bundle.manifest.to_json() == text
    assert Manifest.from_json(json.loads(text), root).to_json() == text
    assert json.loads(text) == bundle.manifest.to_dict()
    for key, entry in bundle.entries.items():  # every record as the JSON says, by attribute
        raw = json.loads(text)["entries"][key]
        assert (entry.spec, entry.format, entry.precision, entry.file, entry.sha256, entry.bytes) == \
            (raw["spec"], raw["format"], raw["precision"], raw["file"], raw["sha256"], raw["bytes"])
        assert entry.weights == raw["source"]["weights"] and dict(entry.sizes) == raw["sizes"]
        assert bundle.path(entry.spec, entry.format, entry.precision).is_file()


def test_registered_segmenter_records(registered_segmenter_bundle):
    entry = Bundle.load(registered_segmenter_bundle).entry("segmenter", "onnx", "int8")
    assert entry.registered is not None and entry.registered.quantization == "dynamic-int8"
    assert entry.registered.tensorrt_parsable is False and entry.weights == "registered-onnx"
    assert dict(entry.tensor_names) == {"images": "images", "preds": "output0", "protos": "output1"}
    assert entry.inputs["images"].shape == (1, 3, 320, 320) and entry.parity.skipped


def test_a_reexport_carries_entries_and_parts_over_unchanged(tiny_runtime_bundle, tmp_path):
    from imgdiff_rt.export.build import ExportOptions, run_export

    target = tmp_path / "models"
    shutil.copytree(tiny_runtime_bundle, target)
    before = json.loads((target / MANIFEST).read_text())
    before["entries"]["segmenter/onnx-fp32"]["note_from_a_later_version"] = {"kept": True}
    (target / MANIFEST).write_text(json.dumps(before, indent=2) + "\n")
    messages: list[str] = []
    manifest = run_export(ExportOptions(tiny=True, random_init=True, imgsz=64, captioner=None), target,
                          progress=messages.append)
    after = json.loads((target / MANIFEST).read_text())
    assert sum("current, kept" in m for m in messages) == len(before["entries"])
    assert after["entries"] == before["entries"]  # unknown keys included
    assert {s: after[s] for s in ("generation", "tokenizers", "torch")} == \
        {s: before[s] for s in ("generation", "tokenizers", "torch")}
    assert manifest.to_json() == (target / MANIFEST).read_text()
