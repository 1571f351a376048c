"""Tiny model bundles for the runtime tests, exported once per test process (shared by several test files)."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

from imgdiff_rt.export.build import ExportOptions, run_export

#: segmenter + CLIP, tiny random-init configs, fp32 only (the sessions' parity reference)
TINY_RUNTIME = dict(tiny=True, random_init=True, imgsz=64, captioner=None)


@functools.cache
def tiny_runtime_bundle() -> Path:
    out = Path(tempfile.mkdtemp(prefix="imgdiff-rt-runtime-")) / "models"
    run_export(ExportOptions(**TINY_RUNTIME), out)
    return out


@functools.cache
def registered_segmenter_bundle(onnx_path: str) -> Path:
    """The real pretrained segmenter from ../shared registered as is (no CLIP, no captioner)."""
    out = Path(tempfile.mkdtemp(prefix="imgdiff-rt-registered-")) / "models"
    run_export(ExportOptions(segmenter_onnx=onnx_path, clip=None, captioner=None), out)
    return out
