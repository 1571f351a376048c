"""The CLI's start-up imports only what the command needs: `--help` and `run` on the pixel detector load no model
stack (torch, ONNX Runtime, transformers, ultralytics) and no slow SciPy/scikit-image parts. Checked in a fresh
interpreter with ``python -X importtime``, as a user would start it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from helpers import LEFT, RIGHT, ROOT

MODEL_STACK = {"torch", "onnxruntime", "transformers", "ultralytics", "tensorrt", "matplotlib"}
SLOW_SCIENCE = {"scipy.optimize", "scipy.ndimage", "scipy.spatial", "skimage", "skimage.segmentation"}
ARRAY_STACK = {"numpy", "cv2", "PIL", "scipy"}


def _imported(args: list[str], home: Path) -> set[str]:
    """Every module a fresh `imgdiff-rt ARGS` imports (from -X importtime), after checking it succeeded."""
    env = {**os.environ, "IMGDIFF_RT_HOME": str(home), "PYTHONWARNINGS": "ignore"}
    code = "import sys; from imgdiff_rt.cli.main import cli; sys.argv[0] = 'imgdiff-rt'; cli()"
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", code, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return set(re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s+(\S+)$", proc.stderr, flags=re.M))


def test_importtime_parser_sees_the_model_stack(tmp_path):
    # The check below can only fail if the parser sees imports at all: `--version` must show click.
    assert "click" in _imported(["--version"], tmp_path)


def test_help_imports_no_library_stack(tmp_path):
    modules = _imported(["--help"], tmp_path)
    assert not modules & (MODEL_STACK | SLOW_SCIENCE | ARRAY_STACK)
    assert not {m for m in modules if m.startswith("imgdiff_rt.cli.") and m.endswith(("_cmd", "run"))}


def test_run_on_the_pixel_detector_imports_no_model_stack(tmp_path):
    out = tmp_path / "out"
    modules = _imported(["run", str(LEFT), str(RIGHT), "--out", str(out)], tmp_path)
    assert list(out.glob("*.json"))  # it did the work
    assert "imgdiff_rt.detectors.pixel.detector" in modules
    assert not modules & (MODEL_STACK | SLOW_SCIENCE)
