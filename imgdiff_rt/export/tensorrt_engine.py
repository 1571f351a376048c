"""TensorRT engines from the exported ONNX graphs, and the checks that an engine fits the GPU it runs on.

TensorRT is an optional extra (``pip install imgdiff-rt[tensorrt]``) and needs a CUDA GPU, so it is imported
only inside the functions that use it; without it they raise TensorRTUnavailableError. The pure parts
(optimisation-profile shapes from a spec, the compatibility rules) work everywhere.

A serialized engine is tied to the TensorRT version that built it and to the GPU's compute capability. The
build info records both (the bundle manifest stores it) and ``check_engine_compatible`` refuses a mismatch
with a clear message before TensorRT would fail with an opaque deserialisation error.
"""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path
from typing import Mapping

from ..errors import EngineBuildError, EngineIncompatibleError, TensorRTUnavailableError, UsageError
from ..models.specs import ModelSpec

PRECISIONS = ("fp32", "fp16", "int8")
_QDQ_OPS = {"QuantizeLinear", "DequantizeLinear"}
_UNPARSABLE_OPS = {"ConvInteger", "MatMulInteger", "DynamicQuantizeLinear"}  # ORT-only dynamic int8


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


# ---- optimisation profiles (pure Python) ---------------------------------------------------------
def engine_profiles(spec: ModelSpec, *, imgsz: int = 640, max_batch: int | None = None,
                    min_imgsz: int | None = None, max_imgsz: int | None = None) -> dict[str, tuple]:
    """TensorRT (min, opt, max) shape per input from the spec's profiles, checked for consistency.

    ``imgsz`` is the optimisation image size; ``max_batch`` overrides the spec's. Segmenter sides must stay
    multiples of 32 (the head's stride).
    """
    extra: dict[str, int] = {"imgsz": imgsz}
    if max_batch is not None:
        extra["max_batch"] = max_batch
    if min_imgsz is not None:
        extra["min_imgsz"] = min_imgsz
    if max_imgsz is not None:
        extra["max_imgsz"] = max_imgsz
    profiles = spec.require_bound().profiles(**extra)
    for name, (low, opt, high) in profiles.items():
        if not (len(low) == len(opt) == len(high) == spec.tensor(name).rank):
            raise UsageError(f"{spec.name}: profile for {name} has the wrong rank")
        if any(d < 1 for d in low) or any(not (a <= b <= c) for a, b, c in zip(low, opt, high)):
            raise UsageError(f"{spec.name}: profile for {name} needs 1 <= min <= opt <= max, got "
                             f"{low} / {opt} / {high}")
        if spec.name == "segmenter" and any(d % 32 for shape in (low, opt, high) for d in shape[2:]):
            raise UsageError(f"segmenter profile sides must be multiples of 32, got {low} / {opt} / {high}")
    return profiles


# ---- compatibility ------------------------------------------------------------------------------
def _version_tuple(version: str) -> tuple[int, ...]:
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
        b, h = _version_tuple(built), _version_tuple(here)
        if b[:1] != h[:1] or h < b:
            problems.append(f"built with TensorRT {built} (version-compatible), running {here}")
    elif _version_tuple(built) != _version_tuple(here):
        problems.append(f"built with TensorRT {built}, running {here}")
    cc_built = (info.get("gpu") or {}).get("compute_capability")
    cc_here = (current.get("gpu") or {}).get("compute_capability")
    if not cc_built or not cc_here:
        problems.append("GPU compute capability unknown")
    elif info.get("hardware_compatibility") == "ampere_plus":
        if _version_tuple(cc_here) < (8, 0):
            problems.append(f"built for Ampere-or-newer GPUs, this GPU has compute capability {cc_here}")
    elif _version_tuple(cc_built) != _version_tuple(cc_here):
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


# ---- building -----------------------------------------------------------------------------------
def _onnx_op_types(onnx_path: Path) -> set[str]:
    import onnx

    return {n.op_type for n in onnx.load(str(onnx_path), load_external_data=False).graph.node}


def _parse(trt, builder, logger, onnx_path: Path):
    flags = 0
    if _version_tuple(trt.__version__) < (10,):  # explicit batch is the only mode (and default) from TRT 10
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    ok = parser.parse_from_file(str(onnx_path))
    errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
    for line in errors:  # every parser error, not just the first
        print(f"TensorRT ONNX parser: {line}", file=sys.stderr)
    if not ok or errors:
        raise EngineBuildError(f"TensorRT cannot parse {onnx_path} ({len(errors)} error(s)): "
                               + " | ".join(errors))
    return network, parser


def build_engine(onnx_path: str | Path, spec: ModelSpec, out_path: str | Path, precision: str = "fp16",
                 timing_cache: str | Path | None = None, *, imgsz: int = 640, max_batch: int | None = None,
                 workspace_gib: float = 4.0, version_compatible: bool = False,
                 hardware_compatible: bool = False) -> dict:
    """Build and serialize a TensorRT engine for ``spec`` from ``onnx_path``; returns the build info.

    ``precision``: "fp16" (default), "fp32" or "int8" (only for a calibrated QDQ ONNX from
    ``quantize_static_qdq``: explicit quantisation, remaining layers fp16). ``timing_cache``: a file loaded
    when present and saved after the build (speeds up rebuilds on the same GPU/TensorRT).
    """
    if precision not in PRECISIONS:
        raise UsageError(f"TensorRT precision {precision!r}: one of {', '.join(PRECISIONS)}")
    onnx_path, out_path = Path(onnx_path), Path(out_path)
    if not onnx_path.is_file():
        raise UsageError(f"ONNX file {onnx_path} does not exist")
    op_types = _onnx_op_types(onnx_path)
    if op_types & _UNPARSABLE_OPS:
        raise UsageError(f"{onnx_path.name} uses ONNX Runtime's dynamic int8 ops "
                         f"({', '.join(sorted(op_types & _UNPARSABLE_OPS))}); TensorRT needs the fp32 ONNX")
    if precision == "int8" and not op_types & _QDQ_OPS:
        raise UsageError(f"int8 engines need a calibrated QDQ ONNX (quantize_static_qdq); {onnx_path.name} "
                         "has no Q/DQ nodes. Use precision='fp16' or calibrate first")
    profiles = engine_profiles(spec, imgsz=imgsz, max_batch=max_batch)  # fails early, before TensorRT
    trt = import_tensorrt()
    identity = {"tensorrt_version": trt.__version__, "gpu": gpu_identity()}

    started = time.perf_counter()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network, _parser = _parse(trt, builder, logger, onnx_path)
    names = {network.get_input(i).name for i in range(network.num_inputs)}
    if names != set(spec.input_names):
        raise EngineBuildError(f"{onnx_path.name} inputs {sorted(names)} != spec {spec.name} "
                               f"{spec.input_names}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    if precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)
    if precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)  # scales come from the graph's Q/DQ nodes
    if version_compatible:
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
    if hardware_compatible:
        config.hardware_compatibility_level = trt.HardwareCompatibilityLevel.AMPERE_PLUS
    profile = builder.create_optimization_profile()
    for name, (low, opt, high) in profiles.items():
        profile.set_shape(name, low, opt, high)
    config.add_optimization_profile(profile)

    cache_path = Path(timing_cache) if timing_cache else None
    cache_bytes = cache_path.read_bytes() if cache_path and cache_path.is_file() else b""
    cache = config.create_timing_cache(cache_bytes)
    config.set_timing_cache(cache, ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineBuildError(f"TensorRT failed to build an engine from {onnx_path} (see its log above)")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_bytes(bytes(serialized))
    if cache_path:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        cache_path.write_bytes(bytes(config.get_timing_cache().serialize()))
    data = out_path.read_bytes()
    return {
        "spec": spec.name, "path": str(out_path), "onnx": str(onnx_path), "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(), "precision": precision,
        "profiles": {n: [list(s) for s in shapes] for n, shapes in profiles.items()},
        **identity, "version_compatible": version_compatible,
        "hardware_compatibility": "ampere_plus" if hardware_compatible else None,
        "timing_cache": str(cache_path) if cache_path else None, "timing_cache_loaded": bool(cache_bytes),
        "build_seconds": round(time.perf_counter() - started, 1),
    }
