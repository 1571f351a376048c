"""imgdiff-rt: find and describe the differences between two similar images, fast."""

from __future__ import annotations

__version__ = "0.1.0"

from imgdiff_rt.errors import ImgDiffError  # noqa: E402

# Imported on first use (PEP 562): `import imgdiff_rt` (and so every CLI command) must not pay for numpy,
# OpenCV and SciPy before it knows it needs them.
_LAZY = {"Pipeline": ".pipeline", "Region": ".result", "Result": ".result"}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    return value


__all__ = ["ImgDiffError", "Pipeline", "Region", "Result", "__version__"]
