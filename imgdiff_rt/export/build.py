"""``imgdiff-rt export`` as a library call: every requested graph exported, checked and written into a bundle.

Per family (segmenter, CLIP, captioner): load once, then for each spec: fp32 ONNX + parity (+ greedy-caption
parity for captioners); int8 (dynamic for transformer encoders, static QDQ with calibration photos for the
segmenter) + its accuracy cost; TensorRT engine. Entries whose fingerprint is current in the previous bundle
are carried over without loading anything. The bundle is built beside the target and swapped in at the end.
"""

from __future__ import annotations

import time
from pathlib import Path

from imgdiff_rt.errors import ModelError, UsageError
from imgdiff_rt.models import bundle as B
from imgdiff_rt.models.manifest import Manifest
from imgdiff_rt.runtime.device import check_device, parse_device
# the artifact table and the options are defined in export.options; build offers them too (__all__)
from imgdiff_rt.export.options import ARTIFACTS, Artifact, ExportOptions, Progress, artifacts_for, parse_captioner
from imgdiff_rt.export.export_run import ExportRun


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
        run = ExportRun(opts, staging, previous, say)
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
