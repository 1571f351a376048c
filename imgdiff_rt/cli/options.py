"""Options shared by the commands that run the pipeline (run, eval), and the Pipeline they build."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable

import click

from imgdiff_rt.errors import UsageError
from imgdiff_rt.extras import require_options
from imgdiff_rt.models.bundle import default_bundle_dir
from imgdiff_rt.imageio import DEFAULT_MAX_PIXELS, TILED_MAX_PIXELS
from imgdiff_rt.pipeline import CAPTIONERS, DEFAULT_MODEL_DETECTOR, DETECTORS, Pipeline
from imgdiff_rt.weights_report import choose_detector, require_precision, weights_notice
from imgdiff_rt.models.auto_precision import AUTO as AUTO_PRECISION
from imgdiff_rt.models.specs import PRECISIONS
from imgdiff_rt.detectors.model.clip_filter import DEFAULT_PAIR_GATE, parse_pair_gate
from imgdiff_rt.detectors.model.detector import SegmentConfig
from imgdiff_rt.runtime.device import half_precision, session_settings
from imgdiff_rt.runtime.session import BACKEND_NAMES
from imgdiff_rt.detectors.model.segmenter_features import DEFAULT_FEATURE_THRESHOLD, FILTERS
from imgdiff_rt.detectors.registration import ALIGN_METHODS, DEFAULT_ALIGN
from imgdiff_rt.detectors.ignore import IGNORED_SHARE, IgnoreSpec
from imgdiff_rt.detectors.pixel.detector import DEFAULT_THRESHOLD, METRICS, PHOTOMETRIC, PixelConfig

_PIXEL = PixelConfig()
_SEGMENT = SegmentConfig()
_GATE_EXAMPLE = ":".join(f"{v:.2f}" for v in DEFAULT_PAIR_GATE)

#: The options of every command that runs the pipeline (run, eval, web): one row per option, the
#: ``click.option`` arguments as they are. Each option's parameter name is a ``build_pipeline`` parameter;
#: defaults come from the library's dataclasses. To add an option: add a row here and a parameter there.
PIPELINE_OPTIONS: tuple[tuple[tuple[str, ...], dict[str, Any]], ...] = (
    (("--detector",), dict(
        type=click.Choice(DETECTORS), default=None,
        help=f"How changed regions are found: pixel differences, Img-Diff's segment + CLIP filter, "
             f"or both [default: {DEFAULT_MODEL_DETECTOR} when the bundle has a segmenter and a pretrained CLIP, "
             f"else pixel, with one line saying why].")),
    (("--captioner",), dict(type=click.Choice(CAPTIONERS), default="none", show_default=True,
                            help="How regions are described ('none': measured facts only, no model).")),
    (("--models",), dict(type=click.Path(path_type=Path), default=None,
                         help="Model bundle from `imgdiff-rt export` [default: $IMGDIFF_RT_HOME/models, else "
                              "~/.cache/imgdiff-rt/models].")),
    (("--backend",), dict(type=click.Choice(BACKEND_NAMES), default="onnx", show_default=True,
                          help="Where the models run: ONNX Runtime, PyTorch eager (reference), TensorRT engines, "
                               "or a Triton server.")),
    (("--precision",), dict(type=click.Choice((AUTO_PRECISION, *PRECISIONS)), default=AUTO_PRECISION,
                            show_default=True,
                            help="Which of the bundle's artifacts to run: auto picks per graph the fastest on the "
                                 "CPU whose export checks passed (an int8 graph within its accuracy bounds, a "
                                 "registered int8 segmenter's dequantized fp32 rebuild), else fp32; the settings "
                                 "and weights block record what ran (TensorRT engines are fp16).")),
    (("--threads",), dict(type=int, default=None, help="CPU threads per model session [default: all].")),
    (("--device",), dict(default=None, metavar="cpu|cuda[:N]",
                         help="Where the models run: ONNX Runtime's CPU or CUDA provider (on GPU N) and the PyTorch "
                              "device of caption generation [default: the best provider present; CUDA for "
                              "generation when present].")),
    (("--half",), dict(is_flag=True, help="Alias of --precision fp16 (TensorRT engines).")),
    (("--url",), dict(default=None, metavar="[grpc://|http://]HOST:PORT",
                      help="--backend triton: the server [default: $IMGDIFF_RT_TRITON_URL, else 127.0.0.1:8000].")),
    (("--protocol",), dict(type=click.Choice(("http", "grpc")), default=None,
                           help="--backend triton: the protocol [default: the URL's scheme, else "
                                "$IMGDIFF_RT_TRITON_PROTOCOL, else what the port answers].")),
    (("--beams",), dict(type=int, default=1, show_default=True, help="--captioner blip|llava: beam width (1 = greedy).")),
    (("--max-new-tokens",), dict(type=int, default=None,
                                 help="--captioner blip|llava: caption length cap [default: 20 for blip, 64 for llava].")),
    (("--clip-threshold",), dict(type=float, default=_SEGMENT.clip_threshold, show_default=True,
                                 help="segment/hybrid: keep boxes whose two crops have CLIP cosine below this.")),
    (("--max-proposals",), dict(type=int, default=_SEGMENT.max_proposals, show_default=True,
                                help="segment/hybrid: keep at most this many boxes, least similar first.")),
    (("--pixel-gate",), dict(default=None, metavar="D|none",
                             help="segment/hybrid: send to CLIP only boxes whose two crops differ by more than this "
                                  "mean pixel difference (0..255; skipped boxes count as similarity 1.0); none sends "
                                  f"every box, as Img-Diff does [default: {_SEGMENT.pixel_gate:g}].")),
    (("--pair-gate",), dict(default=None, metavar="LO:HI",
                            help="segment/hybrid: keep only pairs whose whole-image CLIP similarity is in LO..HI "
                                 f"(Img-Diff's data-set filter: {_GATE_EXAMPLE}).")),
    (("--filter", "similarity_filter"), dict(
        type=click.Choice(FILTERS), default=None,
        help="Drop regions whose two sides still look alike: CLIP on the crops (what segment/hybrid run), the "
             "registered real segmenter's neck features (a bundle from `imgdiff-rt export --segmenter-onnx "
             "PATH`), or none [default: clip for segment/hybrid, else none].")),
    (("--filter-threshold",), dict(type=float, default=DEFAULT_FEATURE_THRESHOLD, show_default=True,
                                  help="--filter segmenter: drop regions whose feature cosine is at least this.")),
    (("--align",), dict(type=click.Choice(ALIGN_METHODS), default=DEFAULT_ALIGN, show_default=True,
                        is_flag=False, flag_value="auto",
                        help="Register the right image onto the left before differencing: dense optical flow "
                             "held to a smooth camera field (flow), ORB + RANSAC homography (homography), flow "
                             "or its homography as the motion needs (auto), or none. Compares only the overlap.")),
    (("--photometric",), dict(type=click.Choice(PHOTOMETRIC), default=_PIXEL.photometric, show_default=True,
                              help="Match the right image's light to the left before differencing: per-channel "
                                   "gain/offset (global), plus a slowly varying gain field (local), or none.")),
    (("--max-regions",), dict(type=int, default=_PIXEL.max_regions, show_default=True,
                              help="Keep at most this many regions, best score first.")),
    (("--min-area",), dict(type=int, default=None,
                           help="Drop blobs smaller than this many pixels [default: 0.02% of the image, >= 16].")),
    (("--threshold",), dict(default=None,
                            help="Difference threshold: a number (in the metric's units), 'otsu' or 'percentile:P' "
                                 f"[default: {DEFAULT_THRESHOLD['lab']} for lab, {DEFAULT_THRESHOLD['absdiff']} "
                                 "for absdiff].")),
    (("--metric",), dict(type=click.Choice(METRICS), default=_PIXEL.metric, show_default=True,
                         help="Per-pixel distance: CIELAB deltaE or max-channel absolute difference (0-255).")),
    (("--blur", "blur_sigma"), dict(type=float, default=_PIXEL.blur_sigma, show_default=True,
                                    help="Gaussian blur sigma in pixels before differencing.")),
    (("--merge-gap",), dict(type=float, default=_PIXEL.merge_gap, show_default=True,
                            help="Merge blobs closer than this fraction of the image diagonal (0: no merging).")),
    (("--max-pixels",), dict(type=int, default=DEFAULT_MAX_PIXELS, show_default=True,
                             help="Refuse images with more pixels than this (decompression-bomb guard).")),
    (("--tiled",), dict(is_flag=True,
                        help=f"Compare pairs above --max-pixels (up to {TILED_MAX_PIXELS / 1e6:g} MP) in strips with "
                             "overlap, memory bounded by a strip (pixel detector, compared without registration; "
                             "progress on stderr).")),
    (("--ignore",), dict(multiple=True, metavar="X0,Y0,X1,Y1",
                         help="Never report a change in this box: left-image pixels, or fractions of the size when "
                              "all four are 0-1 (repeatable; timestamps, ads, clocks). Regions at least "
                              f"{IGNORED_SHARE:.0%} inside ignored pixels are dropped.")),
    (("--ignore-mask",), dict(type=click.Path(path_type=Path, dir_okay=False), default=None,
                              help="Never report a change where this PNG is white (resized to the image).")),
)


def pipeline_option_names() -> list[str]:
    """The ``build_pipeline`` parameter each table row sets (what Click names the option)."""
    return [click.Option(decls).name for decls, _ in PIPELINE_OPTIONS]


def detector_options(f: Callable) -> Callable:
    """Add every PIPELINE_OPTIONS row to a command; the command receives ``pipeline`` (built from them) instead,
    and the one-line fallback notice (or None) in ``click.get_current_context().meta[NOTICE_KEY]``."""
    for decls, kwargs in reversed(PIPELINE_OPTIONS):
        f = click.option(*decls, **kwargs)(f)
    names = pipeline_option_names()

    @functools.wraps(f)
    def wrapper(**kwargs: Any) -> Any:
        values = {k: kwargs.pop(k) for k in names}
        require_options(kwargs, models_run=False)  # the command's own options (--engine ray, --parquet)
        kwargs["pipeline"] = pipeline = build_pipeline(**values)
        fallback = fallback_notice(values["detector"], values["models"]) if values["backend"] != "triton" else None
        notices = (fallback, weights_notice(pipeline.weights()))
        click.get_current_context().meta[NOTICE_KEY] = "\n".join(n for n in notices if n) or None
        return f(**kwargs)

    return wrapper


#: where `detector_options` leaves the fallback notice for the command (CLI state, not the library's)
NOTICE_KEY = "imgdiff_rt.fallback_notice"


def _pixel_gate(text: str | None) -> float | None:
    """--pixel-gate: unset -> the default gate, "none" -> no gate (every box through CLIP), else a number."""
    if text is None:
        return SegmentConfig.pixel_gate
    if str(text).strip().lower() == "none":
        return None
    try:
        return float(text)
    except ValueError:
        raise UsageError(f"pixel_gate: expected a number or none, got {text!r}", parameter="pixel_gate") from None


def fallback_notice(detector: str | None, models: Path | None) -> str | None:
    """The stderr line for a run that fell back to the pixel detector because no --detector was given and the
    bundle is absent, lacks a graph or has an untrained CLIP (None otherwise)."""
    return choose_detector(detector, models if models is not None else default_bundle_dir()).notice


def build_pipeline(detector: str | None, captioner: str, align: str, max_regions: int, min_area: int | None,
                   threshold: str | None, metric: str, blur_sigma: float, merge_gap: float, max_pixels: int,
                   models: Path | None = None, backend: str = "onnx", precision: str = AUTO_PRECISION,
                   threads: int | None = None, clip_threshold: float = SegmentConfig.clip_threshold,
                   max_proposals: int = SegmentConfig.max_proposals, pair_gate: str | None = None,
                   pixel_gate: str | None = None,
                   url: str | None = None, protocol: str | None = None, beams: int = 1,
                   max_new_tokens: int | None = None, photometric: str = _PIXEL.photometric,
                   device: str | None = None, half: bool = False, similarity_filter: str | None = None,
                   filter_threshold: float = DEFAULT_FEATURE_THRESHOLD, ignore: tuple[str, ...] = (),
                   ignore_mask: Path | None = None, tiled: bool = False) -> Pipeline:
    """The Pipeline the options describe (``fallback_notice`` says when it fell back to the pixel detector)."""
    pixel = PixelConfig(metric=metric, blur_sigma=blur_sigma, threshold=threshold, min_area=min_area,
                        max_regions=max_regions, merge="box" if merge_gap > 0 else "none", merge_gap=merge_gap,
                        photometric=photometric)
    if backend == "triton":
        return _served_pipeline({k: v for k, v in locals().items() if k in _SERVED_ARGS})
    bundle_dir = models if models is not None else default_bundle_dir()
    extras = {"backend": backend, "captioner": captioner, "similarity_filter": similarity_filter}
    # what the options ask for is checked before the bundle: installing comes before exporting
    require_options(extras, models_run=(detector or "pixel") != "pixel" or captioner != "none"
                    or similarity_filter == "segmenter")
    detector = choose_detector(detector, bundle_dir).detector
    feature_filter = _feature_filter(similarity_filter, detector)
    needs_models = detector != "pixel" or captioner != "none" or feature_filter == "segmenter"
    require_options(extras, models_run=needs_models)  # the default detector on this bundle may run models
    gate = None
    if pair_gate is not None:
        try:
            gate = parse_pair_gate(pair_gate)
        except ValueError as e:
            raise UsageError(f"--pair-gate: {e}") from None
    segment = SegmentConfig(clip_threshold=clip_threshold, max_proposals=max_proposals, pair_gate=gate,
                            pixel_gate=_pixel_gate(pixel_gate))
    if (url is not None or protocol is not None) and backend != "triton":
        raise UsageError("--url and --protocol are for --backend triton")
    require_precision(detector, bundle_dir, backend, precision)
    server = {k: v for k, v in (("url", url), ("protocol", protocol)) if v is not None}
    precision, placed, generation = _placement(device, half, backend, precision)
    caption_options = {"beams": beams, **({"max_new_tokens": max_new_tokens} if max_new_tokens else {}),
                       **generation}
    pipeline = Pipeline(detector=detector, captioner=captioner, align=align, pixel=pixel, max_pixels=max_pixels,
                        models=bundle_dir if needs_models else models, backend=backend, precision=precision,
                        segment=segment, threads=threads, caption_options=caption_options,
                        session_options={**server, **placed}, feature_filter=feature_filter,
                        feature_threshold=filter_threshold, ignore=IgnoreSpec.parse(ignore, ignore_mask),
                        tiled=tiled, progress=_stderr_line if tiled else None)
    return pipeline


def _stderr_line(message: str) -> None:
    click.echo(message, err=True)


def _feature_filter(similarity_filter: str | None, detector: str) -> str:
    """--filter -> the Pipeline's extra filter: segment/hybrid always run their CLIP filter, pixel has none."""
    if similarity_filter == "clip" and detector == "pixel":
        raise UsageError("--filter clip runs inside the segment/hybrid detectors: pass --detector hybrid")
    if similarity_filter == "none" and detector != "pixel":
        raise UsageError(f"--detector {detector} always runs its CLIP filter: pass --detector pixel --filter none")
    return "segmenter" if similarity_filter == "segmenter" else "none"


def _placement(device: str | None, half: bool, backend: str, precision: str) -> tuple[str, dict, dict]:
    """(precision, session options, caption options) of --device and --half (fp16, the name users know)."""
    sessions, generation = session_settings(device, backend)
    return half_precision(half, precision), sessions, generation


#: build_pipeline parameters a served pipeline reads (the rest is the pixel config, validated before)
_SERVED_ARGS = ("detector", "captioner", "align", "max_regions", "min_area", "threshold", "metric", "blur_sigma",
                "merge_gap", "max_pixels", "models", "precision", "threads", "clip_threshold", "max_proposals",
                "pair_gate", "pixel_gate", "url", "protocol", "beams", "max_new_tokens", "photometric", "device",
                "half", "similarity_filter", "filter_threshold", "ignore", "ignore_mask", "tiled")


def _served_pipeline(values: dict[str, Any]):
    """--backend triton: every pair is one request to the server's imgdiff_pipeline, which runs this Pipeline
    on its own bundle; the options a request cannot set are the server's and are refused when given."""
    from imgdiff_rt.triton.served import ServedPipeline
    from imgdiff_rt.web.request_options import SERVED_PER_REQUEST

    require_options({"backend": "triton"}, models_run=True)
    defaults = _option_defaults()
    fixed = [n for n in values if n not in SERVED_PER_REQUEST and n not in ("models", "url", "protocol", "ignore")
             and values[n] != defaults[n]]
    if fixed:
        flags = ", ".join("--" + _FLAGS.get(n, n).replace("_", "-") for n in fixed)
        raise UsageError(f"--backend triton: {flags} the server fixes (in `imgdiff-rt triton-repo`); a request sets "
                         f"only {', '.join('--' + _FLAGS.get(n, n).replace('_', '-') for n in SERVED_PER_REQUEST)}")
    if values["pair_gate"] is not None:
        try:
            parse_pair_gate(values["pair_gate"])
        except ValueError as e:
            raise UsageError(f"--pair-gate: {e}") from None
    _pixel_gate(values["pixel_gate"])
    options = {n: values[n] for n in SERVED_PER_REQUEST}
    return ServedPipeline(options, values["url"], values["protocol"], IgnoreSpec.parse(values["ignore"]),
                          values["max_pixels"])


_FLAGS = {"blur_sigma": "blur", "similarity_filter": "filter"}


def _option_defaults() -> dict[str, Any]:
    """Each table option's default as the command receives it."""
    params = [click.Option(decls, **kwargs) for decls, kwargs in PIPELINE_OPTIONS]
    ctx = click.Context(click.Command("defaults", params=params))
    return {p.name: (() if p.multiple else p.get_default(ctx)) for p in params}
