"""Options shared by the commands that run the pipeline (run, eval), and the Pipeline they build."""

from __future__ import annotations

import functools
from typing import Any, Callable

import click

from ..imageio import DEFAULT_MAX_PIXELS
from ..pipeline import CAPTIONERS, DETECTORS, Pipeline
from ..pixel_detector import DEFAULT_THRESHOLD, METRICS, PixelConfig

_DEFAULTS = PixelConfig()


def detector_options(f: Callable) -> Callable:
    opts = [
        click.option("--detector", type=click.Choice(DETECTORS), default="pixel", show_default=True,
                     help="How changed regions are found."),
        click.option("--captioner", type=click.Choice(CAPTIONERS), default="none", show_default=True,
                     help="How regions are described ('none': measured facts only, no model)."),
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
                "blur_sigma", "merge_gap", "max_pixels")
        kwargs["pipeline"] = build_pipeline(**{k: kwargs.pop(k) for k in keys})
        return f(**kwargs)

    return wrapper


def build_pipeline(detector: str, captioner: str, align: bool, max_regions: int, min_area: int | None,
                   threshold: str | None, metric: str, blur_sigma: float, merge_gap: float, max_pixels: int) -> Pipeline:
    pixel = PixelConfig(metric=metric, blur_sigma=blur_sigma, threshold=threshold, min_area=min_area,
                        max_regions=max_regions, merge="box" if merge_gap > 0 else "none", merge_gap=merge_gap)
    return Pipeline(detector=detector, captioner=captioner, align=align, pixel=pixel, max_pixels=max_pixels)
