"""`imgdiff-rt eval`: detection precision / recall / F1 over pairs with ground truth, as a resumable batch."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..batch import EvalJob, tally_records
from ..batch.runner import BatchOptions
from ..errors import UsageError
from ..evaluate import MATCH_IOU, describe_run, pixel_tally_records
from ..files import write_text_atomic
from ..outputs import check_writable_dir, make_dir
from ..pairs import load_pairs
from ..pipeline import Pipeline
from ..report_html import write_report
from .batch_cli import batch_options, execute
from .options import detector_options

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
    tally = tally_records(rows)
    if not tally.times_ms:
        first = next((r for r in rows if isinstance(r, dict) and ("error" in r or "unscored" in r)), {})
        raise UsageError(f"{pairs}: no pair could be evaluated ({first.get('error') or first.get('unscored')})")
    s = tally.summary()
    notes = [f"{n} {what}" for n, what in ((summary.failed, "failed"), (summary.unscored, "unscored")) if n]
    click.echo(f"pairs       {s['pairs']}" + (f" ({', '.join(notes)})" if notes else ""))
    for key in ("precision", "recall", "f1"):
        click.echo(f"{key:<11} {s[key]:.3f}")
    click.echo(f"mean IoU    {s['mean_iou'] if s['mean_iou'] is None else format(s['mean_iou'], '.3f')}")
    click.echo(f"median ms   {s['median_ms']:.1f}")
    click.echo(f"matched     {s['true_positives']} of {s['truths']} truths, {s['predictions']} predictions"
               f" (IoU >= {MATCH_IOU} or centre inside)")
    pixels = pixel_tally_records(rows)
    if pixels is not None:  # mask truth: the change-detection papers' pixel scores
        p = pixels.summary()
        click.echo(f"pixels      P {p['precision']:.3f}  R {p['recall']:.3f}  F1 {p['f1']:.3f}  IoU {p['iou']:.3f}"
                   f" pooled over {p['pairs']} masks; per image F1 {p['mean_per_image']['f1']:.3f}")
    click.echo(f"ran         {describe_run(pipeline.settings())}")
    if out_dir is not None:
        make_dir(out_dir)
        result = {**s, **({"pixels": pixels.summary()} if pixels is not None else {}),
                  "failed_pairs": summary.failed, "unscored_pairs": summary.unscored,
                  "settings": pipeline.settings()}
        write_text_atomic(out_dir / SUMMARY_FILE, json.dumps(result, indent=2) + "\n")
        write_report(out_dir, f"imgdiff-rt eval --pairs {pairs}", items, records, metrics=result)
