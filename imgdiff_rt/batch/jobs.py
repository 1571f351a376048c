"""What a batch does with one pair, the same on every engine: `run` (result JSON + pictures) or `eval` (score the
detector against the pair's truth). :func:`process_item` turns every failure of one pair into its record."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from imgdiff_rt.errors import ImgDiffError, OutputError
from imgdiff_rt.evaluation.evaluate import Tally, load_truth, load_truth_changes, match, pixel_record
from imgdiff_rt.detectors.ignore import IgnoreSpec
from imgdiff_rt.writers.pair import write_pair_images
from imgdiff_rt.pairs import PairItem
from imgdiff_rt.pipeline import Pipeline
from imgdiff_rt.result import SCHEMA
from imgdiff_rt.words.scoring import WORD_FIELDS, WordsTally, has_words, word_checks
from imgdiff_rt.batch.store import record_status

RESULTS_FILE = "results.jsonl"
EVAL_RESULTS_FILE = "eval.jsonl"
NO_TRUTH = "no truth given for this pair"


def error_record(item: PairItem, message: str) -> dict:
    return {"schema": SCHEMA, "id": item.id, "left": None if item.left is None else str(item.left),
            "right": None if item.right is None else str(item.right), "error": message}


def process_pair(pipeline: Pipeline, item: PairItem):
    """The pipeline over one pair, with the pair's own ignore boxes on top of the run's."""
    if not item.ignore:
        return pipeline.process(item.left, item.right, id=item.id)
    return pipeline.process(item.left, item.right, id=item.id, ignore=IgnoreSpec(item.ignore))


class RunJob:
    """`run --pairs`: the pair's pictures in ``out_dir`` and its result (or Img-Diff records) as the record."""

    results_name = RESULTS_FILE
    records_subdir = ""  # <stem>.json beside <stem>.png

    def __init__(self, fmt: str = "result") -> None:
        self.fmt = fmt

    def settings(self, pipeline: Pipeline) -> dict:
        return {"job": "run", "format": self.fmt, "pipeline": pipeline.settings()}

    def process(self, pipeline: Pipeline, item: PairItem, out_dir: Path | None) -> dict | list:
        processed = process_pair(pipeline, item)
        if out_dir is None:
            raise OutputError("a run batch needs an output folder")
        return write_pair_images(processed, out_dir, self.fmt, item.file_stem)


class EvalJob:
    """`eval`: the detector's boxes matched against the pair's truth; the record keeps both box lists so that a
    resumed batch can tally finished pairs without running them again."""

    results_name = EVAL_RESULTS_FILE
    records_subdir = "pairs"  # apart from eval_summary.json, whatever the pair ids

    def settings(self, pipeline: Pipeline) -> dict:
        return {"job": "eval", "pipeline": pipeline.settings()}

    def process(self, pipeline: Pipeline, item: PairItem, out_dir: Path | None) -> dict:
        if not item.has_truth and not item.expects_change:
            return {"id": item.id, "unscored": item.unscored or NO_TRUTH}
        done = process_pair(pipeline, item)
        result = done.result
        if not item.has_truth:  # one change known to be there, not where: found or not is all that scores
            return {"id": item.id, "unscored": item.unscored or NO_TRUTH, "expects_change": True,
                    "found": bool(result.regions), "predictions": len(result.regions),
                    "warnings": list(result.warnings), "ms": result.timings_ms["total"]}
        pixels = pixel_record(done.images.change_mask, item.truth, result.size) if item.truth_boxes is None \
            else None  # mask truth: pixel-level counts too
        changes = _truth_changes(item, result.size)
        truths = [tuple(c["bbox"]) for c in changes]
        preds = [tuple(r.bbox) for r in result.regions]
        matches = match(preds, truths)
        words = _word_records(result.regions, changes, matches)
        return {"id": item.id, "predictions": len(preds), "truths": len(truths), "matched": len(matches),
                "matches": [{"region": list(preds[i]), "truth": list(truths[j]), "iou": round(v, 4)}
                            for i, j, v in matches],
                "pred_boxes": [list(b) for b in preds], "truth_boxes": [list(b) for b in truths],
                "warnings": list(result.warnings),
                "ms": result.timings_ms["total"], **({"pixels": pixels} if pixels else {}),
                **({"words": words} if words else {})}


def _truth_changes(item: PairItem, size: tuple[int, int]) -> list[dict]:
    if item.truth_boxes is not None:
        return [{"bbox": list(b)} for b in item.truth_boxes]
    if item.truth is not None and item.truth.suffix.lower() == ".json":
        return load_truth_changes(item.truth)
    return [{"bbox": list(b)} for b in load_truth(item.truth, size)]


def _word_records(regions, changes: list[dict], matches: list) -> list[dict]:
    """The description checks of every labelled change (words.scoring); an unmatched one is recorded missed."""
    said = {j: regions[i].change for i, j, _ in matches}
    return [word_checks(said[j], change) if j in said else {"missed": True, **{
            k: {"truth": change[k], "said": None, "right": False} for k in WORD_FIELDS if k in change}}
            for j, change in enumerate(changes) if has_words(change)]


def tally_records(records: list[dict | list]) -> Tally:
    """Pooled detection counts over eval records (finished ones only)."""
    tally = Tally()
    for rec in records:
        if isinstance(rec, dict) and record_status(rec) == "done":
            tally.add([tuple(b) for b in rec["pred_boxes"]], [tuple(b) for b in rec["truth_boxes"]], rec["ms"])
    return tally


def tally_words(records: list[dict | list]) -> WordsTally | None:
    """Description accuracy over eval records that carry word checks; None when no pair has labels."""
    tally = WordsTally()
    for rec in records:
        for checks in (rec.get("words") or []) if isinstance(rec, dict) else []:
            tally.add(checks)
    return tally if any(tally.total.values()) else None


def pair_counts(records: list[dict | list], total: int) -> dict:
    """How the pairs of an eval stand, counted from every record (this run's and resumed ones alike): scored,
    unscored and failed add up to ``pairs``; pairs known to hold a change (found or not) and pairs known to hold
    none (flagged when anything was reported); pairs whose result carries a warning."""
    rows = [r for r in records if isinstance(r, dict)]
    status = [record_status(r) for r in rows]
    expects = [r for r in rows if r.get("expects_change")]
    no_change = [r for r, st in zip(rows, status) if st == "done" and r.get("truths") == 0]
    return {"pairs": total, "scored": status.count("done"), "unscored": status.count("unscored"),
            "failed": total - status.count("done") - status.count("unscored"),
            "expects_change": len(expects), "found": sum(bool(r.get("found")) for r in expects),
            "no_change": len(no_change), "flagged": sum(r.get("predictions", 0) > 0 for r in no_change),
            "warned": sum(bool(r.get("warnings")) for r in rows)}


def process_item(job: RunJob | EvalJob, pipeline: Pipeline, item: PairItem, out_dir: Path | None) -> dict | list:
    """The record of one pair; a pair's failure is recorded, never raised (the batch goes on). A broken output
    folder is raised: no later pair could be written either."""
    if item.error:
        return error_record(item, item.error)
    try:
        return job.process(pipeline, item, out_dir)
    except OutputError:
        raise
    except ImgDiffError as e:
        return error_record(item, str(e))
    except Exception as e:  # a bug must not cost the rest of a long batch; it is recorded, not hidden
        return error_record(item, f"internal error: {type(e).__name__}: {e}")


@dataclass
class BatchSummary:
    total: int = 0
    done: int = 0
    skipped: int = 0
    failed: int = 0
    unscored: int = 0

    def count(self, record: dict | list) -> None:
        status = record_status(record)
        if status == "failed":
            self.failed += 1
        elif status == "unscored":
            self.unscored += 1
        else:
            self.done += 1

    @property
    def finished(self) -> int:
        return self.done + self.skipped + self.unscored

    def line(self, target: Path | None) -> str:
        parts = [f"{self.done} done", f"{self.skipped} already done", f"{self.failed} failed"]
        if self.unscored:
            parts.append(f"{self.unscored} unscored")
        return f"{self.total} pairs: " + ", ".join(parts) + (f" -> {target}" if target is not None else "")
