"""The build steps of each model family, driven by ``export_run.ExportRun.build`` over the artifact table: how a CLIP /
BLIP / LLaVA graph or the segmenter is exported (with parity) and quantised (with its accuracy cost), the
non-graph parts saved beside them, and the registration of an already-exported segmenter ONNX.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from imgdiff_rt.models import bundle as B
from imgdiff_rt.models.specs import CAPTIONER_FAMILIES, DEFAULT_SOURCES, get_spec
from imgdiff_rt.export.export_run import ExportRun, jsonable
from imgdiff_rt.export.options import Artifact
from imgdiff_rt.export.preflight import tokenizer_round_trip


class _HfGraph:
    """Build steps of one CLIP / BLIP / LLaVA graph: fp32 export + parity, dynamic int8 + its accuracy; a
    captioner's encoder also gets greedy-caption parity."""

    def __init__(self, run: ExportRun, loaded, module):
        self.run, self.loaded, self.module = run, loaded, module
        self.captioner = loaded.family in CAPTIONER_FAMILIES

    def export(self, spec, artifact: Artifact) -> dict:
        from imgdiff_rt.export.checks import caption_parity_of, check_parity
        from imgdiff_rt.export.onnx_export import export_onnx

        path = self.run.path(spec.name, artifact.fmt, artifact.precision)
        self.run.say(f"  {spec.name}: exporting ONNX fp32")
        export_onnx(self.module, spec, path, source=self.loaded.source_label,
                    extra_metadata={"weights": self.loaded.weights, "precision": "fp32"})
        parity = check_parity(path, self.module, spec, device=self.run.device)
        if self.captioner:
            parity["generation"] = caption_parity_of(self.loaded, spec, path, device=self.run.device,
                                                     max_new_tokens=self.run.opts.caption_tokens)
        self.run.say(f"  {spec.name}: parity ok ({_parity_line(parity)})")
        return {"parity": parity}

    def quantize(self, spec, artifact: Artifact) -> dict:
        from imgdiff_rt.export.checks import caption_parity_of, int8_accuracy
        from imgdiff_rt.export.quantize import quantize_dynamic

        path, fp32 = self.run.path(spec.name, artifact.fmt, artifact.precision), self.run.path(spec.name, *artifact.built_from)
        self.run.say(f"  {spec.name}: dynamic int8")
        summary = quantize_dynamic(fp32, path)
        accuracy = {"vs_fp32": int8_accuracy(spec, fp32, path, [spec.dummy_inputs(8, rng=7)], self.run.device)}
        if self.captioner:
            accuracy["generation"] = caption_parity_of(self.loaded, spec, path, require_exact=False,
                                                       device=self.run.device,
                                                       max_new_tokens=self.run.opts.caption_tokens)
        self.run.say(f"  {spec.name}: int8 accuracy {_accuracy_line(accuracy)}")
        return {"quantization": jsonable(summary), "accuracy": accuracy}


def export_hf_family(run: ExportRun, family: str, source: str | None) -> None:
    from imgdiff_rt.torch_models import hf as hf_models

    source = source or DEFAULT_SOURCES[family]
    if run.reuse_family(family, source):
        return
    run.say(f"{family}: {_source_line(source, run.opts.weights())}")
    loaded = hf_models.load_family(family, source, run.opts.weights())
    if loaded.tokenizer is not None:  # an empty tokenizer would make every caption '' (preflight.py)
        loaded.extra["tokenizer_round_trip"] = tokenizer_round_trip(loaded.tokenizer, loaded.tokenizer_synthetic,
                                                                    f"{family} {source}")
    src = {"family": family, "id": source, "revision": loaded.revision, "weights": loaded.weights,
           "label": loaded.source_label}
    for spec, module in hf_models.graphs_for(loaded):
        run.build(spec, _HfGraph(run, loaded, module), source, src)
    _save_family_parts(run, loaded, src)


def _source_line(source: str, weights: str) -> str:
    """What an export does for a source: random weights are built here, never downloaded, and a log line that
    reads like a download would mislead."""
    if weights == "tiny":
        return f"building a tiny config of {source}'s architecture with random weights (no download)"
    if weights == "random-init":
        return f"building {source}'s real-size architecture with random weights (no download)"
    return f"loading {source} ({weights})"


def _save_family_parts(run: ExportRun, loaded, src: dict) -> None:
    """What runs beside the graphs: a captioner's generation files; CLIP's tokenizer and eager weights."""
    from imgdiff_rt.export.captioner_export import save_generation_files, save_tokenizer_files

    family = loaded.family
    if family in CAPTIONER_FAMILIES:
        run.say(f"  {family}: saving decoder weights, tokenizer and processor for PyTorch generation")
        record = save_generation_files(loaded, run.staging / family)
        run.manifest.add_part("generation", family, {**record, "source": src, **_round_trip(loaded)})
        return
    if loaded.tokenizer is not None:
        save_tokenizer_files(loaded, run.staging / family)
        run.manifest.add_part("tokenizers", family, {"path": family, "synthetic": loaded.tokenizer_synthetic,
                                                     "source": src, **_round_trip(loaded)})
    # the runtime's `torch` backend rebuilds the eager modules the graphs were exported from; captioners
    # already carry theirs in "generation". Pretrained weights are referenced, not copied.
    run.manifest.add_part("torch", family, _save_torch_weights(loaded, run.staging / family, src))


def _round_trip(loaded) -> dict:
    found = loaded.extra.get("tokenizer_round_trip")
    return {"tokenizer_round_trip": found} if found else {}


class _SegmenterGraph:
    """Build steps of the segmenter: fp32 export + parity at two sizes, static QDQ int8 + its accuracy."""

    def __init__(self, run: ExportRun, module):
        self.run, self.module = run, module

    def export(self, spec, artifact: Artifact) -> dict:
        from imgdiff_rt.export import segmenter as S

        run = self.run
        run.say(f"  segmenter: exporting ONNX fp32 at {run.opts.imgsz}")
        result = S.export_segmenter(self.module, run.path(spec.name, artifact.fmt, artifact.precision),
                                    run.opts.imgsz, device=run.device)
        run.say(f"  segmenter: parity ok ({_parity_line({'outputs': result['parity']})})")
        return {"parity": {"outputs": jsonable(result["parity"]), "ok": True}}

    def quantize(self, spec, artifact: Artifact) -> dict:
        from imgdiff_rt.export.checks import int8_accuracy
        from imgdiff_rt.export.quantize import quantize_static_qdq, segmenter_calibration_feeds

        run = self.run
        run.say("  segmenter: static QDQ int8 (calibration photos)")
        path, fp32 = run.path(spec.name, artifact.fmt, artifact.precision), run.path(spec.name, *artifact.built_from)
        feeds = segmenter_calibration_feeds(run.opts.imgsz)
        summary = quantize_static_qdq(fp32, path, feeds)
        accuracy = {"vs_fp32": int8_accuracy(spec, fp32, path, feeds[:4], run.device)}
        run.say(f"  segmenter: int8 accuracy {_accuracy_line(accuracy)}")
        return {"quantization": jsonable(summary), "accuracy": accuracy}


def export_segmenter(run: ExportRun) -> None:
    from imgdiff_rt.torch_models import segmenter as SM

    source = run.opts.segmenter
    if run.reuse_family("segmenter", source):
        return
    run.say(f"segmenter: building {source} ({run.opts.weights()})")
    module = SM.build_segmenter(source, random_init=run.opts.random_init, tiny=run.opts.tiny)
    info = module.info
    src = {"family": "segmenter", "id": source, "revision": None, "weights": run.opts.weights(),
           "label": source if run.opts.weights() == "pretrained" else f"{run.opts.weights()} ({info.architecture})",
           "model": info.as_dict()}
    spec = SM.segmenter_spec(info, run.opts.imgsz)
    run.manifest.add_part("torch", "segmenter", _save_segmenter_state(module, run.staging, src))
    run.build(spec, _SegmenterGraph(run, module), source, src)


def register_foreign_segmenter(run: ExportRun) -> None:
    from imgdiff_rt.export.segmenter import register_segmenter_onnx

    path = Path(run.opts.segmenter_onnx).expanduser()
    run.say(f"segmenter: registering {path}")
    t = time.perf_counter()
    info = register_segmenter_onnx(path)
    precision = "int8" if info.get("quantization") else "fp32"
    spec = get_spec("segmenter").bind(num_outputs=info["num_outputs"], num_classes=info["num_classes"],
                                      **({"imgsz": info["imgsz"][0]} if info.get("imgsz") else {}))
    rel = B.artifact_relpath("segmenter", "onnx", precision)
    (run.staging / rel).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(path, run.staging / rel)
    src = {"family": "segmenter", "id": str(path.resolve()), "revision": info["sha256"][:16],
           "weights": "registered-onnx", "label": f"registered ONNX {path.name}"}
    fp = B.fingerprint(registered=info["sha256"])
    # the file's own opset and layout replace the spec's (same keys, same places in the entry)
    layout = {"opset": info.get("opset"),
              "inputs": {n: {"dtype": info["dtypes"][n], "shape": info["shapes"][n]} for n in spec.input_names},
              "outputs": {n: {"dtype": info["dtypes"][n], "shape": info["shapes"][n]} for n in spec.output_names}}
    run.add_entry(spec, B.entry_key("segmenter", "onnx", precision), "onnx", precision, fp, src,
                  time.perf_counter() - t, **layout, tensor_names=info["tensor_names"],
                  registered=jsonable(info), parity={"skipped": "registered as is: layout checked"})
    run.say(f"  segmenter: layout ok ({info['num_classes']} classes, {info['shapes']['images']})")
    if run.opts.segmenter_fp32:
        _register_dequantized(run, spec, info, precision, src, layout)


def _register_dequantized(run: ExportRun, spec, info: dict, precision: str, src: dict, layout: dict) -> None:
    """The fp32 rebuild of the registered int8 graph (``precision``, ``src``, ``layout``: its entry's) beside
    it, with its check against that graph."""
    from imgdiff_rt.runtime.int8_tools import dequantize_conv_integer
    from imgdiff_rt.errors import UsageError
    from imgdiff_rt.export.dequantized import check_against_registered

    if precision != "int8" or info.get("quantization") != "dynamic-int8":
        raise UsageError(f"segmenter_fp32: {info['path']} is not an ORT dynamic-int8 graph (quantization: "
                         f"{info.get('quantization')}); nothing to dequantize", parameter="segmenter_fp32")
    t = time.perf_counter()
    src_path = run.staging / B.artifact_relpath("segmenter", "onnx", precision)
    rel = B.artifact_relpath("segmenter", "onnx", "fp32")
    run.say("  segmenter: dequantized fp32 rebuild of the registered int8 graph")
    rebuilt = dequantize_conv_integer(src_path, run.staging / rel)
    imgsz = (info.get("imgsz") or [run.opts.imgsz])[0]
    check = check_against_registered(spec, src_path, run.staging / rel, imgsz, info["tensor_names"])
    fp = B.fingerprint(registered=info["sha256"], dequantized=True)
    rebuilt_src = {**src, "label": src["label"] + ", dequantized to fp32"}
    run.add_entry(spec, B.entry_key("segmenter", "onnx", "fp32"), "onnx", "fp32", fp, rebuilt_src,
                  time.perf_counter() - t, **layout, tensor_names=info["tensor_names"],
                  dequantized_from=B.entry_key("segmenter", "onnx", "int8"), parity=check,
                  rebuild={"convs_rebuilt": rebuilt["convs_rebuilt"]})
    worst = min(r["min_cosine"] for r in check["outputs"].values())
    run.say(f"  segmenter: fp32 rebuild cos>={worst:.4f} vs registered, detections "
            f"{check['detections']['matched']}/{check['detections']['reference_detections']}, CPU ms "
            f"{check['cpu_ms']['registered']} -> {check['cpu_ms']['dequantized']}")


def _save_torch_weights(loaded, folder: Path, src: dict) -> dict:
    entry = {"family": loaded.family, "model_class": type(loaded.model).__name__, "weights": loaded.weights,
             "source": src}
    if loaded.weights == "pretrained":
        return {**entry, "load_from": loaded.local_path or loaded.source, "revision": loaded.revision}
    folder.mkdir(parents=True, exist_ok=True)
    loaded.model.save_pretrained(str(folder))
    return {**entry, "path": folder.name}


def _save_segmenter_state(module, staging: Path, src: dict) -> dict:
    """The fused segmenter's state_dict; the runtime rebuilds the architecture from ``info`` and loads it."""
    import torch

    rel = "segmenter/state_dict.pt"
    (staging / rel).parent.mkdir(parents=True, exist_ok=True)
    torch.save(module.state_dict(), staging / rel)
    return {"family": "segmenter", "file": rel, "info": module.info.as_dict(), "source": src}


def _parity_line(parity: dict) -> str:
    rows = parity.get("outputs", {})
    bits = [f"{n} max|d|={r['max_abs']:.2g}" + (f" cos={r['min_cosine']:.6f}" if "min_cosine" in r else "")
            for n, r in rows.items()]
    if "generation" in parity:
        bits.append(f"greedy tokens equal={parity['generation']['exact']}")
    return ", ".join(bits)


def _accuracy_line(accuracy: dict) -> str:
    bits = [f"{n} cos>={r['min_cosine']:.4f}" for n, r in accuracy["vs_fp32"].items()]
    if "generation" in accuracy:
        bits.append(f"token agreement {accuracy['generation']['token_agreement']:.3f}")
    return ", ".join(bits)
