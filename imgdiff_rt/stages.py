"""The pipeline's stage graph, declared once: what each stage reads and writes, the settings it takes from the
configuration, when it runs, and which of the Triton repository's models execute it.

Two executors run this list and nothing else: ``Pipeline.process`` in-process (with its caches: the
left-image cache, distinct crops once, CLIP and generation batched) and, for the model detector's stages,
the ``imgdiff_detect`` ensemble, whose steps are generated from the ``served_by`` columns below (a stage with
no served model is a setting the ensemble refuses by name unless it is at its default). ``imgdiff_pipeline``
runs ``Pipeline`` itself, so the server executes the whole list.

Pure data: this module imports nothing from the package, so every floor may read it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    """One step of a pair. ``settings`` name configuration options (``config.options``) or, dotted, fields of
    the configuration tree's parts (``segment.conf``); ``timing`` is the result's ``timings_ms`` key the stage's
    time counts towards; ``served_by`` the repository's models that execute the stage in the ensemble."""

    name: str
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    settings: tuple[str, ...]
    runs: str  # when, in words (docs/architecture.md quotes the list)
    timing: str
    served_by: tuple[str, ...] = ()


S = Stage
#: the pair's stages, in order
PAIR_STAGES: tuple[Stage, ...] = (
    S("load", ("left_file", "right_file"), ("left", "right"), ("max_pixels", "tiled"), "always", "load"),
    S("match_size", ("left", "right"), ("right",), (), "the sizes differ", "load"),
    S("ignore", ("left",), ("ignore_mask",), ("ignore", "ignore_mask"), "ignore boxes or a mask are given", "load"),
    S("register", ("left", "right"), ("right", "valid", "alignment"), ("align",), "align is not none", "detect"),
    S("pixel_difference", ("left", "right", "valid", "alignment", "ignore_mask"), ("regions", "change_mask"),
      ("photometric", "max_regions", "min_area", "threshold", "metric", "blur_sigma", "merge_gap"),
      "detector pixel or hybrid", "detect"),
    S("model_detector", ("left", "right", "valid", "ignore_mask", "regions"), ("regions",),
      ("clip_threshold", "max_proposals", "pixel_gate", "pair_gate"), "detector segment or hybrid", "detect",
      ("imgdiff_detect",)),
    S("compare_unaligned", ("left", "right_unwarped", "regions", "alignment"), ("settings",), (),
      "nothing found after a registration that barely helped", "detect"),
    S("segmenter_filter", ("left", "right", "valid", "regions"), ("regions",),
      ("similarity_filter", "filter_threshold"), "filter segmenter", "detect"),
    S("caveats", ("settings", "regions"), ("warnings",), (), "always", "describe"),
    S("describe", ("left", "right", "change_mask", "regions"), ("descriptions",), (), "always", "describe"),
    S("caption", ("left", "right", "regions"), ("captions",), ("captioner", "beams", "max_new_tokens"),
      "captioner is not none", "caption"),
)

#: the model detector's stages (``model_detector`` above), in order; the ensemble's steps come from served_by
MODEL_STAGES: tuple[Stage, ...] = (
    S("segment", ("left", "right"), ("segments",), ("segment.conf", "segment.iou", "segment.imgsz"), "always",
      "segment", ("preprocess", "segmenter")),
    S("proposals", ("segments", "regions"), ("boxes", "box_scores"),
      ("segment.min_area_fraction", "segment.dedup_iou", "segment.max_candidates"),
      "always (hybrid adds the pixel detector's regions)", "clip", ("proposals",)),
    S("pixel_gate", ("left", "right", "boxes"), ("sent",), ("pixel_gate",),
      "pixel_gate is not none: boxes whose crops barely differ skip CLIP (similarity 1.0)", "clip",
      ("proposals",)),
    S("embed", ("left", "right", "boxes", "sent"), ("similarity",), (), "always", "clip", ("clip_image",)),
    S("pair_gate", ("left", "right"), ("pair_similarity",), ("pair_gate",),
      "pair_gate is set: a pair outside LO..HI keeps no region", "clip"),
    S("filter", ("boxes", "similarity", "box_scores"), ("regions",),
      ("clip_threshold", "max_proposals", "segment.dedup_iou"), "always", "clip", ("filter",)),
)

STAGES = PAIR_STAGES + MODEL_STAGES
BY_NAME: dict[str, Stage] = {s.name: s for s in STAGES}


def ensemble_models(stages: tuple[Stage, ...] = MODEL_STAGES) -> tuple[str, ...]:
    """The ensemble's steps: every stage's served models in stage order, each once."""
    return tuple(dict.fromkeys(m for s in stages for m in s.served_by))


def unserved_settings(stages: tuple[Stage, ...] = MODEL_STAGES) -> tuple[str, ...]:
    """The settings of stages no ensemble model executes: the ensemble honours them only at their defaults."""
    return tuple(dict.fromkeys(k for s in stages if not s.served_by for k in s.settings))
