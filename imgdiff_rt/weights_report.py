"""What produced a result: which weights each graph that ran carries (pretrained / random-init / tiny / a
registered ONNX) and where they came from, and the detector the bundle supports by default.

Random or tiny weights make every model answer meaningless, so nothing here lets them pass unmarked: the result
JSON's ``weights`` block, the one stderr notice of run/serve/bench and the annotated picture's footer all come
from :func:`weights_block`. When no model ran (the pixel detector, no captioner) the block says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from imgdiff_rt.errors import UsageError
from imgdiff_rt.extras import models_install_hint
from imgdiff_rt.models import auto_precision as AP
from imgdiff_rt.models.bundle import MANIFEST, Bundle
from imgdiff_rt.models.specs import family_specs

#: the graphs the segment and hybrid detectors open (detectors/model/detector.py's ModelDetector)
DETECTOR_GRAPHS: tuple[str, ...] = ("segmenter", "clip_image")
#: what `run` uses when the bundle supports it and no detector is asked for (measured: docs/runtime.md)
DEFAULT_MODEL_DETECTOR = "hybrid"
MODEL_DETECTORS = ("segment", "hybrid")
PRETRAINED = ("pretrained", "registered-onnx")  # real weights: exported from a checkpoint, or an ONNX as given


def _load(bundle_dir: Path) -> Bundle | None:
    if not (bundle_dir / MANIFEST).is_file():
        return None
    return Bundle.load(bundle_dir)  # a manifest that is there but broken or hostile is reported, not ignored


def graphs_used(detector: str, captioner: str, feature_filter: str = "none") -> list[str]:
    """The bundle graphs a run with ``detector``, ``captioner`` and ``feature_filter`` opens."""
    graphs = list(DETECTOR_GRAPHS) if detector in MODEL_DETECTORS else []
    if feature_filter == "segmenter" and "segmenter" not in graphs:
        graphs.append("segmenter")  # the segmenter filter runs the bundle's registered segmenter
    return graphs + (list(family_specs(captioner)) if captioner != "none" else [])


def graph_precisions(bundle_dir: str | Path | None, detector: str, captioner: str, feature_filter: str,
                     backend: str, precision: str, session_opts: dict | None = None) -> dict[str, str]:
    """{graph: the precision it runs in} for a run (``auto`` resolved per graph as the sessions resolve it;
    ``fp32-dequantized`` for the fp32 rebuild of an int8 segmenter); {} when no model runs."""
    used = graphs_used(detector, captioner, feature_filter)
    bundle = _load(Path(bundle_dir).expanduser()) if used and bundle_dir is not None else None
    if bundle is None:
        return {}
    out = {}
    for name in used:
        if not bundle.has_graph(name):
            continue
        wanted = AP.resolve(bundle, name, precision, backend, session_opts)
        ran = wanted if backend == "tensorrt" else bundle.precision_for(name, wanted) or wanted
        out[name] = AP.label(bundle, name, ran)
    return out


def weights_block(bundle_dir: str | Path | None, detector: str, captioner: str,
                  feature_filter: str = "none", precisions: dict[str, str] | None = None) -> dict:
    """{"models_ran", "graphs": {graph: {"weights", "source", "precision"?}}, "all_pretrained", "note"?} for a
    result (``precisions``: ``graph_precisions``' answer, recorded per graph)."""
    used = graphs_used(detector, captioner, feature_filter)
    if not used or bundle_dir is None:
        return {"models_ran": False, "graphs": {}, "all_pretrained": None,
                "note": f"no model ran: the {detector} detector measures pixel differences and the regions are "
                        "described from measurements"}
    bundle = _load(Path(bundle_dir).expanduser())
    graphs = {}
    for name in used:
        entries = bundle.graph_entries(name) if bundle is not None else []
        source = entries[0].source if entries else None
        graphs[name] = {"weights": source.weights if source else "absent", "source": source.name if source else None,
                        **({"precision": precisions[name]} if precisions and name in precisions else {})}
    gen = bundle.generation(captioner) if captioner != "none" and bundle is not None else None
    if gen is not None:
        graphs[f"{captioner}_generation"] = {"weights": gen.weights or "unknown",
                                            "source": gen.source.label or gen.load_from or gen.path}
    return {"models_ran": True, "bundle": str(bundle_dir), "graphs": graphs,
            "all_pretrained": all(g["weights"] in PRETRAINED for g in graphs.values())}


def bundle_weights(bundle_dir: str | Path) -> dict:
    """{"graphs": {graph: {"weights", "source"}}} of every graph in the bundle (empty when there is none)."""
    bundle = _load(Path(bundle_dir).expanduser())
    if bundle is None:
        return {"graphs": {}}
    graphs = {}
    for entry in bundle.entries.values():
        graphs.setdefault(entry.spec, {"weights": entry.weights, "source": entry.source.name})
    return {"graphs": graphs}


def untrained(block: dict) -> dict[str, str]:
    """{graph: weights} of the graphs in ``block`` whose weights are not trained ones."""
    return {name: g["weights"] for name, g in block.get("graphs", {}).items() if g["weights"] not in PRETRAINED}


def weights_notice(block: dict) -> str | None:
    """The one stderr line for a run on random or tiny weights (None when every weight is trained)."""
    bad = untrained(block)
    if not bad:
        return None
    listed = ", ".join(f"{name}: {kind}" for name, kind in bad.items())
    return (f"note: not trained weights ({listed}): these results show the pipeline working, not what the "
            "models find; export pretrained weights for real answers")


def footer_label(block: dict) -> str | None:
    """The annotated picture's footer when a weight is not pretrained (None otherwise)."""
    bad = untrained(block)
    if not bad:
        return None
    return "NOT TRAINED WEIGHTS: " + ", ".join(f"{name} {kind}" for name, kind in bad.items())


# ---- the default detector ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class DetectorChoice:
    """The detector that runs and, when it is not what a bundle would suggest, the one line saying why."""

    detector: str
    notice: str | None = None


def choose_detector(requested: str | None, bundle_dir: str | Path) -> DetectorChoice:
    """``requested`` when given (a UsageError when the bundle lacks a graph it needs); otherwise the CLIP
    filter (``DEFAULT_MODEL_DETECTOR``) only with a complete bundle whose CLIP is pretrained, else pixel."""
    bundle_dir = Path(bundle_dir).expanduser()
    bundle = _load(bundle_dir)
    if requested is not None:
        if requested in MODEL_DETECTORS:
            _require_graphs(requested, bundle, bundle_dir)
        return DetectorChoice(requested)
    if bundle is None:
        hint = models_install_hint()
        first = f"`{hint}`, then " if hint else ""
        return DetectorChoice("pixel", f"note: no model bundle at {bundle_dir}, so the pixel detector ran; for "
                                       f"Img-Diff's segment + CLIP detector run {first}`imgdiff-rt export --out "
                                       f"{bundle_dir}` (or pass --models DIR)")
    missing = [g for g in DETECTOR_GRAPHS if not bundle.has_graph(g)]
    if missing:
        return DetectorChoice("pixel", f"note: the bundle at {bundle_dir} has no {' or '.join(missing)} graph, "
                                       f"so the pixel detector ran; add it with `imgdiff-rt export --out {bundle_dir}`")
    clip = bundle.weights_label("clip_image")
    if clip not in PRETRAINED:
        return DetectorChoice("pixel", f"note: the bundle's CLIP has {clip} weights, whose similarities mean "
                                       f"nothing, so the pixel detector ran; --detector {DEFAULT_MODEL_DETECTOR} "
                                       "runs the CLIP filter anyway, a pretrained CLIP export makes it the default")
    return DetectorChoice(DEFAULT_MODEL_DETECTOR)


#: the export flags that rebuild a bundle's graphs with the same kind of weights
_EXPORT_FLAGS = {"tiny": "--tiny --random-init ", "random-init": "--random-init "}


def require_precision(detector: str, bundle_dir: str | Path, backend: str, precision: str) -> None:
    """A model detector asked for int8 ONNX on a bundle whose CLIP has no int8 graph: a UsageError naming the
    export that adds it (the segmenter may run fp32: a registered one exists in one precision only)."""
    if detector not in MODEL_DETECTORS or backend != "onnx" or precision != "int8":
        return
    bundle_dir = Path(bundle_dir).expanduser()
    bundle = _load(bundle_dir)
    if bundle is None or "int8" in bundle.precisions("clip_image") or not bundle.has_graph("clip_image"):
        return  # no bundle or no CLIP: _require_graphs has said what is missing
    flags = _EXPORT_FLAGS.get(bundle.weights_label("clip_image"), "")
    raise UsageError(f"precision 'int8': the bundle at {bundle_dir} has no int8 clip_image graph (it has "
                     f"{', '.join(bundle.precisions('clip_image'))}); add int8 graphs with `imgdiff-rt export "
                     f"{flags}--precision int8 --out {bundle_dir}`, or run fp32", parameter="precision")


def _require_graphs(detector: str, bundle: Bundle | None, bundle_dir: Path) -> None:
    if bundle is None:
        raise UsageError(f"detector {detector!r} needs a model bundle: no model bundle at {bundle_dir}; create "
                         f"one with `imgdiff-rt export --out {bundle_dir}`, point models at one, or use the "
                         "pixel detector", parameter="detector")
    missing = [g for g in DETECTOR_GRAPHS if not bundle.has_graph(g)]
    if missing:
        raise UsageError(f"detector {detector!r} needs the {' and '.join(missing)} graph(s), which the bundle at "
                         f"{bundle_dir} lacks: add them with `imgdiff-rt export --out {bundle_dir}` (without "
                         "`--clip none`/`--segmenter none`), or use the pixel detector", parameter="detector")
