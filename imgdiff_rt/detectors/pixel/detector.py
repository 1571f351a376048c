"""The classical spot-the-difference detector: blur, per-pixel colour distance, threshold, morphology,
connected components, merging, scoring. Every step is a small function so each can be tested alone.

Units: with ``metric="lab"`` differences are CIELAB deltaE (1976), 0..~150, ~2.3 being a just-noticeable
difference; with ``metric="absdiff"`` they are the largest per-channel absolute difference, 0..255.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np

from imgdiff_rt.detectors.pixel.label_stats import label_boxes, label_sums
from imgdiff_rt.detectors.pixel.masks import encode as encode_mask
from imgdiff_rt.detectors.pixel.objects import split_objects_with_blobs
from imgdiff_rt.detectors.pixel.shading import explained_by_light
from imgdiff_rt.detectors.pixel.regions import SCORE_SCALE, grow_from_seeds, merge_boxes, region_score  # noqa: F401 (API)
from imgdiff_rt.detectors.pixel.photometric import compensate
from imgdiff_rt.detectors.pixel.threshold import Threshold, noise_threshold, threshold_value
from imgdiff_rt.errors import UsageError
from imgdiff_rt.limits import MAX_BLUR_SIGMA, MAX_KERNEL_PX, MAX_REGIONS, check_count, check_fraction, check_number
from imgdiff_rt.result import Region

METRICS = ("lab", "absdiff")
# Per-metric defaults (docs/pixel-detector.md has the measurements behind them).
DEFAULT_THRESHOLD = {"lab": "8", "absdiff": "15"}
DEFAULT_NOISE_FLOOR = {"lab": 8.0, "absdiff": 15.0}
# Default threshold only: a region grows from its clear pixels into those above the pair's own noise
# (grow_k robust sigmas over the median) and above this floor, about one just-noticeable difference.
DEFAULT_GROW_FLOOR = {"lab": 2.3, "absdiff": 5.0}
PHOTOMETRIC = ("none", "global", "local")
OBJECTS = ("split", "blobs")
MAX_TOLERANCE_PX = 8


@dataclass(frozen=True)
class PixelConfig:
    """Settings of the pixel detector. Defaults were chosen by measurement (docs/pixel-detector.md)."""

    metric: str = "lab"
    blur_sigma: float = 1.5
    threshold: str | None = None  # None: the metric's default
    noise_floor: float | None = None  # otsu/percentile never go below it; None: the metric's default
    open_px: int = 3
    close_px: int = 15
    min_area: int | None = None  # None: 0.02% of the image, at least 16 px
    merge: str = "box"  # "box": merge boxes closer than merge_gap (never two objects split from one blob)...
    merge_gap: float = 0.02  # fraction of the image diagonal
    # ...on resampled pairs only: there residue cuts a change into fragments; on a pair compared as it is, the
    # growth below joins a change's fragments, and box distance would only join separate changes
    merge_resampled_only: bool = True
    max_regions: int = 10
    tolerance_px: int = 2  # a pixel matches if its colour is found within this radius in the other image...
    unresampled_tolerance_px: int = 1  # ...or this one when the right image was not resampled (at most sub-pixel)
    photometric: str = "local"  # light compensation of the right image: none, global or local
    objects: str = "split"  # "split": watershed-split blobs into objects; "blobs": connected components
    noise_k: float = 10.0  # default threshold only: at least median + noise_k robust sigmas of the difference
    registered_min_area: float = 0.0005  # share of the image a region needs when the right image was resampled
    registered_min_mean: float = 0.0  # mean difference a region needs then (metric units)
    # A flow fit whose forward-backward check leaves a median end-point error of r px registers the pair only that
    # well: the tolerance grows to residual_tolerance_k * r px (up to MAX_TOLERANCE_PX); a region needs a mean
    # difference of residual_min_mean_per_px * r (metric units) and a share of the image of
    # residual_min_area_per_px * r, each up to its cap. A clean fit (r ~ 0.1 px) keeps small changes.
    residual_tolerance_k: float = 2.0
    residual_min_mean_per_px: float = 10.0
    residual_min_mean_cap: float = 15.0
    residual_min_area_per_px: float = 0.001
    residual_min_area_cap: float = 0.002
    # A flow registration differences the pair in both frames. With a residual under this (px) a pixel differs if
    # it does in either frame (a new object on a plain floor may be flowed around in one); from it on, only if it
    # does in both: what one imperfect warp smears is not smeared the same way by the other.
    both_views_residual_px: float = 1.0
    gate_resampled_only: bool = True  # the noise gate applies only to pairs whose right image was resampled
    # Default threshold, pairs not resampled: regions grow into pixels grow_k robust sigmas above the pair's noise
    # and above grow_floor (None: the metric's default; grow_k 0: off). A resampled pair's weak difference is
    # residue at edges, not noise, so it grows nothing there.
    grow_k: float = 5.0
    grow_floor: float | None = None
    # A region that a smooth lightness gain (Gaussian of shading_sigma of the image diagonal) fitted around it
    # explains to under shading_share of its mean difference is a moved light, not a change; pairs whose pixels
    # are mostly identical had no light change and skip the test (shading_sigma 0: off).
    shading_sigma: float = 0.01
    shading_share: float = 0.2

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise UsageError(f"metric {self.metric!r}: choose one of {', '.join(METRICS)}")
        if self.threshold is not None:
            Threshold.parse(self.threshold)
        check_number("blur_sigma", self.blur_sigma, 0.0, MAX_BLUR_SIGMA)
        if self.noise_floor is not None:
            check_number("noise_floor", self.noise_floor, 0.0)
        check_count("open_px", self.open_px, 0, MAX_KERNEL_PX)
        check_count("close_px", self.close_px, 0, MAX_KERNEL_PX)
        if self.min_area is not None:
            check_count("min_area", self.min_area, 1)
        check_count("max_regions", self.max_regions, 1, MAX_REGIONS)
        if self.merge not in ("box", "none"):
            raise UsageError(f"merge {self.merge!r}: choose box or none")
        check_fraction("merge_gap", self.merge_gap, hi_open=True)  # of the image diagonal
        check_count("tolerance_px", self.tolerance_px, 0, MAX_TOLERANCE_PX)
        check_count("unresampled_tolerance_px", self.unresampled_tolerance_px, 0, MAX_TOLERANCE_PX)
        check_number("residual_tolerance_k", self.residual_tolerance_k, 0.0, MAX_TOLERANCE_PX)
        check_number("residual_min_mean_per_px", self.residual_min_mean_per_px, 0.0)
        check_number("residual_min_mean_cap", self.residual_min_mean_cap, 0.0)
        check_fraction("residual_min_area_per_px", self.residual_min_area_per_px)
        check_fraction("residual_min_area_cap", self.residual_min_area_cap)
        check_number("both_views_residual_px", self.both_views_residual_px, 0.0)
        check_number("grow_k", self.grow_k, 0.0)
        check_fraction("shading_sigma", self.shading_sigma)
        check_fraction("shading_share", self.shading_share)
        if self.grow_floor is not None:
            check_number("grow_floor", self.grow_floor, 0.0)
        if self.photometric not in PHOTOMETRIC:
            raise UsageError(f"photometric {self.photometric!r}: choose one of {', '.join(PHOTOMETRIC)}")
        if self.objects not in OBJECTS:
            raise UsageError(f"objects {self.objects!r}: choose one of {', '.join(OBJECTS)}")

    def resolved_threshold(self) -> Threshold:
        return Threshold.parse(self.threshold if self.threshold is not None else DEFAULT_THRESHOLD[self.metric])

    def resolved_noise_floor(self) -> float:
        return self.noise_floor if self.noise_floor is not None else DEFAULT_NOISE_FLOOR[self.metric]

    def resolved_grow_floor(self) -> float:
        return self.grow_floor if self.grow_floor is not None else DEFAULT_GROW_FLOOR[self.metric]

    def resolved_min_area(self, width: int, height: int) -> int:
        if self.min_area is not None:
            return int(self.min_area)
        return max(16, int(round(0.0002 * width * height)))

    def to_settings(self) -> dict[str, Any]:
        return {**asdict(self), "threshold": str(self.resolved_threshold()),
                "noise_floor": self.resolved_noise_floor(), "grow_floor": self.resolved_grow_floor()}


@dataclass(frozen=True)
class PixelDetection:
    regions: tuple[Region, ...]
    diff: np.ndarray  # float32 HxW difference map, in the metric's units
    mask: np.ndarray  # bool HxW, the change mask of the regions reported (union of their masks)
    threshold_used: float
    min_area_used: int
    photometric: dict | None = None  # the light compensation applied to the right image, if any
    tolerance_used: int = 0  # px: the misregistration radius the difference forgave
    min_mean_used: float = 0.0  # the mean difference a region needed
    both_views_used: bool = False  # a pixel had to differ in both frames of the flow registration


def _tolerant_distance(a: np.ndarray, b: np.ndarray, radius: int, metric: str) -> np.ndarray:
    """How far each pixel of ``a`` lies outside the per-channel range of ``b`` within ``radius`` pixels: zero
    where a small misregistration explains the difference, the full difference where nothing nearby matches."""
    kernel = _disk(2 * radius + 1)
    outside = cv2.max(cv2.subtract(cv2.erode(b, kernel), a), 0.0)  # below the neighbourhood's range...
    outside += cv2.max(cv2.subtract(a, cv2.dilate(b, kernel)), 0.0)  # ...or above it (at most one is > 0)
    if metric == "lab":
        return np.sqrt(np.einsum("ijk,ijk->ij", outside, outside))
    return outside.max(axis=2) * 255.0


def difference_map(left: np.ndarray, right: np.ndarray, metric: str, blur_sigma: float,
                   tolerance_px: int = 0) -> np.ndarray:
    """Per-pixel colour distance between two HxWx3 uint8 RGB images, after a Gaussian blur.

    With ``tolerance_px`` > 0 the distance is symmetric and misregistration-tolerant: the larger of (left vs the
    right image's colour range around the pixel) and (right vs the left image's range), so an edge shifted by
    up to the radius is no difference while anything that appeared or vanished still is."""
    a = left.astype(np.float32) / 255.0
    b = right.astype(np.float32) / 255.0
    if blur_sigma > 0:
        a = cv2.GaussianBlur(a, (0, 0), blur_sigma)
        b = cv2.GaussianBlur(b, (0, 0), blur_sigma)
    if metric == "lab":
        a = cv2.cvtColor(a, cv2.COLOR_RGB2LAB)
        b = cv2.cvtColor(b, cv2.COLOR_RGB2LAB)
    if tolerance_px > 0:
        d = np.maximum(_tolerant_distance(a, b, tolerance_px, metric), _tolerant_distance(b, a, tolerance_px, metric))
        return d.astype(np.float32)
    if metric == "lab":
        return np.sqrt(((a - b) ** 2).sum(axis=2)).astype(np.float32)
    return (np.abs(a - b).max(axis=2) * 255.0).astype(np.float32)


def _disk(px: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (px, px))


def clean_mask(binary: np.ndarray, open_px: int, close_px: int) -> np.ndarray:
    """Opening removes speckle (sensor noise, JPEG blocks); closing joins the pieces of one changed object."""
    m = binary.astype(np.uint8)
    if open_px > 1:
        m = cv2.morphologyEx(m, cv2.MORPH_OPEN, _disk(open_px))
    if close_px > 1:
        m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, _disk(close_px))
    return m.astype(bool)


def _candidates(labels: np.ndarray, count: int, diff: np.ndarray, config: PixelConfig,
                min_area: int, min_mean: float = 0.0, blobs: np.ndarray | None = None,
                tolerance_px: int = 0, resampled: bool = True) -> list[tuple]:
    """(score, bbox, object ids) per region: objects of at least min_area, grouped when merging is on."""
    h, w = labels.shape
    ids = np.arange(1, count + 1)
    areas = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    keep = ids[areas >= min_area]
    if len(keep) == 0:
        return []
    boxes = label_boxes(labels, count)[keep - 1]
    parents = None
    if blobs is not None:  # which connected blob each object was split from
        parent_of = np.zeros(count + 1, np.int64)
        parent_of[labels.ravel()] = blobs.ravel()
        parents = parent_of[keep]
    # the tolerant difference shaves up to tolerance_px off each side of a fragment, widening its gaps by twice that
    gap = config.merge_gap * math.hypot(w, h) + 2 * tolerance_px
    group = merge_boxes(boxes, gap, parents, areas[keep - 1]) \
        if config.merge == "box" and (resampled or not config.merge_resampled_only) \
        else np.arange(len(keep))
    sums = label_sums(diff, labels, count)
    out = []
    for g in range(int(group.max()) + 1):
        members = keep[group == g]
        sel = boxes[group == g]
        bbox = (int(sel[:, 0].min()), int(sel[:, 1].min()), int(sel[:, 2].max()), int(sel[:, 3].max()))
        area = int(areas[members - 1].sum())
        mean = float(sums[members - 1].sum()) / area
        if mean < min_mean:
            continue
        out.append((region_score(mean, area, w * h, config.metric), bbox, members, area, mean))
    out.sort(key=lambda c: (-c[0], c[1]))
    return out[: config.max_regions]


def _compensated_difference(left: np.ndarray, right: np.ndarray, config: PixelConfig, valid: np.ndarray | None,
                            tolerance_px: int) -> tuple[np.ndarray, dict | None, np.ndarray]:
    """(difference, the light compensation's facts, the compensated right image)."""
    light = None
    if config.photometric != "none":
        right, light = compensate(left, right, valid, local=config.photometric == "local")
    diff = difference_map(left, right, config.metric, config.blur_sigma, tolerance_px)
    if valid is not None:
        diff = np.where(valid, diff, 0.0).astype(np.float32)
    return diff, light, right


@dataclass(frozen=True)
class _Gates:
    """What a pair's registration lets the detector forgive and demands of a region (see PixelConfig)."""

    resampled: bool  # the right image was warped onto the left one
    tolerance_px: int
    min_area: int
    min_mean: float
    both_views: bool = False  # a change must differ in both frames of a flow registration, not in either


def registration_gates(config: PixelConfig, alignment: Any, width: int, height: int) -> _Gates:
    """Pairs compared as they are: the configured tolerance and minimum area. Resampled pairs leave residue at
    edges and occlusions, so what the camera moved must be a sizeable, clear object to count; the worse the flow
    fit (its forward-backward residual), the more is forgiven and the more a region needs."""
    min_area = config.resolved_min_area(width, height)
    if getattr(alignment, "method", "none") == "none":
        return _Gates(False, config.unresampled_tolerance_px, min_area, 0.0)
    residual = float((getattr(alignment, "fit", None) or {}).get("fb_residual_px", 0.0))
    tolerance = max(config.tolerance_px, min(MAX_TOLERANCE_PX, math.ceil(config.residual_tolerance_k * residual)))
    share = max(config.registered_min_area, min(config.residual_min_area_cap,
                                                 config.residual_min_area_per_px * residual))
    min_mean = max(config.registered_min_mean, min(config.residual_min_mean_cap,
                                                   config.residual_min_mean_per_px * residual))
    return _Gates(True, tolerance, max(min_area, int(share * width * height)), min_mean,
                  residual >= config.both_views_residual_px)


def _object_labels(cleaned: np.ndarray, objects: str, close_px: int) -> tuple[int, np.ndarray, np.ndarray | None]:
    """(count, labels, the connected blob each object was split from, or None when not split)."""
    if objects == "split":
        return split_objects_with_blobs(cleaned, min_depth=close_px / 2.0)
    count, labels = cv2.connectedComponents(cleaned.astype(np.uint8), connectivity=8)
    return count - 1, labels, None


def change_mask(diff: np.ndarray, valid: np.ndarray | None, config: PixelConfig, resampled: bool,
                sharp: Any = None) -> tuple[np.ndarray, float]:
    """The cleaned change mask and the threshold its clear pixels passed. ``sharp()`` gives the difference
    without the blur: regions grow into it (a blurred strong edge would grow a halo that no pixel of the pair
    has), only where the pair was not resampled and only with the default threshold."""
    t = threshold_value(diff, config.resolved_threshold(), config.resolved_noise_floor(), valid)
    default = config.threshold is None
    if default and config.noise_k > 0 and (resampled or not config.gate_resampled_only):
        # the gate is for what resampling leaves (interpolation, occlusion, parallax residue); on a pair that was
        # not resampled the broad difference may be the change itself (a satellite tile full of new buildings)
        t = max(t, noise_threshold(diff, valid, config.noise_k))
    binary = diff > t
    if default and config.grow_k > 0 and not resampled and sharp is not None:
        fine = sharp()
        weak = max(config.resolved_grow_floor(), noise_threshold(fine, valid, config.grow_k))
        if weak < t:
            binary = grow_from_seeds(fine > weak, binary) | binary
    return clean_mask(binary, config.open_px, config.close_px), t


def detect_pixels(left: np.ndarray, right: np.ndarray, config: PixelConfig,
                  valid: np.ndarray | None = None, alignment: Any = None,
                  ignore: np.ndarray | None = None) -> PixelDetection:
    """Run the detector on two same-size RGB uint8 images. ``valid`` limits the comparison (alignment overlap);
    an ``alignment`` from flow registration adds the difference seen from the right image's frame; ``ignore``
    pixels take part in nothing (light fit, threshold, regions: the morphology never grows into them)."""
    if left.shape != right.shape:
        raise UsageError(f"images must have the same shape, got {left.shape} and {right.shape}")
    if ignore is not None:
        valid = ~ignore if valid is None else valid & ~ignore
    h, w = left.shape[:2]
    gates = registration_gates(config, alignment, w, h)
    diff, light, lit = _compensated_difference(left, right, config, valid, gates.tolerance_px)

    def sharp() -> np.ndarray:
        fine = difference_map(left, lit, config.metric, 0.0, gates.tolerance_px)
        return fine if valid is None else np.where(valid, fine, 0.0)

    reverse = getattr(alignment, "reverse", None)
    if reverse is not None:
        seen_from_right, _, _ = _compensated_difference(reverse.right, reverse.left_in_right, config, reverse.valid,
                                                     gates.tolerance_px)
        # a poor fit: only what differs seen from both frames counts (residue of one warp is not in the other)
        diff = (np.minimum if gates.both_views else np.maximum)(diff, reverse.to_left(seen_from_right))
        if valid is not None:
            diff = np.where(valid, diff, 0.0).astype(np.float32)
    cleaned, t = change_mask(diff, valid, config, gates.resampled, sharp)
    if ignore is not None:
        cleaned &= ~ignore
    count, labels, blobs = _object_labels(cleaned, config.objects, config.close_px)
    candidates = _candidates(labels, count, diff, config, gates.min_area, gates.min_mean, blobs,
                             gates.tolerance_px, gates.resampled) if count else []
    mask = np.zeros((h, w), bool)
    regions: list[Region] = []
    light_changed = config.shading_sigma > 0 and (light is None or "note" not in light) and \
        config.photometric != "none"
    sigma = config.shading_sigma * math.hypot(w, h)
    for score, bbox, members, area, mean in candidates:
        x0, y0, x1, y1 = bbox
        own = np.zeros((h, w), bool)
        own[y0:y1, x0:x1] = np.isin(labels[y0:y1, x0:x1], members)
        if light_changed and explained_by_light(left, lit, own, bbox, sigma, lambda a, b: difference_map(
                a, b, config.metric, config.blur_sigma, gates.tolerance_px)) < config.shading_share * mean:
            continue
        k = len(regions)
        mask |= own
        regions.append(Region(id=k + 1, bbox=bbox, score=score, area=area, source="pixel", mean_diff=mean,
                              peak_diff=float(diff[own].max()), mask=encode_mask(own)))
    return PixelDetection(tuple(regions), diff, mask, t, gates.min_area, light, gates.tolerance_px, gates.min_mean,
                          gates.both_views and reverse is not None)
