"""The benchmark suite's library (``imgdiff-rt bench``, ``benchmarks/run_suite.py``): PyTorch eager vs ONNX
Runtime fp32 / int8 vs TensorRT vs Triton, per stage and end to end. See docs/benchmarks.md."""

from imgdiff_rt.bench.suite import BenchConfig, run_suite

__all__ = ["BenchConfig", "run_suite"]
