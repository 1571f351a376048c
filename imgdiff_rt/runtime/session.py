"""One small inference interface over every backend: ``Session.run({input: array}) -> {output: array}``.

Names are always the spec's names (``models/specs.py``); a backend whose file uses other names (a registered
foreign segmenter ONNX) translates through ``Bundle.tensor_names``. Backends register in ``BACKENDS`` with
``@register_backend(name)`` (Polygraphy-runner / Ultralytics-backend-map style); tests register fakes the
same way, and the Triton issue adds ``triton`` here. The base class, the table and ``register_backend`` are
defined in ``session_base`` (what backends import) and offered here too.

    with open_session(bundle, "clip_image", backend="onnx") as session:
        embeds = session.run({"pixel_values": x})["image_embeds"]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from imgdiff_rt.errors import ModelError, UsageError
from imgdiff_rt.models.bundle import Bundle
from imgdiff_rt.models import auto_precision as AP
from imgdiff_rt.models.specs import PRECISIONS
from imgdiff_rt.runtime.session_base import BACKENDS, Session, entry_input_shapes, register_backend


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


__all__ = ["BACKENDS", "BACKEND_NAMES", "Session", "entry_input_shapes", "get_backend", "open_session",
           "register_backend"]
