"""Test-wide set-up: nothing reaches a model hub or pip-installs at run time; shared data is located once."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("IMGDIFF_RT_SHARED", ROOT.parent / "shared"))

# Offline everywhere: Hugging Face, Ultralytics (no downloads, no auto-install), a project-local config dir.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "false")
os.environ.setdefault("YOLO_CONFIG_DIR", str(ROOT / ".yolo_config"))
os.environ.setdefault("MPLBACKEND", "Agg")

# A developer's own model bundle must not change what the tests run (e.g. the CLI's default detector): the
# tests get an empty IMGDIFF_RT_HOME. The Triton server's side environment stays where it was (reused).
if "IMGDIFF_RT_TRITON_ENV" not in os.environ:
    from imgdiff_rt.triton.server import default_env_dir

    os.environ["IMGDIFF_RT_TRITON_ENV"] = str(default_env_dir())
os.environ["IMGDIFF_RT_HOME"] = tempfile.mkdtemp(prefix="imgdiff-rt-test-home-")


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
