"""``device`` ("cpu", "cuda", "cuda:N"): where the models run, mapped to ONNX Runtime's execution providers and
the PyTorch device of caption generation, and checked before any work (a missing GPU is one line, not a
traceback from deep inside a session)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from imgdiff_rt.errors import UsageError

_PATTERN = re.compile(r"(cpu|cuda)(?::(\d+))?")
CPU_PROVIDER, CUDA_PROVIDER = "CPUExecutionProvider", "CUDAExecutionProvider"


@dataclass(frozen=True)
class Device:
    kind: str  # "cpu" | "cuda"
    index: int = 0

    @property
    def torch_device(self) -> str:
        return "cpu" if self.kind == "cpu" else f"cuda:{self.index}"

    @property
    def ort_providers(self) -> list:
        """ONNX Runtime providers in order: the CUDA one pinned to this GPU, the CPU as the fallback for ops
        the GPU provider lacks."""
        if self.kind == "cpu":
            return [CPU_PROVIDER]
        return [(CUDA_PROVIDER, {"device_id": self.index}), CPU_PROVIDER]

    def __str__(self) -> str:
        return self.torch_device


def parse_device(text: str) -> Device:
    found = _PATTERN.fullmatch(text.strip().lower())
    if found is None:
        raise UsageError(f"device {text!r}: use cpu, cuda or cuda:N", parameter="device")
    return Device(found.group(1), int(found.group(2) or 0) if found.group(1) == "cuda" else 0)


def check_device(device: Device) -> Device:
    """``device`` when this machine has it; UsageError naming what is missing (PyTorch's CUDA, the GPU index,
    or onnxruntime-gpu's CUDA provider) otherwise."""
    if device.kind == "cpu":
        return device
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise UsageError(f"device {device}: no CUDA GPU is visible here (PyTorch sees none); use device cpu",
                         parameter="device")
    if device.index >= count:
        raise UsageError(f"device {device}: only {count} CUDA GPU(s) here (cuda:0..cuda:{count - 1})",
                         parameter="device")
    import onnxruntime as ort

    if CUDA_PROVIDER not in ort.get_available_providers():
        raise UsageError(f"device {device}: this onnxruntime has no {CUDA_PROVIDER} (install onnxruntime-gpu)",
                         parameter="device")
    return device


def session_settings(device_text: str | None, backend: str) -> tuple[dict, dict]:
    """(session options, caption options) that put ``backend`` on ``device_text`` (None: each backend's own
    default). UsageError for a device the backend cannot honour, instead of running somewhere else."""
    if device_text is None:
        return {}, {}
    device = check_device(parse_device(device_text))
    if backend == "triton":
        raise UsageError("device: the Triton server places its models itself (instance kind in triton-repo)",
                         parameter="device")
    if backend == "tensorrt" and device.kind == "cpu":
        raise UsageError("device cpu: TensorRT engines run on a CUDA GPU; use backend onnx on the CPU",
                         parameter="device")
    if backend == "tensorrt" and device.index != 0:
        raise UsageError(f"device {device}: the tensorrt backend runs its engines on cuda:0", parameter="device")
    if backend == "torch" and device.kind == "cuda":
        raise UsageError(f"device {device}: the torch backend (the eager reference) runs on the CPU only",
                         parameter="device")
    sessions = {"providers": device.ort_providers} if backend == "onnx" else {}
    return sessions, {"device": device.torch_device}


def half_precision(half: bool, precision: str) -> str:
    """``precision``, or fp16 for ``half`` (the alias users know from Ultralytics); UsageError on a contradiction."""
    if not half:
        return precision
    if precision not in ("auto", "fp32", "fp16"):
        raise UsageError(f"half is precision fp16; it contradicts precision {precision}", parameter="half")
    return "fp16"
