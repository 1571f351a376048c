"""Whether a serialized TensorRT engine fits this machine, and loading it (the runtime side of engines).

A serialized engine is tied to the TensorRT version that built it and to the GPU's compute capability. The
build info records both (the bundle manifest stores it) and ``check_engine_compatible`` refuses a mismatch
with a clear message before TensorRT would fail with an opaque deserialisation error. TensorRT is an optional
extra, imported only inside these functions; without it they raise TensorRTUnavailableError.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from imgdiff_rt.errors import EngineIncompatibleError, TensorRTUnavailableError


def import_tensorrt():
    """The ``tensorrt`` module, or TensorRTUnavailableError saying how to get it."""
    try:
        import tensorrt
    except ImportError as exc:
        raise TensorRTUnavailableError(
            "TensorRT is not installed: install the 'tensorrt' extra (pip install 'imgdiff-rt[tensorrt]') "
            "on a machine with an NVIDIA GPU and CUDA, or export --format onnx for ONNX Runtime"
        ) from exc
    return tensorrt


def gpu_identity() -> dict:
    """Name and compute capability of CUDA device 0; TensorRTUnavailableError when there is none."""
    try:
        import torch
    except ImportError as exc:
        raise TensorRTUnavailableError("identifying the GPU needs torch with CUDA") from exc
    if not torch.cuda.is_available():
        raise TensorRTUnavailableError("no CUDA GPU is visible: TensorRT engines are built and run on a GPU")
    major, minor = torch.cuda.get_device_capability(0)
    return {"name": torch.cuda.get_device_name(0), "compute_capability": f"{major}.{minor}",
            "cuda": torch.version.cuda}


def runtime_identity() -> dict:
    """What an engine must match here: TensorRT version and the GPU."""
    trt = import_tensorrt()
    return {"tensorrt_version": trt.__version__, "gpu": gpu_identity()}


# ---- compatibility ------------------------------------------------------------------------------
def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in str(version).split(".")[:3] if p.isdigit())


def check_engine_compatible(info: Mapping, current: Mapping | None = None) -> None:
    """Raise EngineIncompatibleError when the engine described by ``info`` cannot run here.

    ``info``: ``build_engine``'s result (or the manifest entry). ``current``: ``runtime_identity()`` (the
    default; TensorRTUnavailableError without TensorRT or a GPU). Rules: the same TensorRT version (same major
    and not older when built version-compatible); the same compute capability (>= 8.0 when built for
    Ampere-plus hardware compatibility).
    """
    current = runtime_identity() if current is None else current
    problems = []
    built, here = info.get("tensorrt_version"), current.get("tensorrt_version")
    if not built or not here:
        problems.append("TensorRT version unknown")
    elif info.get("version_compatible"):
        b, h = version_tuple(built), version_tuple(here)
        if b[:1] != h[:1] or h < b:
            problems.append(f"built with TensorRT {built} (version-compatible), running {here}")
    elif version_tuple(built) != version_tuple(here):
        problems.append(f"built with TensorRT {built}, running {here}")
    cc_built = (info.get("gpu") or {}).get("compute_capability")
    cc_here = (current.get("gpu") or {}).get("compute_capability")
    if not cc_built or not cc_here:
        problems.append("GPU compute capability unknown")
    elif info.get("hardware_compatibility") == "ampere_plus":
        if version_tuple(cc_here) < (8, 0):
            problems.append(f"built for Ampere-or-newer GPUs, this GPU has compute capability {cc_here}")
    elif version_tuple(cc_built) != version_tuple(cc_here):
        gpu_built = (info.get("gpu") or {}).get("name", "?")
        gpu_here = (current.get("gpu") or {}).get("name", "?")
        problems.append(f"built on {gpu_built} (compute capability {cc_built}), this GPU is {gpu_here} "
                        f"({cc_here})")
    if problems:
        raise EngineIncompatibleError(
            f"TensorRT engine {info.get('path', '')} cannot run here: {'; '.join(problems)}. "
            "Rebuild it on this machine (imgdiff-rt export --format engine) or use the ONNX artifacts")


def load_engine(path: str | Path, info: Mapping):
    """Deserialise an engine after ``check_engine_compatible``; returns the ICudaEngine."""
    check_engine_compatible(info)
    trt = import_tensorrt()
    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    engine = runtime.deserialize_cuda_engine(Path(path).read_bytes())
    if engine is None:
        raise EngineIncompatibleError(f"TensorRT could not deserialise {path} (see its log above)")
    return engine
