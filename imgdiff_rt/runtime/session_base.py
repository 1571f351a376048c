"""What a backend builds on: the ``Session`` base class (inputs checked against the bound spec, then the
backend's ``_run``), the ``BACKENDS`` table it registers in with ``@register_backend(name)``, and the input shapes
the manifest records for an artifact. Backends import this module, never ``session``: ``session.get_backend``
imports the built-in backends on first use.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from imgdiff_rt.errors import ModelError, SpecLayoutError
from imgdiff_rt.models.bundle import Bundle
from imgdiff_rt.models.specs import ModelSpec


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


def register_backend(name: str):
    """Decorator: ``@register_backend("onnx") def open_onnx(bundle, spec_name, precision, **opts)``."""

    def decorate(factory: Callable[..., Session]) -> Callable[..., Session]:
        BACKENDS[name] = factory
        return factory

    return decorate


def entry_input_shapes(bundle: Bundle, spec_name: str, fmt: str, precision: str) -> dict[str, tuple]:
    """The input shapes the manifest records for an artifact (ints for fixed axes, symbols/None otherwise)."""
    rows = bundle.entry(spec_name, fmt, precision).inputs
    return {n: tuple(d if isinstance(d, (int, str)) else None for d in r.shape) for n, r in rows.items()}
