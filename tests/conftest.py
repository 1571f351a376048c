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


@pytest.fixture(scope="module")
def spot(shared_data: Path) -> dict[str, Path]:
    """Spot-the-Diff's test captions in both of its reference formats: harsh19's lists and the COCO file."""
    d = shared_data / "spot-the-diff-captions"
    return {"harsh19": d / "harsh19_test.json", "test": d / "spot_test_change_captions_reformat.json"}
