"""Test-wide set-up: nothing reaches a model hub or pip-installs at run time; shared data is located once."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from helpers import SHARED

# Folders the environment must name before any library is imported (so before pytest's temp factories exist):
# made in the system temp folder, never in the checkout, and removed when the test process ends.
_SCRATCH = Path(tempfile.mkdtemp(prefix="imgdiff-rt-tests-"))
atexit.register(shutil.rmtree, _SCRATCH, ignore_errors=True)

# Offline everywhere: Hugging Face, Ultralytics (no downloads, no auto-install), a private config dir.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "false")
os.environ.setdefault("YOLO_CONFIG_DIR", str(_SCRATCH / "yolo-config"))
os.environ.setdefault("MPLBACKEND", "Agg")

# A developer's own model bundle must not change what the tests run (e.g. the CLI's default detector), and the
# tests write nothing into the real home: they get an empty IMGDIFF_RT_HOME, where the Triton server's side
# environment is built too (once per test run) unless IMGDIFF_RT_TRITON_ENV names one.
os.environ["IMGDIFF_RT_HOME"] = str(_SCRATCH / "home")


def _shared_path(*parts: str) -> Path:
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"{p} is absent: the ../shared data folder sits beside the project in CI and dev sessions")
    return p


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return _shared_path("data")


@pytest.fixture(scope="session")
def shared_models() -> Path:
    return _shared_path("models")


# ---- tiny model bundles, exported once per test session (shared by several test files) ------------------
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
