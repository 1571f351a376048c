"""The state of one export (``ExportRun``): options, staging folder, previous bundle and the manifest under
construction; it plans each graph's artifacts, carries current ones over and builds the rest by their step.
``build.run_export`` makes one; the family build steps (``families.py``) fill it.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict
from pathlib import Path

from imgdiff_rt.models import bundle as B
from imgdiff_rt.models.specs import CAPTIONER_FAMILIES, family_specs, get_spec
from imgdiff_rt.export.options import Artifact, ExportOptions, Progress
from imgdiff_rt.runtime.device import parse_device


class ExportRun:
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
        return {"engine": jsonable(info), "parity": {"skipped": "engines are checked on the GPU at load"}}


def jsonable(value):
    """``value`` with every key a string and every leaf a JSON scalar (anything else as its ``str``)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
