"""``imgdiff-rt export`` as a library call: every requested graph exported, checked and written into a bundle.

Per family (segmenter, CLIP, captioner): load once, then for each spec: fp32 ONNX + parity (+ greedy-caption
parity for captioners); int8 (dynamic for transformer encoders, static QDQ with calibration photos for the
segmenter) + its accuracy cost; TensorRT engine. Entries whose fingerprint is current in the previous bundle
are carried over without loading anything. The bundle is built beside the target and swapped in at the end.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from ..errors import ModelError, UsageError
from ..models import bundle as B
from ..models.specs import get_spec

Progress = Callable[[str], None]
FAMILY_SPECS = {"segmenter": ("segmenter",), "clip": ("clip_image", "clip_text"),
                "blip": ("blip_vision",), "llava": ("llava_vision",)}


@dataclass
class ExportOptions:
    segmenter: str | None = "FastSAM-s.pt"  # None: no segmenter
    segmenter_onnx: str | None = None
    clip: str | None = "openai/clip-vit-base-patch32"
    captioner: str | None = "blip"  # "blip[:SRC]", "llava[:SRC]" or None
    formats: tuple[str, ...] = ("onnx",)
    precision: str = "fp32"
    imgsz: int = 640
    random_init: bool = False
    tiny: bool = False
    force: bool = False
    caption_tokens: int = 12

    def weights(self) -> str:
        return "tiny" if self.tiny else "random-init" if self.random_init else "pretrained"

    def precisions(self) -> list[str]:
        """ONNX precisions to write: fp32 always (the reference), plus int8 when asked for."""
        if self.precision not in ("fp32", "fp16", "int8"):
            raise UsageError(f"precision {self.precision!r}: use fp32, fp16 or int8")
        return ["fp32", "int8"] if self.precision == "int8" else ["fp32"]


def parse_captioner(value: str | None) -> tuple[str, str | None] | None:
    if value is None or value.strip().lower() in ("", "none"):
        return None
    kind, _, source = value.partition(":")
    if kind not in ("blip", "llava"):
        raise UsageError(f"--captioner {value!r}: use blip[:SRC], llava[:SRC] or none")
    return kind, source or None


class _Run:
    """State of one export: options, staging folder, previous bundle, manifest under construction."""

    def __init__(self, opts: ExportOptions, staging: Path, previous: B.Bundle | None, progress: Progress):
        self.opts, self.staging, self.previous, self.say = opts, staging, previous, progress
        self.manifest = B.new_manifest(asdict(opts))
        self.libs = self.manifest["libraries"]
        # Engines are fp16 from the fp32 ONNX: TensorRT cannot parse ORT's dynamic-int8 ops, and fp16 is the
        # GPU's fast path for these graphs.
        self.engine_precision = "fp16"

    # -- planning / reuse ----------------------------------------------------------------------------
    def planned(self, spec_name: str, source: str) -> list[tuple[str, str, str, str]]:
        """(key, format, precision, fingerprint) for every artifact this spec should have."""
        out = []
        common = dict(spec=spec_name, source=source, weights=self.opts.weights(), opset=get_spec(spec_name).opset,
                      imgsz=self.opts.imgsz if spec_name == "segmenter" else None)
        if "onnx" in self.opts.formats or "engine" in self.opts.formats:
            for p in self.opts.precisions():
                out.append((B.entry_key(spec_name, "onnx", p), "onnx", p, B.fingerprint(fmt="onnx", precision=p, **common)))
        if "engine" in self.opts.formats:
            p = self.engine_precision
            out.append((B.entry_key(spec_name, "engine", p), "engine", p, B.fingerprint(fmt="engine", precision=p, **common)))
        return out

    def reuse(self, key: str, fp: str) -> bool:
        if self.opts.force:
            return False
        old = B.reusable_entry(self.previous, key, fp)
        if old is None:
            return False
        B.carry_over(self.previous, self.staging, old["file"])
        self.manifest["entries"][key] = old
        self.say(f"  {key}: current, kept")
        return True

    def reuse_family(self, family: str, source: str) -> bool:
        plan = [p for s in FAMILY_SPECS[family] for p in self.planned(s, source)]
        if self.opts.force or self.previous is None or not all(
                B.reusable_entry(self.previous, key, fp) for key, _, _, fp in plan):
            return False
        for key, _, _, fp in plan:
            self.reuse(key, fp)
        for section in ("generation", "tokenizers", "torch"):
            old = self.previous.manifest.get(section, {}).get(family)
            if old:
                if "path" in old or "file" in old:
                    B.carry_over(self.previous, self.staging, old.get("path") or old["file"])
                self.manifest[section][family] = old
        return True

    # -- entries -------------------------------------------------------------------------------------
    def add_entry(self, spec, key: str, fmt: str, precision: str, fp: str, source: dict, seconds: float,
                  **extra) -> dict:
        rel = B.artifact_relpath(spec.name, fmt, precision)
        file = self.staging / rel
        entry = {"spec": spec.name, "format": fmt, "precision": precision, "file": rel,
                 "sha256": B.sha256_file(file), "bytes": file.stat().st_size, "opset": spec.opset,
                 "sizes": dict(spec.sizes), **B.tensor_layout(spec), "source": source,
                 "libraries": self.libs, "export_seconds": round(seconds, 2),
                 "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "fingerprint": fp, **extra}
        self.manifest["entries"][key] = entry
        return entry

    def build_engine(self, spec, key: str, fp: str, source: dict) -> None:
        from .tensorrt_engine import build_engine  # optional extra: imported only when engines are asked for

        onnx_path = self.staging / B.artifact_relpath(spec.name, "onnx", "fp32")
        out = self.staging / B.artifact_relpath(spec.name, "engine", self.engine_precision)
        out.parent.mkdir(parents=True, exist_ok=True)
        cache = self.staging / "engines" / "timing.cache"
        if self.previous is not None and (self.previous.root / "engines" / "timing.cache").is_file() \
                and not cache.exists():
            shutil.copy2(self.previous.root / "engines" / "timing.cache", cache)
        self.say(f"  {spec.name}: building TensorRT {self.engine_precision} engine")
        t = time.perf_counter()
        info = build_engine(onnx_path, spec, out, precision=self.engine_precision, timing_cache=cache,
                            imgsz=self.opts.imgsz)
        self.add_entry(spec, key, "engine", self.engine_precision, fp, source, time.perf_counter() - t,
                       engine=_jsonable(info), parity={"skipped": "engines are checked on the GPU at load"})


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


# ---- families --------------------------------------------------------------------------------------
def _export_hf_family(run: _Run, family: str, source: str | None) -> None:
    from . import hf_models
    from .captioning import caption_parity, save_generation_files
    from .onnx_export import check_parity, export_onnx, ort_session
    from .quantize import compare_outputs, quantize_dynamic

    loaders = {"clip": hf_models.load_clip, "blip": hf_models.load_blip, "llava": hf_models.load_llava}
    defaults = {"clip": hf_models.DEFAULT_CLIP, "blip": hf_models.DEFAULT_BLIP, "llava": hf_models.DEFAULT_LLAVA}
    source = source or defaults[family]
    if run.reuse_family(family, source):
        return
    run.say(f"{family}: loading {source} ({run.opts.weights()})")
    loaded = loaders[family](source, random_init=run.opts.random_init, tiny=run.opts.tiny)
    src = {"family": family, "id": source, "revision": loaded.revision, "weights": loaded.weights,
           "label": loaded.source_label}
    captioner = family in ("blip", "llava")
    for spec, module in hf_models.graphs_for(loaded):
        for key, fmt, precision, fp in run.planned(spec.name, source):
            if run.reuse(key, fp):
                continue
            rel = B.artifact_relpath(spec.name, fmt, precision)
            t = time.perf_counter()
            if fmt == "engine":
                run.build_engine(spec, key, fp, src)
            elif precision == "fp32":
                run.say(f"  {spec.name}: exporting ONNX fp32")
                export_onnx(module, spec, run.staging / rel, source=loaded.source_label,
                            extra_metadata={"weights": loaded.weights, "precision": "fp32"})
                parity = check_parity(run.staging / rel, module, spec)
                if captioner:
                    session = ort_session(run.staging / rel)
                    parity["generation"] = caption_parity(
                        loaded, spec, lambda x, s=session: s.run(None, {spec.input_names[0]: x})[0],
                        max_new_tokens=run.opts.caption_tokens)
                run.say(f"  {spec.name}: parity ok ({_parity_line(parity)})")
                run.add_entry(spec, key, fmt, precision, fp, src, time.perf_counter() - t, parity=parity)
            else:
                run.say(f"  {spec.name}: dynamic int8")
                fp32 = run.staging / B.artifact_relpath(spec.name, "onnx", "fp32")
                summary = quantize_dynamic(fp32, run.staging / rel)
                accuracy = {"vs_fp32": compare_outputs(fp32, run.staging / rel,
                                                       [spec.dummy_inputs(8, rng=7)])}
                if captioner:
                    session = ort_session(run.staging / rel)
                    accuracy["generation"] = caption_parity(
                        loaded, spec, lambda x, s=session: s.run(None, {spec.input_names[0]: x})[0],
                        max_new_tokens=run.opts.caption_tokens, require_exact=False)
                run.say(f"  {spec.name}: int8 accuracy {_accuracy_line(accuracy)}")
                run.add_entry(spec, key, fmt, precision, fp, src, time.perf_counter() - t,
                              quantization=_jsonable(summary), accuracy=accuracy)
    if captioner:
        run.say(f"  {family}: saving decoder weights, tokenizer and processor for PyTorch generation")
        entry = save_generation_files(loaded, run.staging / family)
        run.manifest["generation"][family] = {**entry, "source": src}
    elif loaded.tokenizer is not None:
        from .captioning import save_tokenizer_files

        save_tokenizer_files(loaded, run.staging / family)
        run.manifest["tokenizers"][family] = {"path": family, "synthetic": loaded.tokenizer_synthetic,
                                              "source": src}
    if not captioner:
        # the runtime's `torch` backend rebuilds the eager modules the graphs were exported from; captioners
        # already carry theirs in "generation". Pretrained weights are referenced, not copied.
        run.manifest.setdefault("torch", {})[family] = _save_torch_weights(loaded, run.staging / family, src)


def _export_segmenter(run: _Run) -> None:
    from . import segmenter as S
    from .quantize import compare_outputs, quantize_static_qdq, segmenter_calibration_feeds

    source = run.opts.segmenter
    if run.reuse_family("segmenter", source):
        return
    run.say(f"segmenter: building {source} ({run.opts.weights()})")
    module = S.build_segmenter(source, random_init=run.opts.random_init, tiny=run.opts.tiny)
    info = module.info
    src = {"family": "segmenter", "id": source, "revision": None, "weights": run.opts.weights(),
           "label": source if run.opts.weights() == "pretrained" else f"{run.opts.weights()} ({info.architecture})",
           "model": info.as_dict()}
    spec = S.segmenter_spec(info, run.opts.imgsz)
    run.manifest.setdefault("torch", {})["segmenter"] = _save_segmenter_state(module, run.staging, src)
    for key, fmt, precision, fp in run.planned("segmenter", source):
        if run.reuse(key, fp):
            continue
        rel = B.artifact_relpath("segmenter", fmt, precision)
        t = time.perf_counter()
        if fmt == "engine":
            run.build_engine(spec, key, fp, src)
        elif precision == "fp32":
            run.say(f"  segmenter: exporting ONNX fp32 at {run.opts.imgsz}")
            result = S.export_segmenter(module, run.staging / rel, run.opts.imgsz)
            run.say(f"  segmenter: parity ok ({_parity_line({'outputs': result['parity']})})")
            run.add_entry(spec, key, fmt, precision, fp, src, time.perf_counter() - t,
                          parity={"outputs": _jsonable(result["parity"]), "ok": True})
        else:
            run.say("  segmenter: static QDQ int8 (calibration photos)")
            fp32 = run.staging / B.artifact_relpath("segmenter", "onnx", "fp32")
            feeds = segmenter_calibration_feeds(run.opts.imgsz)
            summary = quantize_static_qdq(fp32, run.staging / rel, feeds)
            accuracy = {"vs_fp32": compare_outputs(fp32, run.staging / rel, feeds[:4])}
            run.say(f"  segmenter: int8 accuracy {_accuracy_line(accuracy)}")
            run.add_entry(spec, key, fmt, precision, fp, src, time.perf_counter() - t,
                          quantization=_jsonable(summary), accuracy=accuracy)


def _register_segmenter_onnx(run: _Run) -> None:
    from .segmenter import register_segmenter_onnx

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
    entry = run.add_entry(spec, B.entry_key("segmenter", "onnx", precision), "onnx", precision, fp, src,
                          time.perf_counter() - t, tensor_names=info["tensor_names"],
                          registered=_jsonable(info), parity={"skipped": "registered as is: layout checked"})
    entry["opset"] = info.get("opset")
    entry["inputs"] = {n: {"dtype": info["dtypes"][n], "shape": info["shapes"][n]} for n in spec.input_names}
    entry["outputs"] = {n: {"dtype": info["dtypes"][n], "shape": info["shapes"][n]} for n in spec.output_names}
    run.say(f"  segmenter: layout ok ({info['num_classes']} classes, {info['shapes']['images']})")


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


def run_export(opts: ExportOptions, out_dir: str | Path | None = None, progress: Progress | None = None) -> dict:
    """Export everything ``opts`` asks for into the bundle at ``out_dir``; returns the manifest written."""
    say = progress or (lambda _msg: None)
    bad = set(opts.formats) - {"onnx", "engine"}
    if bad:
        raise UsageError(f"unknown format(s) {sorted(bad)}: use onnx, engine or all")
    if opts.segmenter_onnx and opts.segmenter is not None and opts.segmenter != ExportOptions.segmenter:
        raise UsageError("--segmenter and --segmenter-onnx exclude each other")
    captioner = parse_captioner(opts.captioner)
    target = Path(out_dir).expanduser() if out_dir else B.default_bundle_dir()
    previous = None
    if (target / B.MANIFEST).is_file():
        try:
            previous = B.Bundle.load(target)
        except ModelError:
            previous = None  # an unreadable old bundle is simply replaced
    started = time.perf_counter()
    with B.staged_bundle(target) as staging:
        run = _Run(opts, staging, previous, say)
        if opts.segmenter_onnx:
            _register_segmenter_onnx(run)
        elif opts.segmenter:
            _export_segmenter(run)
        if opts.clip:
            _export_hf_family(run, "clip", opts.clip)
        if captioner:
            _export_hf_family(run, captioner[0], captioner[1])
        if not run.manifest["entries"]:
            raise UsageError("nothing to export: every model family is set to none")
        run.manifest["export_seconds"] = round(time.perf_counter() - started, 1)
        B.write_manifest(staging, run.manifest)
    say(f"bundle written to {target} ({len(run.manifest['entries'])} graphs, {run.manifest['export_seconds']} s)")
    return run.manifest


__all__ = ["ExportOptions", "run_export", "parse_captioner", "FAMILY_SPECS"]
