"""`imgdiff-rt eval`: detection precision / recall / F1 over pairs with ground truth, as a resumable batch."""

from __future__ import annotations

import json
from pathlib import Path

import click

from imgdiff_rt.batch import EvalJob, tally_records
from imgdiff_rt.batch.jobs import pair_counts, tally_words
from imgdiff_rt.batch.runner import BatchOptions
from imgdiff_rt.errors import UsageError
from imgdiff_rt.evaluation.evaluate import MATCH_IOU, describe_run, pixel_tally_records
from imgdiff_rt.files import write_text_atomic
from imgdiff_rt.writers.pair import check_writable_dir, make_dir
from imgdiff_rt.pairs import load_pairs
from imgdiff_rt.pipeline import Pipeline
from imgdiff_rt.writers.report_html import write_report
from imgdiff_rt.cli.batch_cli import batch_options, execute, failure_lines
from imgdiff_rt.words.scoring import words_line
from imgdiff_rt.cli.options import detector_options

SUMMARY_FILE = "eval_summary.json"


@click.command("eval")
@click.option("--pairs", type=click.Path(path_type=Path), required=True,
              help="Pairs with truth: a JSONL or Parquet of {id, left, right, truth}, or a folder (left/ + right/ "
                   "+ truth/, A/ + B/ + label/ as LEVIR-CD, CLEVR-Change's before/ + semantic/ + nonsemantic/, "
                   "synth's output). Pairs without truth are reported as unscored.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Write DIR/eval.jsonl (per pair) and DIR/eval_summary.json; re-running resumes.")
@detector_options
@batch_options
def eval_command(pairs: Path, out_dir: Path | None, pipeline: Pipeline, batch: BatchOptions) -> None:
    """Score the detector on pairs with ground truth (truth.json boxes or a binary change-mask image).

    Prints precision, recall and F1 pooled over all pairs under one-to-one matching: a predicted box matches a
    truth item when their IoU >= 0.1 or the truth item's centre lies inside the box (each box matches at most
    one item). Also the mean IoU of matches and the median time per pair.

    \b
    Example:
      imgdiff-rt synth skimage:astronaut --out set/ --count 10
      imgdiff-rt eval --pairs set/pairs.jsonl --out eval/
    """
    items = load_pairs(pairs)
    if out_dir is not None:
        check_writable_dir(out_dir)
    summary, records = execute(pipeline, items, EvalJob(), out_dir, batch)
    rows = [records[it.id] for it in items if it.id in records]
    tally, counts = tally_records(rows), pair_counts(rows, len(items))
    pixels, words = pixel_tally_records(rows), tally_words(rows)
    s = tally.summary()
    summary_record = {**s, **({"pixels": pixels.summary()} if pixels is not None else {}),
                      **({"words": words.summary()} if words is not None else {}), "counts": counts,
                      "failed_pairs": counts["failed"], "unscored_pairs": counts["unscored"],
                      "settings": pipeline.settings()}
    problem = None
    if not tally.times_ms and not counts["expects_change"]:
        first = next((r for r in rows if isinstance(r, dict) and ("error" in r or "unscored" in r)), {})
        problem = f"{pairs}: no pair could be evaluated ({first.get('error') or first.get('unscored')})"
        summary_record["error"] = problem
    else:
        _echo_summary(s, counts, pixels, words)
        click.echo(f"ran         {describe_run(pipeline.settings())}")
    if out_dir is not None:  # written whatever happened: the folder says what was tried and why it failed
        make_dir(out_dir)
        write_text_atomic(out_dir / SUMMARY_FILE, json.dumps(summary_record, indent=2) + "\n")
        write_report(out_dir, f"imgdiff-rt eval --pairs {pairs}", items, records, metrics=summary_record)
    for line in failure_lines(items, records):
        click.echo(line, err=True)
    if problem is not None:
        raise UsageError(problem)


def _echo_summary(s: dict, counts: dict, pixels, words) -> None:
    click.echo(f"pairs       {counts['pairs']}: {counts['scored']} scored, {counts['unscored']} unscored"
               + (f", {counts['failed']} failed" if counts["failed"] else ""))
    if s["truths"]:  # pairs with no change score only as "flagged" below: P/R/F1 would mean nothing
        _echo_boxes(s)
    if pixels is not None:  # mask truth: the change-detection papers' pixel scores
        p = pixels.summary()
        click.echo(f"pixels      P {p['precision']:.3f}  R {p['recall']:.3f}  F1 {p['f1']:.3f}  IoU {p['iou']:.3f}"
                   f" pooled over {p['pairs']} masks; per image F1 {p['mean_per_image']['f1']:.3f}")
    _echo_layout_counts(counts)
    if words is not None:
        click.echo("words       " + words_line(words.summary()))


def _echo_boxes(s: dict) -> None:
    for key in ("precision", "recall", "f1"):
        click.echo(f"{key:<11} {s[key]:.3f}")
    click.echo(f"mean IoU    {s['mean_iou'] if s['mean_iou'] is None else format(s['mean_iou'], '.3f')}")
    click.echo(f"median ms   {s['median_ms']:.1f}")
    click.echo(f"matched     {s['true_positives']} of {s['truths']} truths, {s['predictions']} predictions"
               f" (IoU >= {MATCH_IOU} or centre inside)")


def _echo_layout_counts(counts: dict) -> None:
    """What pairs with a known answer but no boxes say: a change there found or not, no change flagged or not."""
    if counts["expects_change"]:
        n, found = counts["expects_change"], counts["found"]
        click.echo(f"found       {found} of {n} pairs known to hold a change ({found / n:.3f})")
    if counts["no_change"]:
        n, flagged = counts["no_change"], counts["flagged"]
        click.echo(f"flagged     {flagged} of {n} pairs known to hold no change ({flagged / n:.3f})")
    if counts["warned"]:
        click.echo(f"warnings    {counts['warned']} of {counts['pairs']} pairs carry a warning")
