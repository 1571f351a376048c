"""Model bundles for the integration tests, exported once per test session and shared by several test files
(unit tests never export one: these fixtures do not exist there), and the headless browser for the tests that
drive a page."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import headless_chromium


@pytest.fixture(scope="session")
def tiny_runtime_bundle(tmp_path_factory) -> Path:
    """segmenter + CLIP, tiny random-init configs, fp32 only (the sessions' parity reference)."""
    from imgdiff_rt.export.build import ExportOptions, run_export

    out = tmp_path_factory.mktemp("runtime-bundle") / "models"
    run_export(ExportOptions(tiny=True, random_init=True, imgsz=64, captioner=None), out)
    return out


@pytest.fixture(scope="session")
def registered_segmenter_bundle(tmp_path_factory, shared_models) -> Path:
    """The real pretrained segmenter from ../shared registered as is (no CLIP, no captioner)."""
    from imgdiff_rt.export.build import ExportOptions, run_export

    out = tmp_path_factory.mktemp("registered-bundle") / "models"
    run_export(ExportOptions(segmenter_onnx=str(shared_models / "yolov8n-seg-int8.onnx"), clip=None,
                             captioner=None), out)
    return out


@pytest.fixture(scope="session")
def tiny_caption_bundle(tmp_path_factory) -> Path:
    """segmenter, CLIP (image + text) and BLIP, tiny random-init configs (the Triton server tests' bundle)."""
    from imgdiff_rt.export.build import ExportOptions, run_export

    out = tmp_path_factory.mktemp("caption-bundle") / "models"
    run_export(ExportOptions(tiny=True, random_init=True), out)
    return out


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium through Playwright, one per test file; a skip where either is absent."""
    yield from headless_chromium()
