"""Resumable batches of pairs on one machine (``engine="local"``) or a Ray cluster (``engine="ray"``), with one
record writer, one resume rule and one settings check (:mod:`.store`) shared by both."""

from imgdiff_rt.batch.jobs import EVAL_RESULTS_FILE, RESULTS_FILE, BatchSummary, EvalJob, RunJob, tally_records
from imgdiff_rt.batch.runner import ENGINES, BatchInterrupted, BatchOptions, run_batch

__all__ = ["ENGINES", "EVAL_RESULTS_FILE", "RESULTS_FILE", "BatchInterrupted", "BatchOptions", "BatchSummary",
           "EvalJob", "RunJob", "run_batch", "tally_records"]
