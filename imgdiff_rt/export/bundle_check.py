"""``imgdiff-rt export --check DIR``: re-hash every artifact and re-run parity on fresh random inputs.

fp32 ONNX graphs are compared with the PyTorch model rebuilt from the manifest's source (random-init and tiny
weights are seeded, so they rebuild identically; pretrained ones must be loadable). int8 graphs get their
accuracy against the fp32 graph re-measured. A registered segmenter ONNX gets its layout re-checked. Engines
are hashed only (running them needs TensorRT and a GPU).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from imgdiff_rt.errors import ImgDiffError, ModelError
from imgdiff_rt.models.bundle import Bundle, sha256_file
from imgdiff_rt.models.manifest import Entry
from imgdiff_rt.models.specs import CAPTIONER_FAMILIES, DEFAULT_IMGSZ

Progress = Callable[[str], None]


def _check_fp32(bundle: Bundle, entry: Entry, cache: dict) -> dict:
    """Parity of an fp32 graph against its PyTorch module rebuilt from the manifest's source (loaded once per
    family); a captioner's encoder also gets greedy-caption parity."""
    from imgdiff_rt.torch_models import hf as hf_models
    from imgdiff_rt.export.checks import caption_parity_of, check_parity

    src = entry.source
    path = bundle.root / entry.file
    spec = bundle.spec(entry.spec)
    if src.family == "segmenter":
        from imgdiff_rt.torch_models.segmenter import build_segmenter
        from imgdiff_rt.export.segmenter import check_segmenter_parity

        if "segmenter" not in cache:
            cache["segmenter"] = build_segmenter(src.id, random_init=src.weights == "random-init",
                                                 tiny=src.weights == "tiny")
        imgsz = spec.sizes.get("imgsz", DEFAULT_IMGSZ)
        return {"outputs": check_segmenter_parity(cache["segmenter"], path, spec, sizes=((imgsz, imgsz),),
                                                  seed=int.from_bytes(os.urandom(4), "little")), "ok": True}
    if src.family not in cache:
        cache[src.family] = hf_models.load_family(src.family, src.id, src.weights)
    loaded = cache[src.family]
    module = dict((s.name, m) for s, m in hf_models.graphs_for(loaded))[entry.spec]
    result = check_parity(path, module, spec)
    if src.family in CAPTIONER_FAMILIES:
        result["generation"] = caption_parity_of(loaded, spec, path, seed=1)
    return result


def _check_int8(bundle: Bundle, entry: Entry) -> dict:
    from imgdiff_rt.export.checks import int8_accuracy

    if "fp32" not in bundle.precisions(entry.spec):
        return {"skipped": "no fp32 graph to compare with"}
    spec = bundle.spec(entry.spec)
    dims = {}
    if entry.spec == "segmenter":
        size = spec.sizes.get("imgsz", DEFAULT_IMGSZ)
        dims = {"height": size, "width": size}
    return {"vs_fp32": int8_accuracy(spec, bundle.path(entry.spec), bundle.root / entry.file,
                                     [spec.dummy_inputs(4, rng=None, **dims)])}


def _check_dequantized(bundle: Bundle, entry: Entry) -> dict:
    """A dequantized fp32 segmenter against the registered int8 graph it was rebuilt from, as at export."""
    from imgdiff_rt.export.dequantized import check_against_registered

    source = bundle.entries.get(entry.dequantized_from)
    if source is None:
        raise ModelError(f"{entry.key} was rebuilt from {entry.dequantized_from}, which the bundle does not hold")
    spec = bundle.spec(entry.spec, "onnx", entry.precision)
    imgsz = int(spec.sizes.get("imgsz") or entry.inputs[spec.input_names[0]].shape[2])
    return check_against_registered(spec, bundle.root / source.file, bundle.root / entry.file, imgsz,
                                    bundle.tensor_names(entry.spec, "onnx", entry.precision))


def _said(say: Progress, key: str, row: dict) -> dict:
    """``row``, once its line is said: every entry the report counts is listed."""
    say(f"  {key}: {'ok' if row['ok'] else 'FAILED: ' + row.get('error', '')}")
    return row


def check_bundle(root: str | Path, progress: Progress | None = None, parity: bool = True) -> dict:
    """{entry key: {"sha256_ok", "parity"/"accuracy"/"layout", "ok"}}; ModelError naming every failure."""
    say = progress or (lambda _msg: None)
    bundle = Bundle.load(root)
    report: dict[str, dict] = {}
    cache: dict = {}
    for key, entry in bundle.entries.items():
        row: dict = {}
        path = bundle.root / entry.file
        row["sha256_ok"] = path.is_file() and sha256_file(path) == entry.sha256
        row["ok"] = row["sha256_ok"]
        if not row["sha256_ok"]:
            row["error"] = "missing" if not path.is_file() else "sha256 differs from the manifest"
        elif parity:
            try:
                if entry.format == "engine":
                    row["parity"] = {"skipped": "engines need TensorRT and a GPU to run"}
                elif entry.dequantized_from:
                    row["parity"] = _check_dequantized(bundle, entry)
                elif entry.weights == "registered-onnx":
                    from imgdiff_rt.export.segmenter import register_segmenter_onnx

                    register_segmenter_onnx(path)
                    row["layout"] = "ok"
                elif entry.precision == "fp32":
                    row["parity"] = _check_fp32(bundle, entry, cache)
                else:
                    row["accuracy"] = _check_int8(bundle, entry)
            except ImgDiffError as e:
                row["ok"], row["error"] = False, str(e)
        report[key] = _said(say, key, row)
    for family, gen in bundle.manifest.generation.items():
        if gen.path is not None and not (bundle.root / gen.path / "config.json").is_file():
            key = f"generation/{family}"
            report[key] = _said(say, key, {"ok": False, "error": f"{gen.path}/config.json missing"})
    if parity:  # every real tokenizer must still turn a sentence into ids and back
        from imgdiff_rt.export.preflight import check_bundle_tokenizers

        report.update({k: _said(say, k, row) for k, row in check_bundle_tokenizers(bundle).items()})
    failed = {k: r.get("error", "failed") for k, r in report.items() if not r["ok"]}
    if failed:
        raise ModelError(f"bundle {bundle.root} failed its check: " + "; ".join(f"{k}: {v}" for k, v in failed.items()))
    return report
