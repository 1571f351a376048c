"""The one output comparison: every check (export parity, int8 accuracy, ``export --check``) compares a
runner's outputs with a reference's through ``compare``, which raises the typed ParityError with its report.

    report = compare(spec, got, want)                   # the spec's tolerance; ParityError when missed
    figures = compare(spec, got, want, tolerance=None)  # figures only (int8's accuracy cost)
"""

from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np

from imgdiff_rt.errors import ParityError
from imgdiff_rt.models.specs import ModelSpec, Tolerance

_SPEC_TOLERANCE = object()  # sentinel: "the spec's own tolerance"


def _row(a: np.ndarray, b: np.ndarray, tol: Tolerance | None) -> dict:
    diff = np.abs(a - b)
    row = {"max_abs": float(diff.max(initial=0.0)), "mean_abs": float(diff.mean()) if diff.size else 0.0}
    fa, fb = a.reshape(len(a), -1), b.reshape(len(b), -1)
    cos = (fa * fb).sum(1) / np.maximum(np.linalg.norm(fa, axis=1) * np.linalg.norm(fb, axis=1), 1e-30)
    if tol is None:
        row["min_cosine"] = float(cos.min(initial=1.0))
        return row
    ok = bool(np.isfinite(a).all())
    if tol.atol is not None or tol.rtol is not None:
        bound = (tol.atol or 0.0) + (tol.rtol or 0.0) * np.abs(b)
        row["max_excess"] = float((diff - bound).max(initial=-np.inf))
        ok &= row["max_excess"] <= 0
    if tol.min_cosine is not None:
        row["min_cosine"] = float(cos.min())
        ok &= row["min_cosine"] >= tol.min_cosine
    row["ok"] = bool(ok)
    return row


def compare(spec: ModelSpec, got: Mapping[str, np.ndarray], want: Mapping[str, np.ndarray], *,
            tolerance: Tolerance | None = _SPEC_TOLERANCE, what: str = "ONNX Runtime",
            reference: str = "PyTorch") -> dict[str, dict]:
    """Per spec output: max/mean absolute error, the lowest per-item cosine and, against a tolerance
    (the spec's by default), ``max_excess`` over atol + rtol * |want| and ``ok``.

    With a tolerance, a miss raises ParityError naming ``what`` and ``reference``, carrying the report.
    ``tolerance=None`` measures only (no ``ok``, never raises)."""
    tol = spec.tolerance if tolerance is _SPEC_TOLERANCE else tolerance
    report: dict[str, dict] = {}
    for out in spec.outputs:
        name = out.name
        a = np.asarray(got[name], dtype=np.float64)
        b = np.asarray(want[name], dtype=np.float64)
        if a.shape != b.shape:
            report[name] = {"ok": False, "error": f"shape {a.shape} != {b.shape}"}
            continue
        own = out.tolerance if tolerance is _SPEC_TOLERANCE and out.tolerance is not None else tol
        report[name] = _row(a, b, own)
        if own is not tol:
            report[name]["tolerance"] = own.as_dict()
    if tol is not None and not all(r["ok"] for r in report.values()):
        parts = []
        for name, row in report.items():
            figures = ", ".join(f"{k}={v:.3g}" for k, v in row.items() if isinstance(v, float))
            parts.append(f"{name}: {row.get('error') or figures}{'' if row.get('ok') else ' FAIL'}")
        raise ParityError(f"{spec.name}: {what} differs from {reference} beyond tolerance {tol.as_dict()}: "
                          + "; ".join(parts), dict(report))
    return report


def worst(reports: Iterable[Mapping[str, dict]]) -> dict[str, dict]:
    """The worst figures per output over several reports (several feeds or input sizes)."""
    merged: dict[str, dict] = {}
    for report in reports:
        for name, row in report.items():
            out = merged.setdefault(name, {})
            for key, value in row.items():
                if key in ("max_abs", "mean_abs", "max_excess"):
                    out[key] = max(out.get(key, value), value)
                elif key == "min_cosine":
                    out[key] = min(out.get(key, value), value)
                elif key == "ok":
                    out[key] = out.get(key, True) and bool(value)
                elif key in ("error", "tolerance"):
                    out.setdefault(key, value)
    return merged
