"""TensorRT engines built from the exported ONNX graphs (the compatibility checks and loading live in
``runtime/tensorrt_engines.py``, the side that runs them).

TensorRT is an optional extra (``pip install imgdiff-rt[tensorrt]``) and needs a CUDA GPU, so it is imported
only inside the functions that use it; without it they raise TensorRTUnavailableError. The pure parts
(optimisation-profile shapes from a spec) work everywhere.
"""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path

from imgdiff_rt.errors import EngineBuildError, UsageError
from imgdiff_rt.models.onnx_file import op_counts
from imgdiff_rt.models.specs import DEFAULT_IMGSZ, PRECISIONS, ModelSpec
from imgdiff_rt.runtime.tensorrt_engines import version_tuple, gpu_identity, import_tensorrt
_QDQ_OPS = {"QuantizeLinear", "DequantizeLinear"}
_UNPARSABLE_OPS = {"ConvInteger", "MatMulInteger", "DynamicQuantizeLinear"}  # ORT-only dynamic int8


# ---- optimisation profiles (pure Python) ---------------------------------------------------------
def engine_profiles(spec: ModelSpec, *, imgsz: int = DEFAULT_IMGSZ, max_batch: int | None = None,
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


# ---- building -----------------------------------------------------------------------------------
def _parse(trt, builder, logger, onnx_path: Path):
    flags = 0
    if version_tuple(trt.__version__) < (10,):  # explicit batch is the only mode (and default) from TRT 10
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


def _check_buildable(onnx_path: Path, precision: str) -> None:
    """UsageError, before TensorRT loads, for a precision or a graph an engine cannot be built from."""
    if precision not in PRECISIONS:
        raise UsageError(f"TensorRT precision {precision!r}: one of {', '.join(PRECISIONS)}", parameter="precision")
    if not onnx_path.is_file():
        raise UsageError(f"ONNX file {onnx_path} does not exist")
    op_types = set(op_counts(onnx_path))
    if op_types & _UNPARSABLE_OPS:
        raise UsageError(f"{onnx_path.name} uses ONNX Runtime's dynamic int8 ops "
                         f"({', '.join(sorted(op_types & _UNPARSABLE_OPS))}); TensorRT needs the fp32 ONNX")
    if precision == "int8" and not op_types & _QDQ_OPS:
        raise UsageError(f"int8 engines need a calibrated QDQ ONNX (quantize_static_qdq); {onnx_path.name} "
                         "has no Q/DQ nodes. Use precision='fp16' or calibrate first")


def _builder_config(trt, builder, precision: str, profiles: dict, workspace_gib: float, version_compatible: bool,
                    hardware_compatible: bool):
    """The builder config: workspace, precision flags, portability flags and the one optimisation profile."""
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
    return config


def build_engine(onnx_path: str | Path, spec: ModelSpec, out_path: str | Path, precision: str = "fp16",
                 timing_cache: str | Path | None = None, *, imgsz: int = DEFAULT_IMGSZ, max_batch: int | None = None,
                 workspace_gib: float = 4.0, version_compatible: bool = False,
                 hardware_compatible: bool = False) -> dict:
    """Build and serialize a TensorRT engine for ``spec`` from ``onnx_path``; returns the build info.

    ``precision``: "fp16" (default), "fp32" or "int8" (only for a calibrated QDQ ONNX from
    ``quantize_static_qdq``: explicit quantisation, remaining layers fp16). ``timing_cache``: a file loaded
    when present and saved after the build (speeds up rebuilds on the same GPU/TensorRT).
    """
    onnx_path, out_path = Path(onnx_path), Path(out_path)
    _check_buildable(onnx_path, precision)
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
    config = _builder_config(trt, builder, precision, profiles, workspace_gib, version_compatible,
                             hardware_compatible)

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
