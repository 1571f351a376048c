"""The ``Pipeline`` a configuration describes, with the rules that need the bundle checked on the way.

    pipeline = pipeline_from_config(PipelineConfig.from_values({...}))

Every caller builds its pipeline here: the CLI, the web server, a batch's Ray workers (which receive the
configuration, not a pipeline) and the served ``imgdiff_pipeline`` model.
"""

from __future__ import annotations

from typing import Callable

from imgdiff_rt.config.tree import PipelineConfig
from imgdiff_rt.errors import UsageError
from imgdiff_rt.extras import require_options
from imgdiff_rt.models.bundle import default_bundle_dir
from imgdiff_rt.pipeline import Pipeline
from imgdiff_rt.runtime.device import session_settings
from imgdiff_rt.weights_report import choose_detector, require_precision


def pipeline_from_config(config: PipelineConfig, progress: Callable[[str], None] | None = None) -> Pipeline:
    """The pipeline ``config`` describes (not opened). A config without a detector gets the bundle's default
    (``weights_report.choose_detector``: hybrid with a pretrained CLIP, else pixel). ``progress``: where the
    tiled path reports its strips."""
    place = config.placement
    if place.backend == "triton":
        raise UsageError("backend triton: the served pipeline is a client of the server (triton.served)",
                         parameter="backend")
    bundle_dir = place.models if place.models is not None else default_bundle_dir()
    captioner, asked_filter = config.captioner, config.filter.similarity_filter
    extras = {"backend": place.backend, "captioner": captioner, "similarity_filter": asked_filter}
    # what the options ask for is checked before the bundle: installing comes before exporting
    require_options(extras, models_run=(config.detector or "pixel") != "pixel" or captioner != "none"
                    or asked_filter == "segmenter")
    detector = choose_detector(config.detector, bundle_dir).detector
    feature_filter = feature_filter_for(asked_filter, detector)
    needs_models = detector != "pixel" or captioner != "none" or feature_filter == "segmenter"
    require_options(extras, models_run=needs_models)  # the default detector on this bundle may run models
    require_precision(detector, bundle_dir, place.backend, place.precision)
    sessions, generation = session_settings(place.device, place.backend)
    caption = config.caption
    caption_options = {"beams": caption.beams, **generation,
                       **({"max_new_tokens": caption.max_new_tokens} if caption.max_new_tokens else {})}
    return Pipeline(detector=detector, captioner=captioner, align=config.align, pixel=config.pixel,
                    max_pixels=config.limits.max_pixels, models=bundle_dir if needs_models else place.models,
                    backend=place.backend, precision=place.precision, segment=config.segment,
                    threads=place.threads, caption_options=caption_options, session_options=sessions,
                    feature_filter=feature_filter, feature_threshold=config.filter.threshold, ignore=config.ignore,
                    tiled=config.limits.tiled, progress=progress if config.limits.tiled else None, config=config)


def feature_filter_for(similarity_filter: str | None, detector: str) -> str:
    """The asked filter -> the Pipeline's extra filter: segment/hybrid always run their CLIP filter, pixel has
    none."""
    if similarity_filter == "clip" and detector == "pixel":
        raise UsageError("--filter clip runs inside the segment/hybrid detectors: pass --detector hybrid")
    if similarity_filter == "none" and detector != "pixel":
        raise UsageError(f"--detector {detector} always runs its CLIP filter: pass --detector pixel --filter none")
    return "segmenter" if similarity_filter == "segmenter" else "none"


def for_pair_options(pipeline: Pipeline, overrides: dict) -> Pipeline:
    """``pipeline`` with a request's per-pair options (registration, the pixel detector, the pixel cap) on top of
    its configuration; the twin shares the opened model sessions."""
    if not overrides:
        return pipeline
    base = pipeline.config or PipelineConfig.from_values({})
    return pipeline.with_config(base.with_values(overrides))
