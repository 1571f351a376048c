"""Precision ``auto``: per graph, the artifact of the bundle that is fastest on the CPU among those whose
recorded export checks passed; nothing is measured again at run time.

* A dequantized-fp32 variant of a registered int8 segmenter (``imgdiff-rt export --segmenter-onnx F
  --segmenter-fp32``) carries the int8 graph's rounded weights in fp32 Convs, which ONNX Runtime's CPU kernels
  run several times faster than ConvInteger; it is chosen when its parity with the registered graph passed.
* Otherwise an int8 graph is chosen when its accuracy against the fp32 graph passed the bounds below.
* Otherwise fp32. Backends other than ONNX Runtime on the CPU (CUDA providers, TensorRT, Triton, PyTorch)
  get fp32: the int8 graphs use CPU-only dynamic-quantisation ops.
"""

from __future__ import annotations

from typing import Iterable

from imgdiff_rt.models.manifest import Entry

AUTO = "auto"
#: the lowest output cosine against fp32 at which an int8 graph counts as passed (CLIP int8 records 0.9998,
#: the BLIP vision tower 0.9996 on real-size random weights)
MIN_INT8_COSINE = 0.999
#: a captioner's int8 encoder must also keep this share of fp32's greedy caption tokens
MIN_TOKEN_AGREEMENT = 0.9


def int8_passed(entry: Entry) -> bool:
    """True when an int8 entry's recorded accuracy is within the bounds (no record: not passed)."""
    if entry.accuracy is None:
        return False
    cosines = [r.min_cosine for r in entry.accuracy.vs_fp32.values()]
    if not cosines or any(c is None or c < MIN_INT8_COSINE for c in cosines):
        return False
    generation = entry.accuracy.generation
    return generation is None or (generation.token_agreement or 0.0) >= MIN_TOKEN_AGREEMENT


def dequantized_passed(entry: Entry) -> bool:
    """True for an fp32 entry rebuilt from the bundle's int8 graph whose parity with it passed."""
    return bool(entry.dequantized_from) and entry.parity is not None and bool(entry.parity.ok)


def _on_cpu(backend: str, session_opts: dict | None) -> bool:
    providers = (session_opts or {}).get("providers") or []
    names = [p[0] if isinstance(p, (tuple, list)) else p for p in providers]
    return backend == "onnx" and not any("CUDA" in str(n) or "Tensorrt" in str(n) for n in names)


def resolve(bundle, spec_name: str, precision: str, backend: str = "onnx",
            session_opts: dict | None = None) -> str:
    """The concrete precision ``precision`` means for ``spec_name`` (``precision`` itself unless it is auto)."""
    if precision != AUTO:
        return precision
    if not _on_cpu(backend, session_opts):
        return "fp32"
    have = {e.precision: e for e in bundle.graph_entries(spec_name, "onnx")}
    if "fp32" in have and have["fp32"].dequantized_from:
        return "fp32" if dequantized_passed(have["fp32"]) or "int8" not in have else "int8"
    if "int8" in have and int8_passed(have["int8"]):
        return "int8"
    if "fp32" in have or not have:
        return "fp32"
    return next(iter(have))  # a registered segmenter held in one precision only


def resolve_all(bundle, graphs: Iterable[str], precision: str, backend: str = "onnx",
                session_opts: dict | None = None) -> dict[str, str]:
    """{graph: concrete precision} for the graphs a run opens (those the bundle has)."""
    return {g: resolve(bundle, g, precision, backend, session_opts) for g in graphs if bundle.has_graph(g)}


def label(bundle, spec_name: str, precision: str) -> str:
    """What ran, for the settings: ``int8``, ``fp32``, or ``fp32 (dequantized int8)``."""
    entry = next((e for e in bundle.graph_entries(spec_name, "onnx") if e.precision == precision), None)
    if precision == "fp32" and entry is not None and entry.dequantized_from:
        return "fp32-dequantized"
    return precision
