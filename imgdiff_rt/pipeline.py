"""The Python API the CLI is a thin layer over: ``Pipeline(...)(left, right) -> Result``.

``process`` runs the stage graph declared in ``imgdiff_rt/stages.py`` (load, match size, ignore, register, pixel
difference, model detector, ..., describe, caption): each stage reads and writes one :class:`PairRun`, the
result so far and the pixel arrays the stages share (:class:`PairImages`).
"""

from __future__ import annotations

import copy
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from imgdiff_rt.detectors.registration import DEFAULT_ALIGN, Alignment, align_pair, normalise_method
from imgdiff_rt.errors import UsageError
from imgdiff_rt.detectors.pixel.windowed import detect_windowed
from imgdiff_rt.detectors.pixel.tiles import TILED_MAX_PIXELS, detect_large
from imgdiff_rt.detectors.ignore import IgnoreSpec, drop_ignored
from imgdiff_rt.imageio import DEFAULT_MAX_PIXELS, ImageSource, read_pair, right_at_left_size
from imgdiff_rt.limits import MAX_THREADS, check_count
from imgdiff_rt.detectors.pixel.detector import PixelConfig, detect_pixels
from imgdiff_rt.result import Result, default_pair_id, source_name
from imgdiff_rt.stages import PAIR_STAGES
from imgdiff_rt.models.bundle import require_bundle
from imgdiff_rt.captioners.stage import CAPTIONERS
from imgdiff_rt.detectors.model.detector import ModelDetector, SegmentConfig
from imgdiff_rt.detectors.model.object_names import ObjectNamer, namer_for
from imgdiff_rt.detectors.model import segmenter_features as SF
from imgdiff_rt.models.auto_precision import AUTO as AUTO_PRECISION
# which detectors need a bundle
from imgdiff_rt.weights_report import MODEL_DETECTORS, graph_precisions, weights_block
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


@dataclass
class PairRun:
    """One pair on its way through the stage graph: what it was asked for, and the result and pixels so far."""

    left: ImageSource
    right: ImageSource
    id: str | None
    ignore: IgnoreSpec
    result: Result | None = None
    images: PairImages | None = None


def _with_timings(result: Result, spent: dict[str, float]) -> Result:
    for group, ms in spent.items():
        result = result.with_timing(group, ms)
    return result


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
        """Run the declared stage graph (``stages.PAIR_STAGES``) on one pair: each stage that applies, in order;
        each timing group's milliseconds recorded once the group is done."""
        t0 = time.perf_counter()
        run = PairRun(left, right, id, self.ignore.merged(ignore))
        spent: dict[str, float] = {}
        for stage in PAIR_STAGES:
            if run.result is not None and spent and stage.timing not in spent:
                run.result = _with_timings(run.result, spent)
            if not self.applies(stage.name, run):
                continue
            t = time.perf_counter()
            getattr(self, f"stage_{stage.name}")(run)
            spent[stage.timing] = spent.get(stage.timing, 0.0) + (time.perf_counter() - t) * 1e3
        result = _with_timings(run.result, spent).with_timing("total", (time.perf_counter() - t0) * 1e3)
        return Processed(result, run.images)

    def applies(self, stage: str, run: "PairRun") -> bool:
        """Whether ``stage`` runs on this pair (the ``runs`` column of ``stages.PAIR_STAGES``, as code)."""
        if stage == "register":
            return self.align != "none"
        if stage == "pixel_difference":
            return self.detector in ("pixel", "hybrid")
        if stage == "model_detector":
            return self.detector in MODEL_DETECTORS
        if stage == "compare_unaligned":
            return not run.result.regions and fit_barely_helped(run.result)
        if stage == "segmenter_filter":
            return self._segmenter_onnx is not None
        if stage == "caption":
            return self.captioner != "none"
        return True  # load, match_size, ignore, caveats, describe: each decides inside (a no-op when moot)

    # --- stages: each reads and writes the pair's run ------------------------------------------------
    def stage_load(self, run: "PairRun") -> None:
        cap = max(self.max_pixels, TILED_MAX_PIXELS) if self.tiled else self.max_pixels
        left_rgb, right_rgb = read_pair(run.left, run.right, cap)
        run.result = Result(id=run.id or default_pair_id(run.left, run.right), left=source_name(run.left),
                            right=source_name(run.right), size=(left_rgb.shape[1], left_rgb.shape[0]),
                            settings=self.settings(), weights=self.weights())
        run.images = PairImages(left=left_rgb, right_unwarped=right_rgb, right=right_rgb)

    def stage_match_size(self, run: "PairRun") -> None:
        """Different sizes: the right image is resized to the left's, and the settings say so."""
        rh, rw = run.images.right.shape[:2]
        resized = right_at_left_size(run.images.left, run.images.right)
        if resized is not run.images.right:
            run.result = run.result.with_settings(right_resized_from=[rw, rh])
            run.images = replace(run.images, right=resized, right_unwarped=resized)

    def stage_ignore(self, run: "PairRun") -> None:
        """The pair's ignored pixels at the left image's size; the settings record them."""
        h, w = run.images.left.shape[:2]
        ignored = run.ignore.resolve(w, h)
        if ignored is not None:
            run.result = run.result.with_settings(ignore=run.ignore.facts(ignored))
            run.images = replace(run.images, ignore=ignored)

    def stage_register(self, run: "PairRun") -> None:
        run.result, run.images = self.register(run.result, run.images)

    def stage_pixel_difference(self, run: "PairRun") -> None:
        run.result, run.images = self.detect_pixel_regions(run.result, run.images)

    def stage_model_detector(self, run: "PairRun") -> None:
        run.result, run.images = self.detect_models(run.result, run.images, run.result.regions)

    def stage_compare_unaligned(self, run: "PairRun") -> None:
        run.result = self.compare_unaligned(run.result, run.images)

    def stage_segmenter_filter(self, run: "PairRun") -> None:
        run.result = self.filter_features(run.result, run.images)

    def stage_caveats(self, run: "PairRun") -> None:
        run.result = with_caveats(run.result)

    def stage_describe(self, run: "PairRun") -> None:
        run.result = self.describe(run.result, run.images)

    def stage_caption(self, run: "PairRun") -> None:
        # after describe: the captioner replaces the measured descriptions with its captions
        from imgdiff_rt.captioners.stage import caption_regions

        run.result = caption_regions(run.result, run.images, self.open()._captioner)

    # --- what the stages call ------------------------------------------------------------------------
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
        """The detector's stages (pixel_difference, model_detector) as the graph runs them."""
        if self.detector in ("pixel", "hybrid"):
            result, images = self.detect_pixel_regions(result, images)
        if self.detector in MODEL_DETECTORS:
            result, images = self.detect_models(result, images, result.regions if self.detector == "hybrid"
                                                else ())
        return result, images

    def detect_pixel_regions(self, result: Result, images: PairImages) -> tuple[Result, PairImages]:
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
        return result, replace(images, change_mask=found.mask)

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
