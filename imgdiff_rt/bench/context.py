"""What the stage builders (``stages.py``) and the real-pair cells (``real_pairs.py``) share: the report's
backend columns, the ``Context`` every builder reads, ``StageSkipped``, and the two checks both make before a
cell runs (the int8 graph is there; the detector's left-image cache is empty).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from imgdiff_rt.models.bundle import Bundle


@dataclass(frozen=True)
class BackendChoice:
    """A column of the report: which Session backend, at which precision."""

    name: str
    backend: str
    precision: str
    label: str


BACKENDS = {b.name: b for b in (
    BackendChoice("torch", "torch", "fp32", "PyTorch eager fp32"),
    BackendChoice("default", "onnx", "auto", "ONNX Runtime, precision auto (run's default)"),
    BackendChoice("onnx", "onnx", "fp32", "ONNX Runtime fp32"),
    BackendChoice("onnx-int8", "onnx", "int8", "ONNX Runtime int8"),
    BackendChoice("tensorrt", "tensorrt", "fp16", "TensorRT fp16"),
    BackendChoice("triton", "triton", "fp32", "Triton (ONNX Runtime models)"),
)}
REFERENCE = "torch"


class StageSkipped(Exception):
    """This backend cannot run this stage here; ``str(e)`` says why (shown in the report)."""


@dataclass
class Context:
    """What every builder needs; sessions / detectors / captioners are opened once and reused across cells."""

    bundle: Bundle
    left: np.ndarray  # RGB uint8 pair used by detect / pipeline (and cut into crops for clip / caption)
    right: np.ndarray
    left_path: Path | None = None
    right_path: Path | None = None
    threads: int | None = None
    max_new_tokens: int | None = None  # None: the captioner's default
    session_opts: dict = field(default_factory=dict)
    caption_device: str | None = None  # PyTorch device of BLIP generation (BenchConfig.device); None: its default
    real_sets: tuple[str, ...] = ()  # the real-pair cells' sets, "NAME:COUNT" (bench/real_pairs.py)
    real_data: Path = Path("../shared/data")  # where LEVIR-CD and CLEVR-Change are found
    cache: dict = field(default_factory=dict)

    def opts(self) -> dict:
        return {**({"threads": self.threads} if self.threads else {}), **self.session_opts}

    def cached(self, key: tuple, make):
        if key not in self.cache:
            self.cache[key] = make()
        return self.cache[key]

    def close(self) -> None:
        for obj in self.cache.values():
            closer = getattr(obj, "close", None) or getattr(obj, "cleanup", None)  # cleanup: temporary folders
            if closer is not None:
                try:
                    closer()
                except Exception:  # noqa: BLE001 - closing is best effort at the end of a run
                    pass
        self.cache.clear()


def require_precision(ctx: Context, choice: BackendChoice, spec_name: str) -> None:
    """An int8 column needs the bundle's int8 graph; without it the cell is skipped, never run in fp32."""
    if choice.precision == "int8" and "int8" not in ctx.bundle.precisions(spec_name):
        raise StageSkipped(f"the bundle has no int8 {spec_name} graph (export with --precision int8)")


def forget_left(owner: Any) -> None:
    """Empty the detector's left-image cache: the benchmark repeats one pair, and a cache hit would time only
    the right image. ``left-cache`` rows in the report time the cached case on purpose."""
    cache = getattr(owner, "_cache", None)
    if cache is not None:
        cache.clear()
