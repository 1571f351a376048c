"""What the numbers were measured on: CPU, cores, GPU, library versions, and a measured peak FLOP/s.

The peak is *measured*, not looked up: the best of several large fp32 matrix products (torch and numpy, all
cores), which is close to what a BLAS can get from this CPU. Efficiency figures in the report are
"achieved FLOP/s of a stage / this peak" - an upper bound for what tuning could still win.
"""

from __future__ import annotations

import os
import platform
import time

_LIBRARIES = ("torch", "torchvision", "transformers", "onnx", "onnxruntime", "onnxruntime-gpu", "ultralytics",
              "tensorrt", "tritonclient", "nvidia-pytriton", "numpy", "opencv-python-headless", "matplotlib",
              "psutil", "imgdiff-rt")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """The SIMD features that decide fp32/int8 kernel speed (AVX2, AVX-512, VNNI, AMX)."""
    wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "amx_bf16")
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    have = set(line.split(":", 1)[1].split())
                    return [f for f in wanted if f in have]
    except OSError:
        pass
    return []


def gpu_info() -> dict | None:
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    props = torch.cuda.get_device_properties(0)
    return {"name": props.name, "memory_gib": round(props.total_memory / 2**30, 1),
            "compute_capability": f"{props.major}.{props.minor}", "cuda": torch.version.cuda}


def library_versions() -> dict[str, str]:
    from imgdiff_rt.models.bundle import library_versions as installed_versions

    return installed_versions(_LIBRARIES)


def machine_info() -> dict:
    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
        memory_gib = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        physical, memory_gib = None, None
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count()
    return {"cpu": cpu_model(), "cpu_flags": cpu_flags(), "logical_cores": os.cpu_count(),
            "physical_cores": physical, "usable_cores": affinity, "memory_gib": memory_gib,
            "gpu": gpu_info(), "os": platform.platform(), "python": platform.python_version(),
            "libraries": library_versions(),
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}


def _best_gflops(fn, flops: float, repeats: int) -> float:
    fn()  # first call: thread pool start-up, page faults
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return flops / best / 1e9


def measure_peak_flops(size: int = 2048, repeats: int = 5) -> dict:
    """fp32 GFLOP/s of an n x n matrix product (2 n^3 FLOPs), best of ``repeats``, with torch and numpy.

    The best of a few runs (not the median): the question is what the hardware can do, and a neighbour's
    load only ever makes a run slower.
    """
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    flops = 2.0 * size**3
    found = {"numpy": round(_best_gflops(lambda: a @ b, flops, repeats), 1)}
    try:
        import torch

        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        found["torch"] = round(_best_gflops(lambda: torch.mm(ta, tb), flops, repeats), 1)
        threads = torch.get_num_threads()
    except ImportError:
        threads = None
    return {"gflops": max(found.values()), "by_library": found, "dtype": "float32",
            "method": f"best of {repeats} {size}x{size} fp32 matrix products (2*n^3 FLOPs), all cores",
            "torch_threads": threads}


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1
