"""`imgdiff-rt eval-captions`: BLEU-1..4, METEOR, ROUGE-L and CIDEr-D of predicted captions vs references."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from imgdiff_rt.caption_metrics.metrics import FIELDS, evaluate_captions, load_predictions, load_references
from imgdiff_rt.files import ensure_writable_dir, write_text_atomic

OUTPUT_NAME = "caption_metrics.json"
SHOW_IDS = 5  # ids listed per category in the table; the JSON has them all


def _ids(ids: list[str]) -> str:
    more = f", ... (+{len(ids) - SHOW_IDS})" if len(ids) > SHOW_IDS else ""
    return f" (e.g. {', '.join(ids[:SHOW_IDS])}{more})" if ids else ""


def format_table(doc: dict[str, Any]) -> str:
    c = doc["counts"]
    lines = [f"Caption metrics over {c['scored']} ids present in both files",
             f"  {'metric':<9} {'score':>8} {'x100':>7}"]
    for name, value in doc["metrics"].items():
        lines.append(f"  {name:<9} {value:8.4f} {100 * value:7.2f}")
    if doc["spice"].get("status") != "computed":
        lines.append(f"  SPICE     {doc['spice'].get('status')}: {doc['spice'].get('reason')}")
    lines += [
        f"Predicted ids without references (not scored): {c['missing_in_refs']}"
        f"{_ids(doc['missing_in_refs'])}",
        f"Referenced ids without a prediction (not scored): {c['missing_in_pred']}"
        f"{_ids(doc['missing_in_pred'])}",
        f"Empty predictions (scored 0): {c['empty_predictions']}{_ids(doc['empty_predictions'])}",
        f"Failed pairs (error records, scored as empty): {c['failed_predictions']}"
        f"{_ids(doc['failed_predictions'])}",
        f"Empty reference sentences dropped: {c['empty_references_dropped']}",
    ]
    return "\n".join(lines)


@click.command("eval-captions")
@click.option("--pred", "pred_path", required=True, type=click.Path(path_type=Path),
              help='results.jsonl from `imgdiff-rt run --pairs`, or a JSONL of {"id", "caption"}.')
@click.option("--refs", "refs_path", required=True, type=click.Path(path_type=Path),
              help="COCO caption JSON (images, annotations) or a JSON list of {img_id, sentences}.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help=f"Folder for {OUTPUT_NAME} (scores, per-item scores, left-out ids).")
@click.option("--field", "field_name", type=click.Choice(FIELDS), default="description", show_default=True,
              help="Text of a result record that is the caption: the pair's summary sentence (description) "
                   "or the first region's description (region).")
@click.option("--spice/--no-spice", default=None,
              help="SPICE: default runs it only where its CoreNLP models are installed; --spice requires it.")
def eval_captions(pred_path: Path, refs_path: Path, out_dir: Path | None, field_name: str,
                  spice: bool | None) -> None:
    """Score predicted difference captions against reference captions.

    Text is PTB-tokenised and scored with pycocoevalcap (BLEU-1..4, METEOR, ROUGE-L, CIDEr-D), as
    difference-captioning papers report; Java must be on PATH. Ids match after dropping an image suffix
    ('256.png' == '256'); only ids present in both files are scored, and the others are reported.

    \b
    Example:
      imgdiff-rt eval-captions --pred out/results.jsonl \\
          --refs spot_test_change_captions_reformat.json --out out/
    """
    preds = load_predictions(pred_path, field_name)
    refs = load_references(refs_path)
    out = ensure_writable_dir(out_dir) if out_dir is not None else None  # before the slow part
    doc = evaluate_captions(preds, refs, spice=spice,
                            source={"pred": str(pred_path), "refs": str(refs_path), "field": field_name})
    click.echo(format_table(doc))
    if out is not None:
        write_text_atomic(out / OUTPUT_NAME, json.dumps(doc, indent=2) + "\n")
        click.echo(f"Wrote {out / OUTPUT_NAME}")
