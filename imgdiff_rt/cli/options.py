"""Options shared by the commands that run the pipeline (run, eval), and the Pipeline they build."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable

import click

from ..errors import UsageError
from ..models.bundle import MANIFEST, default_bundle_dir
from ..imageio import DEFAULT_MAX_PIXELS
from ..pipeline import CAPTIONERS, DEFAULT_MODEL_DETECTOR, DETECTORS, Pipeline
from ..runtime.clip_filter import parse_pair_gate
from ..runtime.detect import SegmentConfig
from ..runtime.session import BACKEND_NAMES
from ..pixel_detector import DEFAULT_THRESHOLD, METRICS, PixelConfig

_DEFAULTS = PixelConfig()


def detector_options(f: Callable) -> Callable:
    opts = [
        click.option("--detector", type=click.Choice(DETECTORS), default=None,
                     help=f"How changed regions are found: pixel differences, Img-Diff's segment + CLIP filter, "
                          f"or both [default: {DEFAULT_MODEL_DETECTOR} when a model bundle is present, else pixel]."),
        click.option("--captioner", type=click.Choice(CAPTIONERS), default="none", show_default=True,
                     help="How regions are described ('none': measured facts only, no model)."),
        click.option("--models", type=click.Path(path_type=Path), default=None,
                     help="Model bundle from `imgdiff-rt export` [default: $IMGDIFF_RT_HOME/models, else "
                          "~/.cache/imgdiff-rt/models]."),
        click.option("--backend", type=click.Choice(BACKEND_NAMES), default="onnx", show_default=True,
                     help="Where the models run: ONNX Runtime, PyTorch eager (reference), TensorRT engines, or "
                          "a Triton server."),
        click.option("--precision", type=click.Choice(("fp32", "int8", "fp16")), default="fp32",
                     show_default=True, help="Which of the bundle's artifacts to run."),
        click.option("--threads", type=int, default=None, help="CPU threads per model session [default: all]."),
        click.option("--url", default=None, metavar="HOST:PORT",
                     help="--backend triton: the server [default: $IMGDIFF_RT_TRITON_URL, else 127.0.0.1:8000]."),
        click.option("--protocol", type=click.Choice(("http", "grpc")), default=None,
                     help="--backend triton: the protocol [default: $IMGDIFF_RT_TRITON_PROTOCOL, else http]."),
        click.option("--beams", type=int, default=1, show_default=True,
                     help="--captioner blip|llava: beam width (1 = greedy)."),
        click.option("--max-new-tokens", type=int, default=None,
                     help="--captioner blip|llava: caption length cap [default: 20 for blip, 64 for llava]."),
        click.option("--clip-threshold", type=float, default=SegmentConfig.clip_threshold, show_default=True,
                     help="segment/hybrid: keep boxes whose two crops have CLIP cosine below this."),
        click.option("--max-proposals", type=int, default=SegmentConfig.max_proposals, show_default=True,
                     help="segment/hybrid: keep at most this many boxes, least similar first."),
        click.option("--pair-gate", default=None, metavar="LO:HI",
                     help="segment/hybrid: keep only pairs whose whole-image CLIP similarity is in LO..HI "
                          "(Img-Diff's data-set filter: 0.90:0.98)."),
        click.option("--align/--no-align", default=False, show_default=True,
                     help="Register the right image onto the left (ORB + RANSAC homography, ECC fallback) "
                          "and compare only the overlap."),
        click.option("--max-regions", type=int, default=_DEFAULTS.max_regions, show_default=True,
                     help="Keep at most this many regions, best score first."),
        click.option("--min-area", type=int, default=None,
                     help="Drop blobs smaller than this many pixels [default: 0.02% of the image, >= 16]."),
        click.option("--threshold", default=None,
                     help="Difference threshold: a number (in the metric's units), 'otsu' or 'percentile:P' "
                          f"[default: {DEFAULT_THRESHOLD['lab']} for lab, {DEFAULT_THRESHOLD['absdiff']} for absdiff]."),
        click.option("--metric", type=click.Choice(METRICS), default=_DEFAULTS.metric, show_default=True,
                     help="Per-pixel distance: CIELAB deltaE or max-channel absolute difference (0-255)."),
        click.option("--blur", "blur_sigma", type=float, default=_DEFAULTS.blur_sigma, show_default=True,
                     help="Gaussian blur sigma in pixels before differencing."),
        click.option("--merge-gap", type=float, default=_DEFAULTS.merge_gap, show_default=True,
                     help="Merge blobs closer than this fraction of the image diagonal (0: no merging)."),
        click.option("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, show_default=True,
                     help="Refuse images with more pixels than this (decompression-bomb guard)."),
    ]
    for opt in reversed(opts):
        f = opt(f)

    @functools.wraps(f)
    def wrapper(**kwargs: Any) -> Any:
        keys = ("detector", "captioner", "align", "max_regions", "min_area", "threshold", "metric",
                "blur_sigma", "merge_gap", "max_pixels", "models", "backend", "precision", "threads",
                "clip_threshold", "max_proposals", "pair_gate", "url", "protocol", "beams", "max_new_tokens")
        kwargs["pipeline"] = build_pipeline(**{k: kwargs.pop(k) for k in keys})
        return f(**kwargs)

    return wrapper


def build_pipeline(detector: str | None, captioner: str, align: bool, max_regions: int, min_area: int | None,
                   threshold: str | None, metric: str, blur_sigma: float, merge_gap: float, max_pixels: int,
                   models: Path | None = None, backend: str = "onnx", precision: str = "fp32",
                   threads: int | None = None, clip_threshold: float = SegmentConfig.clip_threshold,
                   max_proposals: int = SegmentConfig.max_proposals, pair_gate: str | None = None,
                   url: str | None = None, protocol: str | None = None, beams: int = 1,
                   max_new_tokens: int | None = None) -> Pipeline:
    """The Pipeline the options describe. ``pipeline.notice`` (or None) is the one stderr line `run` prints
    after a pair when it fell back to the pixel detector for want of a bundle."""
    pixel = PixelConfig(metric=metric, blur_sigma=blur_sigma, threshold=threshold, min_area=min_area,
                        max_regions=max_regions, merge="box" if merge_gap > 0 else "none", merge_gap=merge_gap)
    bundle_dir = models if models is not None else default_bundle_dir()
    have_bundle = (Path(bundle_dir).expanduser() / MANIFEST).is_file()
    notice = None
    if detector is None:
        detector = DEFAULT_MODEL_DETECTOR if have_bundle else "pixel"
        if not have_bundle:
            notice = (f"note: no model bundle at {bundle_dir}, so the pixel detector ran; for Img-Diff's "
                      f"segment + CLIP detector run `imgdiff-rt export --out {bundle_dir}` (or pass --models DIR)")
    gate = None
    if pair_gate is not None:
        try:
            gate = parse_pair_gate(pair_gate)
        except ValueError as e:
            raise UsageError(f"--pair-gate: {e}") from None
    segment = SegmentConfig(clip_threshold=clip_threshold, max_proposals=max_proposals, pair_gate=gate)
    if (url is not None or protocol is not None) and backend != "triton":
        raise UsageError("--url and --protocol are for --backend triton")
    server = {k: v for k, v in (("url", url), ("protocol", protocol)) if v is not None}
    caption_options = {"beams": beams, **({"max_new_tokens": max_new_tokens} if max_new_tokens else {})}
    needs_models = detector != "pixel" or captioner != "none"
    pipeline = Pipeline(detector=detector, captioner=captioner, align=align, pixel=pixel, max_pixels=max_pixels,
                        models=bundle_dir if needs_models else models, backend=backend, precision=precision,
                        segment=segment, threads=threads, caption_options=caption_options,
                        session_options=server)
    pipeline.notice = notice
    return pipeline
