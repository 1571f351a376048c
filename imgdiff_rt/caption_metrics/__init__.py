"""Caption quality metrics (BLEU-1..4, METEOR, ROUGE-L, CIDEr-D) for difference captions."""

from __future__ import annotations

from imgdiff_rt.caption_metrics.metrics import (
    FIELDS,
    METRICS,
    CaptionReport,
    Predictions,
    evaluate_captions,
    load_predictions,
    load_references,
    normalise_id,
    score_many,
    spice_status,
    tokenize,
)

__all__ = [
    "FIELDS", "METRICS", "CaptionReport", "Predictions", "evaluate_captions", "load_predictions",
    "load_references", "normalise_id", "score_many", "spice_status", "tokenize",
]
