"""ONNX Runtime backend: providers TensorRT EP -> CUDA EP -> CPU, whichever this onnxruntime build has.

``ort_session`` is the package's one ONNX Runtime session builder: bundle sessions, export parity, int8
accuracy, ``export --check``, the bench and Triton's Python-backend graphs all open their graphs through it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from imgdiff_rt.errors import ModelError, UsageError
from imgdiff_rt.models.bundle import Bundle
from imgdiff_rt.models.specs import ModelSpec
from imgdiff_rt.runtime.session_base import Session, entry_input_shapes, register_backend

#: preferred order; only those the installed onnxruntime offers are used
PROVIDER_ORDER = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
#: graph optimisation levels by name; int8 QDQ needs >= "extended" to fuse Q/DQ pairs into integer kernels
OPTIMIZATION_LEVELS = ("basic", "extended", "all")


def available_providers(prefer: Sequence | None = None) -> list:
    """The providers of ``prefer`` this onnxruntime offers; an entry may be ``(name, options)`` (a GPU index:
    runtime/device.py)."""
    import onnxruntime as ort

    have = set(ort.get_available_providers())
    return [p for p in (prefer or PROVIDER_ORDER) if (p[0] if isinstance(p, tuple) else p) in have] or \
        ["CPUExecutionProvider"]


def ort_session(path: str | Path | bytes, threads: int | None = None,
                providers: Sequence[str] = ("CPUExecutionProvider",), optimization: str = "all"):
    """An ``onnxruntime.InferenceSession`` for ``path`` (or a serialised graph built in memory); ModelError when
    ONNX Runtime cannot load it."""
    import onnxruntime as ort

    if optimization not in OPTIMIZATION_LEVELS:
        raise UsageError(f"optimization {optimization!r}: one of {', '.join(OPTIMIZATION_LEVELS)}")
    ort.disable_telemetry_events()  # ONNX Runtime would otherwise queue usage events in the user's home
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = {"basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                                        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                                        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}[optimization]
    if threads:
        options.intra_op_num_threads = int(threads)
    try:
        return ort.InferenceSession(path if isinstance(path, bytes) else str(path), options,
                                    providers=list(providers))
    except Exception as e:  # ORT raises its own exception types (Fail, InvalidGraph, ...)
        where = "the in-memory graph" if isinstance(path, bytes) else path
        raise ModelError(f"ONNX Runtime cannot load {where}: {e}") from e


class OnnxSession(Session):
    """A graph file on ONNX Runtime, fed and read with the spec's tensor names (``names`` maps them to the
    file's own names where those differ)."""

    backend = "onnx"

    def __init__(self, spec: ModelSpec, path: str | Path, names: Mapping[str, str] | None = None,
                 input_shapes: Mapping[str, tuple] | None = None, threads: int | None = None,
                 providers: Sequence[str] = ("CPUExecutionProvider",), optimization: str = "all"):
        super().__init__(spec, input_shapes)
        self.path = Path(path)
        self.names = dict(names or {n: n for n in (*spec.input_names, *spec.output_names)})
        self.session = ort_session(self.path, threads, providers, optimization)
        self.providers = self.session.get_providers()
        self._out_file_names = [self.names[n] for n in self.spec.output_names]

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            values = self.session.run(self._out_file_names, {self.names[k]: v for k, v in feeds.items()})
        except Exception as e:
            raise ModelError(f"ONNX Runtime failed on {self.path.name}: {str(e).splitlines()[0]}") from e
        return dict(zip(self.spec.output_names, values))

    def _close(self) -> None:
        self.session = None


def open_onnx_file(path: str | Path, spec: ModelSpec, threads: int | None = None,
                   optimization: str = "all", providers: Sequence | None = None) -> OnnxSession:
    """A session on a graph file that is not (yet) in a bundle: what export-time checks run (on the CPU
    unless ``providers`` says otherwise, e.g. ``Device.ort_providers``)."""
    return OnnxSession(spec, path, threads=threads, optimization=optimization,
                       providers=providers or ("CPUExecutionProvider",))


@register_backend("onnx")
def open_onnx(bundle: Bundle, spec_name: str, precision: str = "fp32", threads: int | None = None,
              providers: Sequence[str] | None = None, **_: object) -> OnnxSession:
    entry = bundle.entry(spec_name, "onnx", precision)
    chosen = available_providers(providers)
    # ORT-only dynamic int8 ops: the TensorRT EP would reject the whole graph, so it is left out for them
    if (entry.registered is not None and entry.registered.tensorrt_parsable is False) or \
            (entry.quantization_kind or "").startswith("dynamic"):
        chosen = [p for p in chosen if p != "TensorrtExecutionProvider"] or ["CPUExecutionProvider"]
    return OnnxSession(bundle.spec(spec_name, "onnx", precision), bundle.path(spec_name, "onnx", precision),
                       bundle.tensor_names(spec_name, "onnx", precision),
                       entry_input_shapes(bundle, spec_name, "onnx", precision), threads, chosen)
