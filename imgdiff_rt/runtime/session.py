"""One small inference interface over every backend: ``Session.run({input: array}) -> {output: array}``.

Names are always the spec's names (``models/specs.py``); a backend whose file uses other names (a registered
foreign segmenter ONNX) translates through ``Bundle.tensor_names``. Backends register in ``BACKENDS`` with
``@register_backend(name)`` (Polygraphy-runner / Ultralytics-backend-map style); tests register fakes the
same way, and the Triton issue adds ``triton`` here.

    with open_session(bundle, "clip_image", backend="onnx") as session:
        embeds = session.run({"pixel_values": x})["image_embeds"]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from imgdiff_rt.errors import ModelError, SpecLayoutError, UsageError
from imgdiff_rt.models.bundle import Bundle
from imgdiff_rt.models import auto_precision as AP
from imgdiff_rt.models.specs import PRECISIONS, ModelSpec



class Session:
    """Base class: validates inputs against the bound spec, then calls ``_run`` (the backend's part).

    ``spec``: the ModelSpec bound to the bundle's sizes. ``input_shapes``: per input, the shape the artifact
    accepts (ints where the file fixes an axis, symbol strings where it is dynamic), e.g. a registered
    segmenter exported for ``[1, 3, 320, 320]`` only.
    """

    backend: str = "?"

    def __init__(self, spec: ModelSpec, input_shapes: Mapping[str, tuple] | None = None):
        self.spec = spec
        self.input_shapes = {t.name: tuple((input_shapes or {}).get(t.name, t.dims)) for t in spec.inputs}
        self.closed = False

    # -- what a backend implements -----------------------------------------------------------------
    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _close(self) -> None:
        pass

    # -- public --------------------------------------------------------------------------------------
    def fixed_dim(self, input_name: str, axis: int) -> int | None:
        """The size the artifact fixes for this axis, or None where it is dynamic."""
        d = self.input_shapes[input_name][axis]
        return int(d) if isinstance(d, (int, np.integer)) and d > 0 else None

    def check_inputs(self, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Names, dtypes, ranks and fixed dims against the spec; SpecLayoutError naming every problem."""
        problems = []
        missing = [n for n in self.spec.input_names if n not in feeds]
        extra = sorted(set(feeds) - set(self.spec.input_names))
        if missing:
            problems.append(f"missing input(s) {missing}")
        if extra:
            problems.append(f"unknown input(s) {extra} (expects {self.spec.input_names})")
        out: dict[str, np.ndarray] = {}
        env: dict[str, int] = {}
        for t in self.spec.inputs:
            if t.name not in feeds:
                continue
            a = np.asarray(feeds[t.name])
            if a.dtype != np.dtype(t.dtype):
                problems.append(f"{t.name}: dtype {a.dtype} != {t.dtype}")
            want = self.input_shapes[t.name]
            if a.ndim != len(want):
                problems.append(f"{t.name}: rank {a.ndim} != {len(want)} (dims {tuple(t.dims)})")
                continue
            for i, (d, got) in enumerate(zip(want, a.shape)):
                if isinstance(d, str):
                    if env.setdefault(d, got) != got:
                        problems.append(f"{t.name}[{i}] ({d}) = {got}, but {env[d]} elsewhere")
                elif d is not None and d > 0 and d != got:
                    problems.append(f"{t.name}[{i}] = {got}, the model needs {d}")
            if a.size == 0:
                problems.append(f"{t.name}: empty array {a.shape}")
            out[t.name] = np.ascontiguousarray(a)
        if problems:
            raise SpecLayoutError(f"{self.backend} session for {self.spec.name!r}: " + "; ".join(problems))
        return out

    def run(self, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
        if self.closed:
            raise ModelError(f"{self.backend} session for {self.spec.name!r} is closed")
        outputs = self._run(self.check_inputs(feeds))
        return {n: outputs[n] for n in self.spec.output_names}

    def close(self) -> None:
        if not self.closed:
            self._close()
            self.closed = True

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.backend} {self.spec.name}>"


#: backend name -> factory(bundle, spec_name, precision, **opts) -> Session; filled by register_backend.
BACKENDS: dict[str, Callable[..., Session]] = {}


def _load_builtin(name: str) -> None:
    """Import a built-in backend's module (it registers itself) on first use, so torch, TensorRT and
    tritonclient load only when asked for."""
    if name == "onnx":
        from imgdiff_rt.runtime.backends import onnx_backend  # noqa: F401
    elif name == "torch":
        from imgdiff_rt.runtime.backends import torch_backend  # noqa: F401
    elif name == "tensorrt":
        from imgdiff_rt.runtime.backends import tensorrt_backend  # noqa: F401
    elif name == "triton":
        from imgdiff_rt.runtime.backends import triton_backend  # noqa: F401


#: every name `run --backend` offers, each a module of runtime/backends/
BACKEND_NAMES = ("onnx", "torch", "tensorrt", "triton")


def register_backend(name: str):
    """Decorator: ``@register_backend("onnx") def open_onnx(bundle, spec_name, precision, **opts)``."""

    def decorate(factory: Callable[..., Session]) -> Callable[..., Session]:
        BACKENDS[name] = factory
        return factory

    return decorate


def get_backend(name: str) -> Callable[..., Session]:
    if name not in BACKENDS and name in BACKEND_NAMES:
        try:
            _load_builtin(name)
        except ModuleNotFoundError as e:
            if not (e.name or "").startswith("imgdiff_rt"):  # a dependency of the backend is missing
                raise ModelError(f"backend {name!r} needs the Python package {e.name!r}: {e}") from None
            raise

    try:
        return BACKENDS[name]
    except KeyError:
        known = sorted(set(BACKENDS) | set(BACKEND_NAMES))
        raise UsageError(f"backend {name!r} is not available; known: {', '.join(known)}") from None


def open_session(bundle: Bundle | str | Path, spec_name: str, backend: str = "onnx", precision: str = "fp32",
                 **opts: Any) -> Session:
    """A session for ``spec_name`` of ``bundle`` on ``backend``. Options by backend: onnx ``threads``,
    ``providers``; tensorrt ``cuda_graphs``; torch ``threads``. Unknown options are ignored by a backend.
    ``precision`` auto: the graph's fastest artifact whose export checks passed (``models.auto_precision``)."""
    if precision not in PRECISIONS and precision != AP.AUTO:
        raise UsageError(f"precision {precision!r}: use one of {', '.join((AP.AUTO, *PRECISIONS))}")
    if not isinstance(bundle, Bundle):
        bundle = Bundle.load(bundle)
    precision = AP.resolve(bundle, spec_name, precision, backend, opts)
    return get_backend(backend)(bundle, spec_name, precision, **opts)


def entry_input_shapes(bundle: Bundle, spec_name: str, fmt: str, precision: str) -> dict[str, tuple]:
    """The input shapes the manifest records for an artifact (ints for fixed axes, symbols/None otherwise)."""
    rows = bundle.entry(spec_name, fmt, precision).inputs
    return {n: tuple(d if isinstance(d, (int, str)) else None for d in r.shape) for n, r in rows.items()}
