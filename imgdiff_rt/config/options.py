"""Every pipeline option, declared once: name, part of the configuration, type, default, range, help, and who may
set it. The CLI's flags, the web API's request fields and /v1/info, the served pipeline's request JSON,
docs/defaults.md and the README's option list are all derived from ``OPTIONS``; nothing restates them.

Scopes: ``pair`` options change only how a pair is compared (any request may set them); ``served`` options
choose among graphs a Triton server already serves (a served-pipeline request may set them, a web request may
not, since the web server opened its own sessions); ``server`` options are fixed when the server starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from imgdiff_rt.captioners.stage import CAPTIONERS
from imgdiff_rt.detectors.ignore import IGNORED_SHARE
from imgdiff_rt.detectors.model.clip_filter import DEFAULT_PAIR_GATE
from imgdiff_rt.detectors.model.detector import SegmentConfig
from imgdiff_rt.detectors.model.segmenter_features import DEFAULT_FEATURE_THRESHOLD, FILTERS
from imgdiff_rt.detectors.pixel.detector import DEFAULT_THRESHOLD, METRICS, PHOTOMETRIC, PixelConfig
from imgdiff_rt.detectors.registration import ALIGN_METHODS, DEFAULT_ALIGN
from imgdiff_rt.imageio import DEFAULT_MAX_PIXELS, TILED_MAX_PIXELS
from imgdiff_rt.limits import MAX_BEAMS, MAX_BLUR_SIGMA, MAX_NEW_TOKENS, MAX_REGIONS, MAX_THREADS
from imgdiff_rt.models.auto_precision import AUTO as AUTO_PRECISION
from imgdiff_rt.models.specs import PRECISIONS
from imgdiff_rt.runtime.session import BACKEND_NAMES
from imgdiff_rt.weights_report import DEFAULT_MODEL_DETECTOR

DETECTORS = ("pixel", "segment", "hybrid")
KINDS = ("choice", "int", "float", "text", "path", "file", "flag", "boxes")
SCOPES = ("pair", "served", "server")

_PIXEL = PixelConfig()
_SEGMENT = SegmentConfig()
_GATE_EXAMPLE = ":".join(f"{v:.2f}" for v in DEFAULT_PAIR_GATE)


@dataclass(frozen=True)
class Option:
    """One option. ``name`` is the library's parameter; ``flag`` the command line's spelling (``--blur`` for
    ``blur_sigma``); ``low``/``high`` the accepted range (None: open); ``choices`` for kind ``choice``."""

    name: str
    section: str  # the part of PipelineConfig it sets
    kind: str
    default: Any
    help: str
    scope: str = "server"
    choices: tuple = ()
    low: float | None = None
    high: float | None = None
    high_open: bool = False  # the range excludes ``high`` itself
    flag: str | None = None
    metavar: str | None = None
    show_default: bool = False
    flag_value: str | None = None  # given without a value (``--align`` alone means auto)

    @property
    def cli_flag(self) -> str:
        return "--" + (self.flag or self.name.replace("_", "-"))

    @property
    def field(self) -> str:
        """The name a web or served request uses: the flag without dashes (``blur``, ``max-regions``)."""
        return self.cli_flag[2:]


def _opt(name, section, kind, default, help, **kw) -> Option:
    return Option(name, section, kind, default, help, **kw)


OPTIONS: tuple[Option, ...] = (
    _opt("detector", "detection", "choice", None, choices=DETECTORS, scope="served",
         help=f"How changed regions are found: pixel differences, Img-Diff's segment + CLIP filter, "
              f"or both [default: {DEFAULT_MODEL_DETECTOR} when the bundle has a segmenter and a pretrained CLIP, "
              f"else pixel, with one line saying why]."),
    _opt("captioner", "caption", "choice", "none", choices=CAPTIONERS, scope="served", show_default=True,
         help="How regions are described ('none': measured facts only, no model)."),
    _opt("models", "placement", "path", None,
         help="Model bundle from `imgdiff-rt export` [default: $IMGDIFF_RT_HOME/models, else "
              "~/.cache/imgdiff-rt/models]."),
    _opt("backend", "placement", "choice", "onnx", choices=BACKEND_NAMES, show_default=True,
         help="Where the models run: ONNX Runtime, PyTorch eager (reference), TensorRT engines, or a Triton server."),
    _opt("precision", "placement", "choice", AUTO_PRECISION, choices=(AUTO_PRECISION, *PRECISIONS), show_default=True,
         help="Which of the bundle's artifacts to run: auto picks per graph the fastest on the CPU whose export "
              "checks passed (an int8 graph within its accuracy bounds, a registered int8 segmenter's dequantized "
              "fp32 rebuild), else fp32; the settings and weights block record what ran (TensorRT engines are fp16)."),
    _opt("threads", "placement", "int", None, low=1, high=MAX_THREADS,
         help="CPU threads per model session [default: all]."),
    _opt("device", "placement", "text", None, metavar="cpu|cuda[:N]",
         help="Where the models run: ONNX Runtime's CPU or CUDA provider (on GPU N) and the PyTorch device of "
              "caption generation [default: the best provider present; CUDA for generation when present]."),
    _opt("half", "placement", "flag", False, help="Alias of --precision fp16 (TensorRT engines)."),
    _opt("url", "placement", "text", None, metavar="[grpc://|http://]HOST:PORT",
         help="--backend triton: the server [default: $IMGDIFF_RT_TRITON_URL, else 127.0.0.1:8000]."),
    _opt("protocol", "placement", "choice", None, choices=("http", "grpc"),
         help="--backend triton: the protocol [default: the URL's scheme, else $IMGDIFF_RT_TRITON_PROTOCOL, else "
              "what the port answers]."),
    _opt("beams", "caption", "int", 1, low=1, high=MAX_BEAMS, scope="served", show_default=True,
         help="--captioner blip|llava: beam width (1 = greedy)."),
    _opt("max_new_tokens", "caption", "int", None, low=1, high=MAX_NEW_TOKENS, scope="served",
         help="--captioner blip|llava: caption length cap [default: 20 for blip, 64 for llava]."),
    _opt("clip_threshold", "segment", "float", _SEGMENT.clip_threshold, low=-1.0, high=1.0, scope="served",
         show_default=True, help="segment/hybrid: keep boxes whose two crops have CLIP cosine below this."),
    _opt("max_proposals", "segment", "int", _SEGMENT.max_proposals, low=1, high=MAX_REGIONS, scope="served",
         show_default=True, help="segment/hybrid: keep at most this many boxes, least similar first."),
    _opt("pixel_gate", "segment", "text", None, metavar="D|none", scope="served",
         help="segment/hybrid: send to CLIP only boxes whose two crops differ by more than this mean pixel "
              "difference (0..255; skipped boxes count as similarity 1.0); none sends every box, as Img-Diff does "
              f"[default: {_SEGMENT.pixel_gate:g}]."),
    _opt("pair_gate", "segment", "text", None, metavar="LO:HI", scope="served",
         help="segment/hybrid: keep only pairs whose whole-image CLIP similarity is in LO..HI "
              f"(Img-Diff's data-set filter: {_GATE_EXAMPLE})."),
    _opt("similarity_filter", "filter", "choice", None, choices=FILTERS, flag="filter",
         help="Drop regions whose two sides still look alike: CLIP on the crops (what segment/hybrid run), the "
              "registered real segmenter's neck features (a bundle from `imgdiff-rt export --segmenter-onnx "
              "PATH`), or none [default: clip for segment/hybrid, else none]."),
    _opt("filter_threshold", "filter", "float", DEFAULT_FEATURE_THRESHOLD, low=-1.0, high=1.0, show_default=True,
         help="--filter segmenter: drop regions whose feature cosine is at least this."),
    _opt("align", "registration", "choice", DEFAULT_ALIGN, choices=ALIGN_METHODS, scope="pair", show_default=True,
         flag_value="auto",
         help="Register the right image onto the left before differencing: dense optical flow held to a smooth "
              "camera field (flow), ORB + RANSAC homography (homography), flow or its homography as the motion "
              "needs (auto), or none. Compares only the overlap."),
    _opt("photometric", "pixel", "choice", _PIXEL.photometric, choices=PHOTOMETRIC, scope="pair", show_default=True,
         help="Match the right image's light to the left before differencing: per-channel gain/offset (global), "
              "plus a slowly varying gain field (local), or none."),
    _opt("max_regions", "pixel", "int", _PIXEL.max_regions, low=1, high=MAX_REGIONS, scope="pair",
         show_default=True, help="Keep at most this many regions, best score first."),
    _opt("min_area", "pixel", "int", None, low=1, scope="pair",
         help="Drop blobs smaller than this many pixels [default: 0.02% of the image, >= 16]."),
    _opt("threshold", "pixel", "text", None, scope="pair",
         help="Difference threshold: a number (in the metric's units), 'otsu' or 'percentile:P' "
              f"[default: {DEFAULT_THRESHOLD['lab']} for lab, {DEFAULT_THRESHOLD['absdiff']} for absdiff]."),
    _opt("metric", "pixel", "choice", _PIXEL.metric, choices=METRICS, scope="pair", show_default=True,
         help="Per-pixel distance: CIELAB deltaE or max-channel absolute difference (0-255)."),
    _opt("blur_sigma", "pixel", "float", _PIXEL.blur_sigma, low=0.0, high=MAX_BLUR_SIGMA, scope="pair", flag="blur",
         show_default=True, help="Gaussian blur sigma in pixels before differencing."),
    _opt("merge_gap", "pixel", "float", _PIXEL.merge_gap, low=0.0, high=1.0, high_open=True, scope="pair",
         show_default=True,
         help="Merge blobs closer than this fraction of the image diagonal (0: no merging)."),
    _opt("max_pixels", "limits", "int", DEFAULT_MAX_PIXELS, low=1, scope="pair", show_default=True,
         help="Refuse images with more pixels than this (decompression-bomb guard)."),
    _opt("tiled", "limits", "flag", False,
         help=f"Compare pairs above --max-pixels (up to {TILED_MAX_PIXELS / 1e6:g} MP) in strips with overlap, "
              "memory bounded by a strip (pixel detector, compared without registration; progress on stderr)."),
    _opt("ignore", "ignore", "boxes", (), metavar="X0,Y0,X1,Y1",
         help="Never report a change in this box: left-image pixels, or fractions of the size when all four are "
              "0-1 (repeatable; timestamps, ads, clocks). Regions at least "
              f"{IGNORED_SHARE:.0%} inside ignored pixels are dropped."),
    _opt("ignore_mask", "ignore", "file", None,
         help="Never report a change where this PNG is white (resized to the image)."),
)

BY_NAME: dict[str, Option] = {o.name: o for o in OPTIONS}
DEFAULTS: dict[str, Any] = {o.name: o.default for o in OPTIONS}
#: the options a request may set: per pair (web and served) and among the served graphs (served only)
PAIR_OPTIONS = tuple(o.name for o in OPTIONS if o.scope == "pair")
SERVED_OPTIONS = tuple(o.name for o in OPTIONS if o.scope in ("pair", "served"))
