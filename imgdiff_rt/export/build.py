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

from imgdiff_rt.errors import ModelError, UsageError
from imgdiff_rt.limits import check_count
from imgdiff_rt.models import bundle as B
from imgdiff_rt.models.manifest import Manifest
from imgdiff_rt.models.specs import (CAPTIONER_FAMILIES, DEFAULT_IMGSZ, DEFAULT_SOURCES, FORMATS, PRECISIONS, family_specs,
                            get_spec)
from imgdiff_rt.runtime.device import check_device, parse_device

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Artifact:
    """One kind of artifact a graph can have: its format and precision, the build step that makes it and the
    artifact it is built from (None: from the PyTorch module)."""

    fmt: str
    precision: str
    step: str  # "export" | "quantize" | "engine"
    built_from: tuple[str, str] | None
    doc: str


#: Every artifact the exporter can build, in build order (a later one is built from an earlier one).
ARTIFACTS: tuple[Artifact, ...] = (
    Artifact("onnx", "fp32", "export", None, "the reference graph, checked against PyTorch"),
    Artifact("onnx", "int8", "quantize", ("onnx", "fp32"),
             "CPU int8: dynamic for transformer encoders, static QDQ (calibration photos) for the segmenter"),
    # TensorRT cannot parse ORT's dynamic-int8 ops, and fp16 is the GPU's fast path for these graphs
    Artifact("engine", "fp16", "engine", ("onnx", "fp32"), "TensorRT fp16 engine from the fp32 graph"),
)


def artifacts_for(formats: tuple[str, ...], precision: str) -> list[Artifact]:
    """The artifacts ``formats`` and ``precision`` ask for: fp32 ONNX always (the reference, and what engines
    are built from), int8 ONNX for precision int8, the fp16 engine for format engine."""
    bad = set(formats) - set(FORMATS)
    if bad:
        raise UsageError(f"formats {sorted(bad)}: use {', '.join(FORMATS)}", parameter="formats")
    if precision not in PRECISIONS:
        raise UsageError(f"precision {precision!r}: use {', '.join(PRECISIONS)}", parameter="precision")
    if precision == "fp16" and "engine" not in formats:
        raise UsageError("precision 'fp16' is built as TensorRT engines only (formats must include 'engine'); "
                         "ONNX graphs are fp32, or int8 for CPUs", parameter="precision")
    wanted = {("onnx", "fp32")} | ({("onnx", "int8")} if precision == "int8" else set()) | \
        ({("engine", "fp16")} if "engine" in formats else set())
    return [a for a in ARTIFACTS if (a.fmt, a.precision) in wanted]


@dataclass
class ExportOptions:
    segmenter: str | None = DEFAULT_SOURCES["segmenter"]  # None: no segmenter
    segmenter_onnx: str | None = None
    segmenter_fp32: bool = False  # with segmenter_onnx (dynamic int8): also its dequantized fp32 rebuild
    clip: str | None = DEFAULT_SOURCES["clip"]
    captioner: str | None = "blip"  # "blip[:SRC]", "llava[:SRC]" or None
    formats: tuple[str, ...] = ("onnx",)
    precision: str = "fp32"
    imgsz: int = DEFAULT_IMGSZ
    random_init: bool = False
    tiny: bool = False
    force: bool = False
    caption_tokens: int = 12
    device: str = "cpu"  # cpu | cuda | cuda:N: PyTorch's device and ONNX Runtime's providers for the checks

    def __post_init__(self) -> None:  # before any model is loaded: a bad size fails in milliseconds
        parse_device(self.device)
        check_count("imgsz", self.imgsz, 32, 4096)
        if self.imgsz % 32:
            raise UsageError(f"imgsz must be a multiple of 32 (the segmenter's largest stride), got {self.imgsz}",
                             parameter="imgsz")
        check_count("caption_tokens", self.caption_tokens, 1, 512)

    def weights(self) -> str:
        return "tiny" if self.tiny else "random-init" if self.random_init else "pretrained"

    def artifacts(self) -> list[Artifact]:
        return artifacts_for(self.formats, self.precision)


def parse_captioner(value: str | None) -> tuple[str, str | None] | None:
    if value is None or value.strip().lower() in ("", "none"):
        return None
    kind, _, source = value.partition(":")
    if kind not in CAPTIONER_FAMILIES:
        raise UsageError(f"captioner {value!r}: use {'[:SRC], '.join(CAPTIONER_FAMILIES)}[:SRC] or none",
                         parameter="captioner")
    return kind, source or None


class _Run:
    """State of one export: options, staging folder, previous bundle, manifest under construction."""

    def __init__(self, opts: ExportOptions, staging: Path, previous: B.Bundle | None, progress: Progress):
        self.opts, self.staging, self.previous, self.say = opts, staging, previous, progress
        self.device = parse_device(opts.device)  # run_export checked this machine has it
        self.manifest = B.ManifestDraft(asdict(opts))
        self.libs = self.manifest.libraries

    # -- planning / reuse ----------------------------------------------------------------------------
    def planned(self, spec_name: str, source: str) -> list[tuple[Artifact, str, str]]:
        """(artifact, entry key, fingerprint) for every artifact this spec should have."""
        common = dict(spec=spec_name, source=source, weights=self.opts.weights(), opset=get_spec(spec_name).opset,
                      imgsz=self.opts.imgsz if spec_name == "segmenter" else None)
        return [(a, B.entry_key(spec_name, a.fmt, a.precision),
                 B.fingerprint(fmt=a.fmt, precision=a.precision, **common)) for a in self.opts.artifacts()]

    def reuse(self, key: str, fp: str) -> bool:
        if self.opts.force:
            return False
        old = B.reusable_entry(self.previous, key, fp)
        if old is None:
            return False
        B.carry_over(self.previous, self.staging, old.file)
        self.manifest.keep_entry(old)
        self.say(f"  {key}: current, kept")
        return True

    def reuse_family(self, family: str, source: str) -> bool:
        plan = [p for s in family_specs(family) for p in self.planned(s, source)]
        if self.opts.force or self.previous is None or not all(
                B.reusable_entry(self.previous, key, fp) for _, key, fp in plan):
            return False
        for _, key, fp in plan:
            self.reuse(key, fp)
        self.carry_parts(family)
        return True

    def carry_parts(self, family: str) -> None:
        """The previous bundle's non-graph parts of ``family`` (generation, tokenizers, torch), as they are."""
        for part in self.previous.family_parts(family).values():
            if part.relpath:
                B.carry_over(self.previous, self.staging, part.relpath)
            self.manifest.keep_part(part)

    def keep_other_captioners(self, exported: str | None) -> None:
        """Re-exporting with another captioner merges: the previous bundle's other captioners stay, graphs and
        generation files as they were (a bundle may hold both BLIP and LLaVA; run picks with --captioner)."""
        if self.previous is None:
            return
        for family in CAPTIONER_FAMILIES:
            graphs = [e for s in family_specs(family) for e in self.previous.graph_entries(s)]
            if family == exported or not (graphs or self.previous.family_parts(family)):
                continue
            for entry in graphs:
                B.carry_over(self.previous, self.staging, entry.file)
                self.manifest.keep_entry(entry)
            self.carry_parts(family)
            self.say(f"{family}: kept from the previous bundle beside the new captioner (merged)")

    # -- entries -------------------------------------------------------------------------------------
    def add_entry(self, spec, key: str, fmt: str, precision: str, fp: str, source: dict, seconds: float,
                  **extra) -> None:
        rel = B.artifact_relpath(spec.name, fmt, precision)
        file = self.staging / rel
        entry = {"spec": spec.name, "format": fmt, "precision": precision, "file": rel,
                 "sha256": B.sha256_file(file), "bytes": file.stat().st_size, "opset": spec.opset,
                 "sizes": dict(spec.sizes), **B.tensor_layout(spec), "source": source,
                 "libraries": self.libs, "export_seconds": round(seconds, 2),
                 "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "fingerprint": fp, **extra}
        self.manifest.add_entry(key, entry)

    def path(self, spec_name: str, fmt: str, precision: str) -> Path:
        return self.staging / B.artifact_relpath(spec_name, fmt, precision)

    def build(self, spec, graph, source: str, src: dict) -> None:
        """Every planned artifact of ``spec`` not carried over, by its step, in table order."""
        steps = {"export": graph.export, "quantize": graph.quantize, "engine": self.build_engine}
        for artifact, key, fp in self.planned(spec.name, source):
            if self.reuse(key, fp):
                continue
            t = time.perf_counter()
            extra = steps[artifact.step](spec, artifact)
            self.add_entry(spec, key, artifact.fmt, artifact.precision, fp, src, time.perf_counter() - t, **extra)

    def build_engine(self, spec, artifact: Artifact) -> dict:
        from imgdiff_rt.export.tensorrt_engine import build_engine  # optional extra: imported only when engines are asked for

        out = self.path(spec.name, artifact.fmt, artifact.precision)
        out.parent.mkdir(parents=True, exist_ok=True)
        cache = self.staging / "engines" / "timing.cache"
        if self.previous is not None and (self.previous.root / "engines" / "timing.cache").is_file() \
                and not cache.exists():
            shutil.copy2(self.previous.root / "engines" / "timing.cache", cache)
        self.say(f"  {spec.name}: building TensorRT {artifact.precision} engine")
        info = build_engine(self.path(spec.name, *artifact.built_from), spec, out, precision=artifact.precision,
                            timing_cache=cache, imgsz=self.opts.imgsz)
        return {"engine": _jsonable(info), "parity": {"skipped": "engines are checked on the GPU at load"}}


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def run_export(opts: ExportOptions, out_dir: str | Path | None = None,
               progress: Progress | None = None) -> Manifest:
    """Export everything ``opts`` asks for into the bundle at ``out_dir``; returns the manifest written."""
    say = progress or (lambda _msg: None)
    opts.artifacts()  # bad formats / precision fail before anything is loaded
    check_device(parse_device(opts.device))  # a missing GPU is one line here, not a failure deep in a check
    if opts.segmenter_onnx and opts.segmenter is not None and opts.segmenter != ExportOptions.segmenter:
        raise UsageError("segmenter and segmenter_onnx exclude each other", parameter="segmenter_onnx")
    if opts.segmenter_fp32 and not opts.segmenter_onnx:
        raise UsageError("segmenter_fp32 rebuilds a registered int8 segmenter: pass segmenter_onnx (--segmenter-onnx "
                         "PATH) too", parameter="segmenter_fp32")
    captioner = parse_captioner(opts.captioner)
    from imgdiff_rt.export.preflight import check_export_ready

    check_export_ready(opts, captioner)  # TensorRT, and every pretrained source at once, before any work
    target = Path(out_dir).expanduser() if out_dir else B.default_bundle_dir()
    previous = None
    if (target / B.MANIFEST).is_file():
        try:
            previous = B.Bundle.load(target)
        except ModelError:
            previous = None  # an unreadable old bundle is simply replaced
    started = time.perf_counter()
    from imgdiff_rt.export.families import export_hf_family, export_segmenter, register_foreign_segmenter

    with B.staged_bundle(target) as staging:
        run = _Run(opts, staging, previous, say)
        if opts.segmenter_onnx:
            register_foreign_segmenter(run)
        elif opts.segmenter:
            export_segmenter(run)
        if opts.clip:
            export_hf_family(run, "clip", opts.clip)
        if captioner:
            export_hf_family(run, captioner[0], captioner[1])
            run.keep_other_captioners(captioner[0])
        if not run.manifest.graphs:
            raise UsageError("nothing to export: every model family is set to none")
        manifest = run.manifest.write(staging, round(time.perf_counter() - started, 1))
    say(f"bundle written to {target} ({len(manifest.entries)} graphs, {manifest.export_seconds} s)")
    return manifest


__all__ = ["ARTIFACTS", "Artifact", "ExportOptions", "artifacts_for", "parse_captioner", "run_export"]
