"""Precision auto: per graph the fastest artifact whose recorded checks passed; a registered int8 segmenter
runs its checked fp32 rebuild, else itself."""

from __future__ import annotations

from imgdiff_rt.models import auto_precision as AP
from imgdiff_rt.models.manifest import Entry


class _Bundle:
    """The two queries resolve makes, over hand-written entries."""

    def __init__(self, *entries):
        self.entries = list(entries)

    def graph_entries(self, spec, fmt=None):
        return [e for e in self.entries if e.spec == spec and (fmt is None or e.format == fmt)]


def _entry(spec, precision, **extra) -> Entry:
    key = f"{spec}/onnx-{precision}"
    return Entry.from_json(key, {"spec": spec, "format": "onnx", "precision": precision,
                                 "file": f"onnx/{spec}.{precision}.onnx", "sha256": "0" * 64, **extra})


def _int8(spec, cosine, agreement=None):
    accuracy = {"vs_fp32": {"out": {"min_cosine": cosine}}}
    if agreement is not None:
        accuracy["generation"] = {"token_agreement": agreement}
    return _entry(spec, "int8", accuracy=accuracy)


def test_int8_only_where_its_recorded_accuracy_passed():
    bundle = _Bundle(_entry("clip_image", "fp32"), _int8("clip_image", 0.9998),
                     _entry("blip_vision", "fp32"), _int8("blip_vision", 0.9996, agreement=0.5),
                     _entry("clip_text", "fp32"), _int8("clip_text", 0.98))
    assert AP.resolve(bundle, "clip_image", "auto") == "int8"
    assert AP.resolve(bundle, "blip_vision", "auto") == "fp32"  # its greedy tokens differ too often
    assert AP.resolve(bundle, "clip_text", "auto") == "fp32"  # cosine under the bound
    assert AP.resolve(bundle, "clip_image", "fp32") == "fp32"  # an explicit precision is kept
    cuda = {"providers": [("CUDAExecutionProvider", {"device_id": 0}), "CPUExecutionProvider"]}
    assert AP.resolve(bundle, "clip_image", "auto", "onnx", cuda) == "fp32"  # int8 ops are the CPU's
    assert AP.resolve(bundle, "clip_image", "auto", "tensorrt") == "fp32"


def test_a_registered_segmenter_runs_its_checked_rebuild_else_itself():
    registered = _entry("segmenter", "int8", registered={"quantization": "dynamic-int8"})
    rebuilt = _entry("segmenter", "fp32", dequantized_from="segmenter/onnx-int8", parity={"ok": True})
    assert AP.resolve(_Bundle(registered, rebuilt), "segmenter", "auto") == "fp32"
    assert AP.label(_Bundle(registered, rebuilt), "segmenter", "fp32") == "fp32-dequantized"
    failed = _entry("segmenter", "fp32", dequantized_from="segmenter/onnx-int8", parity={"ok": False})
    assert AP.resolve(_Bundle(registered, failed), "segmenter", "auto") == "int8"
    assert AP.resolve(_Bundle(registered), "segmenter", "auto") == "int8"  # held in one precision only
