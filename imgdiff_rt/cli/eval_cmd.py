"""`imgdiff-rt eval`: detection precision / recall / F1 over pairs with ground truth."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import ImgDiffError, UsageError
from ..evaluate import MATCH_IOU, Tally, load_truth
from ..files import write_text_atomic
from ..outputs import check_writable_dir, make_dir
from ..pairs import load_pairs
from ..pipeline import Pipeline
from .options import detector_options


@click.command("eval")
@click.option("--pairs", type=click.Path(path_type=Path), required=True,
              help="JSONL of {id, left, right, truth} or a folder with left/, right/ and truth/.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Write DIR/eval.jsonl (per pair) and DIR/eval_summary.json.")
@detector_options
def eval_command(pairs: Path, out_dir: Path | None, pipeline: Pipeline) -> None:
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
    tally = Tally()
    rows = []
    for item in items:
        if item.error or item.truth is None:
            rows.append({"id": item.id, "error": item.error or "no truth given for this pair"})
            continue
        try:
            result = pipeline(item.left, item.right, id=item.id)
            truths = load_truth(item.truth, result.size)
        except ImgDiffError as e:
            rows.append({"id": item.id, "error": str(e)})
            continue
        preds = [r.bbox for r in result.regions]
        matches = tally.add(preds, truths, result.timings_ms["total"])
        rows.append({"id": item.id, "predictions": len(preds), "truths": len(truths), "matched": len(matches),
                     "matches": [{"region": preds[i], "truth": list(truths[j]), "iou": round(v, 4)}
                                 for i, j, v in matches], "ms": result.timings_ms["total"]})
    if tally.times_ms == []:
        raise UsageError(f"{pairs}: no pair could be evaluated (" + (rows[0].get("error") or "") + ")")
    s = tally.summary()
    failed = sum(1 for r in rows if "error" in r)
    click.echo(f"pairs       {s['pairs']}" + (f" ({failed} failed)" if failed else ""))
    for key in ("precision", "recall", "f1"):
        click.echo(f"{key:<11} {s[key]:.3f}")
    click.echo(f"mean IoU    {s['mean_iou'] if s['mean_iou'] is None else format(s['mean_iou'], '.3f')}")
    click.echo(f"median ms   {s['median_ms']:.1f}")
    click.echo(f"matched     {s['true_positives']} of {s['truths']} truths, {s['predictions']} predictions"
               f" (IoU >= {MATCH_IOU} or centre inside)")
    if out_dir is not None:
        make_dir(out_dir)
        write_text_atomic(out_dir / "eval.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
        summary = {**s, "failed_pairs": failed, "settings": pipeline.settings()}
        write_text_atomic(out_dir / "eval_summary.json", json.dumps(summary, indent=2) + "\n")
