"""The Python API the CLI is a thin layer over: ``Pipeline(...)(left, right) -> Result``.

Stages (load, register, detect, describe) each take a Result and return a new one; the pixel arrays they share
travel beside it in a :class:`PairImages`.
"""

from __future__ import annotations

import copy
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from imgdiff_rt.detectors.registration import DEFAULT_ALIGN, Alignment, align_pair, normalise_method
from imgdiff_rt.errors import UsageError
from imgdiff_rt.detectors.pixel.windowed import detect_windowed
from imgdiff_rt.detectors.pixel.tiles import TILED_MAX_PIXELS, detect_large
from imgdiff_rt.detectors.ignore import IgnoreSpec, drop_ignored
from imgdiff_rt.imageio import DEFAULT_MAX_PIXELS, ImageSource, read_image, read_pair
from imgdiff_rt.limits import MAX_THREADS, check_count
from imgdiff_rt.detectors.pixel.detector import PixelConfig, detect_pixels
from imgdiff_rt.result import Result
from imgdiff_rt.models.bundle import require_bundle
from imgdiff_rt.captioners.stage import CAPTIONERS
from imgdiff_rt.detectors.model.detector import ModelDetector, SegmentConfig
from imgdiff_rt.detectors.model.object_names import ObjectNamer, namer_for
from imgdiff_rt.detectors.model import segmenter_features as SF
# which detectors need a bundle, and the default one a bundle with a pretrained CLIP gets
from imgdiff_rt.models.auto_precision import AUTO as AUTO_PRECISION
from imgdiff_rt.weights_report import DEFAULT_MODEL_DETECTOR, MODEL_DETECTORS, graph_precisions, weights_block
from imgdiff_rt.words.caveats import fit_barely_helped, with_caveats
from imgdiff_rt.words.describe import describe_regions

from imgdiff_rt.config.options import DETECTORS  # the one list, named here for callers


@dataclass
class PairImages:
    """Pixels shared by the stages of one pair. ``right`` is in the left image's frame once registered."""

    left: np.ndarray
    right_unwarped: np.ndarray  # at the left image's size, before registration (what the user sees)
    right: np.ndarray
    valid: np.ndarray | None = None  # where the registered right image has real content
    alignment: Alignment | None = None
    change_mask: np.ndarray | None = None
    ignore: np.ndarray | None = None  # pixels whose changes never count (left frame)


@dataclass
class Processed:
    result: Result
    images: PairImages


def source_name(source: ImageSource) -> str | None:
    """The path a result records for an image (None for arrays and images in memory)."""
    return str(source) if isinstance(source, (str, os.PathLike)) else None


def default_pair_id(left: ImageSource, right: ImageSource) -> str:
    """A pair's id from its two paths: the shared stem, else the shared folder, else both stems."""
    if isinstance(left, (str, os.PathLike)) and isinstance(right, (str, os.PathLike)):
        a, b = Path(left), Path(right)
        if a.stem == b.stem:
            return a.stem
        if a.parent == b.parent and a.parent.name:
            return a.parent.name  # e.g. pair1/left.png + pair1/right.png -> "pair1"
        return f"{a.stem}__{b.stem}"
    return "pair"


def right_at_left_size(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """``right`` resized to ``left``'s size (``right`` itself when they match): area when shrinking, else linear."""
    h, w = left.shape[:2]
    rh, rw = right.shape[:2]
    if (rh, rw) == (h, w):
        return right
    return cv2.resize(right, (w, h), interpolation=cv2.INTER_AREA if rw * rh > w * h else cv2.INTER_LINEAR)


class Pipeline:
    """Find and describe the differences between two images.

    >>> result = Pipeline(align="auto")("left.jpg", "right.jpg")  # doctest: +SKIP
    >>> [r.bbox for r in result.regions]                          # doctest: +SKIP
    """

    def __init__(self, detector: str = "pixel", captioner: str = "none", align: str | bool = DEFAULT_ALIGN,
                 pixel: PixelConfig | None = None, max_pixels: int = DEFAULT_MAX_PIXELS, *,
                 models: str | os.PathLike | None = None, backend: str = "onnx", precision: str = AUTO_PRECISION,
                 segment: SegmentConfig | None = None, threads: int | None = None,
                 caption_options: dict | None = None, session_options: dict | None = None,
                 feature_filter: str = "none", feature_threshold: float = SF.DEFAULT_FEATURE_THRESHOLD,
                 ignore: IgnoreSpec | None = None, tiled: bool = False,
                 progress: Callable[[str], None] | None = None, config=None) -> None:
        if detector not in DETECTORS:
            raise UsageError(f"detector {detector!r} is not available; choose one of {', '.join(DETECTORS)}",
                             parameter="detector")
        if captioner not in CAPTIONERS:
            raise UsageError(f"captioner {captioner!r} is not available; choose one of {', '.join(CAPTIONERS)}",
                             parameter="captioner")
        if max_pixels < 1:
            raise UsageError("max_pixels must be positive", parameter="max_pixels")
        if threads is not None:
            check_count("threads", threads, 1, MAX_THREADS)
        needs_models = detector in MODEL_DETECTORS or captioner != "none"
        if needs_models:
            users = [f"detector {detector!r}"] * (detector in MODEL_DETECTORS) + \
                [f"captioner {captioner!r}"] * (captioner != "none")
            require_bundle(models, " and ".join(users))
        self.detector = detector
        self.captioner = captioner
        self.config = config  # the PipelineConfig this pipeline was built from (config.build), when it was
        # the segmenter similarity filter runs the registered real segmenter's neck features (segmenter_features)
        self.feature_filter, self.feature_threshold = feature_filter, feature_threshold
        self._segmenter_onnx = SF.registered_segmenter_path(models) if feature_filter == "segmenter" else None
        self._features: SF.SegmenterFeatures | None = None
        self.align = normalise_method(align)  # none, homography, flow or auto (True: homography)
        self.pixel = pixel or PixelConfig()
        self.max_pixels = max_pixels
        # pairs above max_pixels: refused, or with ``tiled`` compared in strips (detectors/pixel/tiles.py) up to TILED_MAX_PIXELS
        if tiled and detector != "pixel":
            raise UsageError("tiled runs the pixel detector only (the models see a pair at their own size)",
                             parameter="tiled")
        self.tiled, self.progress = tiled, progress
        self.ignore = ignore or IgnoreSpec()  # every pair's; a pair may add its own (process's ``ignore``)
        self.models = Path(models).expanduser() if models is not None else None
        self.backend, self.precision, self.threads = backend, precision, threads
        self.segment = segment or SegmentConfig()
        self.caption_options = dict(caption_options or {})
        self.session_options = dict(session_options or {})  # e.g. url/protocol for the triton backend
        # sessions open lazily, once, and are reused for every pair this pipeline processes
        self._detector: ModelDetector | None = None
        self._captioner = None
        self._captioner_ready = False
        self._namer: ObjectNamer | None = None
        self._namer_ready = False

    def with_config(self, config) -> "Pipeline":
        """A twin with ``config``'s per-pair settings (registration, the pixel detector, the pixel cap) that shares
        this pipeline's opened sessions: what a request may change without opening a model."""
        twin = copy.copy(self)
        twin.config, twin.pixel = config, config.pixel
        twin.align, twin.max_pixels = normalise_method(config.align), config.limits.max_pixels
        return twin

    @classmethod
    def from_bundle(cls, path: str | os.PathLike, backend: str = "onnx", detector: str = "segment",
                    captioner: str = "none", **kwargs) -> "Pipeline":
        """A pipeline on a model bundle; sessions are opened now (errors surface here, not mid-batch)."""
        pipeline = cls(detector=detector, captioner=captioner, models=path, backend=backend, **kwargs)
        pipeline.open()
        return pipeline

    def open(self) -> "Pipeline":
        if self.detector in MODEL_DETECTORS and self._detector is None:
            self._detector = ModelDetector(self.models, self.backend, self.precision, self.segment,
                                         **self._session_opts())
        if self.captioner != "none" and not self._captioner_ready:
            from imgdiff_rt.captioners.stage import build_captioner

            self._captioner = build_captioner(self.captioner, self.models, backend=self.backend,
                                              precision=self.precision, **self.caption_options,
                                              **self._session_opts())
            self._captioner_ready = True
        return self

    def _session_opts(self) -> dict:
        return {**({"threads": self.threads} if self.threads else {}), **self.session_options}

    def close(self) -> None:
        if self._detector is not None:
            self._detector.close()
            self._detector = None
        if self._captioner is not None:
            self._captioner.close()
            self._captioner, self._captioner_ready = None, False
        if self._namer is not None:
            self._namer.close()
        self._namer, self._namer_ready = None, False

    def __enter__(self) -> "Pipeline":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    def weights(self) -> dict:
        """Which weights the graphs this pipeline runs carry (the result's ``weights`` block), read once."""
        if getattr(self, "_weights", None) is None:
            self._weights = weights_block(self.models, self.detector, self.captioner, self.feature_filter,
                                          self.graph_precisions())
        return self._weights

    def graph_precisions(self) -> dict[str, str]:
        """{graph: the precision it runs in} (``precision`` auto resolved per graph from the bundle's checks)."""
        if getattr(self, "_precisions", None) is None:
            self._precisions = graph_precisions(self.models, self.detector, self.captioner, self.feature_filter,
                                                self.backend, self.precision, self.session_options)
        return self._precisions

    def settings(self) -> dict:
        out = {"detector": self.detector, "captioner": self.captioner, "align": self.align,
               "max_pixels": self.max_pixels, "pixel": self.pixel.to_settings()}
        if self.ignore:
            out["ignore"] = self.ignore.to_settings()
        if self.tiled:
            out["tiled"] = True
        if self.detector in MODEL_DETECTORS or self.captioner != "none":
            out["models"] = {"path": str(self.models), "backend": self.backend, "precision": self.precision,
                             "precisions": self.graph_precisions()}
        if self.detector in MODEL_DETECTORS:
            out["segment"] = self.segment.to_settings()
        if self._segmenter_onnx is not None:
            out["filter"] = {"name": "segmenter", "onnx": str(self._segmenter_onnx),
                             "threshold": self.feature_threshold}
        return out

    def __call__(self, left: ImageSource, right: ImageSource, id: str | None = None,
                 ignore: IgnoreSpec | None = None) -> Result:
        return self.process(left, right, id, ignore).result

    def process(self, left: ImageSource, right: ImageSource, id: str | None = None,
                ignore: IgnoreSpec | None = None) -> Processed:
        t0 = time.perf_counter()
        cap = max(self.max_pixels, TILED_MAX_PIXELS) if self.tiled else self.max_pixels
        left_rgb, right_rgb = read_pair(left, right, cap)
        result = Result(id=id or default_pair_id(left, right), left=source_name(left),
                        right=source_name(right), size=(left_rgb.shape[1], left_rgb.shape[0]),
                        settings=self.settings(),
                        weights=self.weights())
        images = PairImages(left=left_rgb, right_unwarped=right_rgb, right=right_rgb)
        result = result.with_timing("load", (time.perf_counter() - t0) * 1e3)
        result, images = self.match_size(result, images)
        result, images = self.mark_ignored(result, images, self.ignore.merged(ignore))
        t1 = time.perf_counter()
        if self.align != "none":
            result, images = self.register(result, images)
        result, images = self.detect(result, images)
        if not result.regions and fit_barely_helped(result):
            result = self.compare_unaligned(result, images)
        if self._segmenter_onnx is not None:
            result = self.filter_features(result, images)
        result = result.with_timing("detect", (time.perf_counter() - t1) * 1e3)
        t2 = time.perf_counter()
        result = self.describe(with_caveats(result), images)
        result = result.with_timing("describe", (time.perf_counter() - t2) * 1e3)
        if self.captioner != "none":
            # after describe: the captioner replaces the measured descriptions with its captions
            from imgdiff_rt.captioners.stage import caption_regions

            result = caption_regions(result, images, self.open()._captioner)
        result = result.with_timing("total", (time.perf_counter() - t0) * 1e3)
        return Processed(result, images)

    # --- stages -------------------------------------------------------------------------------------
    @staticmethod
    def match_size(result: Result, images: PairImages) -> tuple[Result, PairImages]:
        """Different sizes: the right image is resized to the left's, and the settings say so."""
        rh, rw = images.right.shape[:2]
        resized = right_at_left_size(images.left, images.right)
        if resized is images.right:
            return result, images
        return (result.with_settings(right_resized_from=[rw, rh]),
                replace(images, right=resized, right_unwarped=resized))

    @staticmethod
    def mark_ignored(result: Result, images: PairImages, spec: IgnoreSpec) -> tuple[Result, PairImages]:
        """The pair's ignored pixels at the left image's size; the settings record them."""
        h, w = images.left.shape[:2]
        ignored = spec.resolve(w, h)
        if ignored is None:
            return result, images
        return result.with_settings(ignore=spec.facts(ignored)), replace(images, ignore=ignored)

    def is_large(self, images: PairImages) -> bool:
        """Above the pixel cap: only a tiled pipeline reads such a pair, and compares it in strips."""
        return images.left.shape[0] * images.left.shape[1] > self.max_pixels

    def register(self, result: Result, images: PairImages) -> tuple[Result, PairImages]:
        if self.is_large(images):  # registration works on the whole image: the tiled path compares as it is
            return result.with_settings(alignment={"method": "none", "requested": self.align,
                                                   "note": "tiled: the pair is compared as it is"}), images
        aligned = align_pair(images.left, images.right, self.align)
        return (result.with_settings(alignment=aligned.alignment.to_settings()),
                replace(images, right=aligned.right, valid=aligned.valid, alignment=aligned.alignment))

    def compare_unaligned(self, result: Result, images: PairImages) -> Result:
        """A poor registration that found nothing may have bent the image around the changes: the pair as it
        is gets compared too, and the result records what that finds (its warning says so). The aligned answer
        stays: on the sets measured, reporting the unaligned regions instead scored worse (docs/descriptions.md)."""
        plain = replace(images, right=images.right_unwarped, valid=None, alignment=None, change_mask=None)
        found, _ = self.detect(result, plain)
        share = sum(r.area for r in found.regions) / float(result.size[0] * result.size[1])
        return result.with_settings(compared_unaligned={"regions": len(found.regions), "share": round(share, 4)})

    def detect(self, result: Result, images: PairImages) -> tuple[Result, PairImages]:
        if self.detector == "segment":
            return self.detect_models(result, images, ())
        # a pair compared as it is, mostly identical pixels: the same regions from windows around what differs
        found = detect_windowed(images.left, images.right, self.pixel, images.alignment, images.ignore) \
            if images.valid is None else None
        if found is None and self.is_large(images):
            found = detect_large(images.left, images.right, self.pixel, images.ignore, self.progress)
        if found is None:
            found = detect_pixels(images.left, images.right, self.pixel, images.valid, images.alignment,
                                  images.ignore)
        result = result.replace(regions=found.regions).with_settings(
            threshold_used=round(found.threshold_used, 4), min_area_used=found.min_area_used,
            tolerance_px_used=found.tolerance_used, min_mean_used=round(found.min_mean_used, 3),
            both_views_used=found.both_views_used,
            **({"photometric": found.photometric} if found.photometric else {}))
        images = replace(images, change_mask=found.mask)
        if self.detector == "hybrid":
            return self.detect_models(result, images, found.regions)
        return result, images

    def detect_models(self, result: Result, images: PairImages,
                      pixel_regions: tuple) -> tuple[Result, PairImages]:
        """Img-Diff's segment + CLIP filter (``pixel_regions``: the pixel detector's, filtered and merged too,
        for hybrid)."""
        detector = self.open()._detector
        right = images.right
        if images.valid is not None:  # outside the registered overlap the right image has no content
            right = np.where(images.valid[..., None], right, images.left)
        if images.ignore is not None:  # the models see no change there: the left image's pixels on both sides
            right = np.where(images.ignore[..., None], images.left, right)
        regions, report = detector.detect(images.left, right, pixel_regions)
        regions = drop_ignored(regions, images.ignore)
        for stage, ms in report.timings_ms.items():
            result = result.with_timing(stage, ms)
        result = result.replace(regions=tuple(regions)).with_settings(model_detector=report.facts)
        mask = images.change_mask if images.change_mask is not None else np.zeros(images.left.shape[:2], bool)
        return result, replace(images, change_mask=mask)

    def filter_features(self, result: Result, images: PairImages) -> Result:
        """Drop the regions whose segmenter features agree between left and registered right."""
        if self._features is None:
            self._features = SF.SegmenterFeatures(self._segmenter_onnx, self.threads)
        right = images.right if images.valid is None else np.where(images.valid[..., None], images.right,
                                                                   images.left)
        kept, facts = SF.apply_filter(result.regions, self._features, images.left, right,
                                      self.feature_threshold)
        return result.replace(regions=tuple(kept)).with_settings(segmenter_filter=facts)

    def describe(self, result: Result, images: PairImages) -> Result:
        mask = images.change_mask if images.change_mask is not None else np.zeros(images.left.shape[:2], bool)
        namer = self.object_namer()
        if namer is not None:
            result = result.with_settings(object_names=namer.settings())
        return describe_regions(result, images.left, images.right, mask, namer.name if namer else None)

    def object_namer(self) -> ObjectNamer | None:
        """The bundle's registered real segmenter, opened once, when it can name what changed (else None)."""
        if not self._namer_ready:
            self._namer, self._namer_ready = namer_for(self.models, self.threads), True
        return self._namer
