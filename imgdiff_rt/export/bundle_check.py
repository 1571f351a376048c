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

from ..errors import ImgDiffError, ModelError
from ..models.bundle import Bundle, sha256_file

Progress = Callable[[str], None]


def _hf_loader(source: dict):
    from . import hf_models

    loader = {"clip": hf_models.load_clip, "blip": hf_models.load_blip, "llava": hf_models.load_llava}[source["family"]]
    return loader(source["id"], random_init=source["weights"] == "random-init", tiny=source["weights"] == "tiny")


def _check_fp32(bundle: Bundle, key: str, entry: dict, cache: dict) -> dict:
    from .onnx_export import check_parity, ort_session

    src = entry["source"]
    path = bundle.root / entry["file"]
    spec = bundle.spec(entry["spec"])
    if src["family"] == "segmenter":
        from .segmenter import build_segmenter, check_segmenter_parity

        if "segmenter" not in cache:
            cache["segmenter"] = build_segmenter(src["id"], random_init=src["weights"] == "random-init",
                                                 tiny=src["weights"] == "tiny")
        imgsz = spec.sizes.get("imgsz", 640)
        return {"outputs": check_segmenter_parity(cache["segmenter"], path, spec, sizes=((imgsz, imgsz),),
                                                  seed=int.from_bytes(os.urandom(4), "little")), "ok": True}
    from .hf_models import graphs_for

    if src["family"] not in cache:
        cache[src["family"]] = _hf_loader(src)
    loaded = cache[src["family"]]
    module = dict((s.name, m) for s, m in graphs_for(loaded))[entry["spec"]]
    result = check_parity(path, module, spec)
    if src["family"] in ("blip", "llava"):
        from .captioning import caption_parity

        session = ort_session(path)
        result["generation"] = caption_parity(loaded, spec, lambda x: session.run(None, {spec.input_names[0]: x})[0],
                                              seed=1)
    return result


def _check_int8(bundle: Bundle, entry: dict) -> dict:
    from .quantize import compare_outputs

    fp32 = bundle.find(entry["spec"], "onnx", "fp32")
    if fp32 is None:
        return {"skipped": "no fp32 graph to compare with"}
    spec = bundle.spec(entry["spec"])
    dims = {}
    if entry["spec"] == "segmenter":
        size = spec.sizes.get("imgsz", 640)
        dims = {"height": size, "width": size}
    return {"vs_fp32": compare_outputs(bundle.root / fp32["file"], bundle.root / entry["file"],
                                       [spec.dummy_inputs(4, rng=None, **dims)])}


def check_bundle(root: str | Path, progress: Progress | None = None, parity: bool = True) -> dict:
    """{entry key: {"sha256_ok", "parity"/"accuracy"/"layout", "ok"}}; ModelError naming every failure."""
    say = progress or (lambda _msg: None)
    bundle = Bundle.load(root)
    report: dict[str, dict] = {}
    cache: dict = {}
    for key, entry in bundle.entries.items():
        row: dict = {}
        path = bundle.root / entry["file"]
        row["sha256_ok"] = path.is_file() and sha256_file(path) == entry["sha256"]
        row["ok"] = row["sha256_ok"]
        if not row["sha256_ok"]:
            row["error"] = "missing" if not path.is_file() else "sha256 differs from the manifest"
        elif parity:
            try:
                if entry.get("format") == "engine":
                    row["parity"] = {"skipped": "engines need TensorRT and a GPU to run"}
                elif entry["source"].get("weights") == "registered-onnx":
                    from .segmenter import register_segmenter_onnx

                    register_segmenter_onnx(path)
                    row["layout"] = "ok"
                elif entry["precision"] == "fp32":
                    row["parity"] = _check_fp32(bundle, key, entry, cache)
                else:
                    row["accuracy"] = _check_int8(bundle, entry)
            except ImgDiffError as e:
                row["ok"], row["error"] = False, str(e)
        say(f"  {key}: {'ok' if row['ok'] else 'FAILED: ' + row.get('error', '')}")
        report[key] = row
    for family, gen in bundle.manifest.get("generation", {}).items():
        if "path" in gen and not (bundle.root / gen["path"] / "config.json").is_file():
            report[f"generation/{family}"] = {"ok": False, "error": f"{gen['path']}/config.json missing"}
    failed = {k: r.get("error", "failed") for k, r in report.items() if not r["ok"]}
    if failed:
        raise ModelError(f"bundle {bundle.root} failed its check: " + "; ".join(f"{k}: {v}" for k, v in failed.items()))
    return report
