"""Range checks for every numeric setting, in one place: the config dataclasses call them, so a library user and
the CLI get the same one-line :class:`UsageError` naming the parameter (NaN, infinities and absurd sizes that
would crash OpenCV or allocate without end are refused before any work)."""

from __future__ import annotations

import math
from numbers import Real

from imgdiff_rt.errors import UsageError


def _refuse(name: str, message: str) -> UsageError:
    error = UsageError(f"{name} {message}")
    error.parameter = name  # which parameter: an edge may spell it its own way (the CLI: its flag)
    return error

#: Gaussian sigma above this blurs any image to a flat colour (and OpenCV's kernel size overflows near 1e9)
MAX_BLUR_SIGMA = 100.0
#: morphology kernels and region counts above these only waste time
MAX_KERNEL_PX = 255
MAX_REGIONS = 10_000
#: generation and session sizes beyond these allocate without end (a KV cache per beam, a thread per count)
MAX_BEAMS = 32
MAX_NEW_TOKENS = 4096  # LLaVA's context; BLIP's decoder stops far earlier at its own position limit
MAX_THREADS = 1024


def check_number(name: str, value, lo: float | None = None, hi: float | None = None, *,
                 lo_open: bool = False, hi_open: bool = False, integer: bool = False) -> None:
    """Raise UsageError unless ``value`` is a finite number (an int when ``integer``) in the given range."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise _refuse(name, f"must be {'an integer' if integer else 'a number'}, got {value!r}")
    if not math.isfinite(value):
        raise _refuse(name, f"must be a finite number, got {value!r}")
    if integer and value != int(value):
        raise _refuse(name, f"must be an integer, got {value!r}")
    low_ok = lo is None or (value > lo if lo_open else value >= lo)
    high_ok = hi is None or (value < hi if hi_open else value <= hi)
    if not (low_ok and high_ok):
        left = "-inf" if lo is None else f"{lo:g}"
        right = "inf" if hi is None else f"{hi:g}"
        span = f"{'(' if lo_open or lo is None else '['}{left}, {right}{')' if hi_open or hi is None else ']'}"
        raise _refuse(name, f"must be in {span}, got {value!r}")


def check_fraction(name: str, value, *, lo_open: bool = False, hi_open: bool = False) -> None:
    check_number(name, value, 0.0, 1.0, lo_open=lo_open, hi_open=hi_open)


def check_count(name: str, value, lo: int = 1, hi: int | None = None) -> None:
    check_number(name, value, lo, hi, integer=True)
