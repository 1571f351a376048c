"""`imgdiff-rt run`: one pair to JSON (and pictures), or a resumable batch of pairs."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import click

from imgdiff_rt.errors import UsageError
from imgdiff_rt.files import check_output_file, write_text_atomic
from imgdiff_rt.batch import RESULTS_FILE, BatchOptions, RunJob
from imgdiff_rt.writers.pair import FORMATS, check_writable_dir, make_dir, pair_payload, write_pair
from imgdiff_rt.pairs import load_pairs, safe_stem
from imgdiff_rt.pipeline import Pipeline
from imgdiff_rt.result import default_pair_id
from imgdiff_rt.writers.report_html import write_report
from imgdiff_rt.cli.batch_cli import batch_options, execute, failure_lines, is_default
from imgdiff_rt.cli.options import NOTICE_KEY, detector_options


@click.command("run", context_settings={"max_content_width": 100})
@click.argument("left", required=False, type=click.Path(path_type=Path))
@click.argument("right", required=False, type=click.Path(path_type=Path))
@click.option("--pairs", type=click.Path(path_type=Path),
              help="Batch: a JSONL or Parquet of {id, left, right, truth?} (paths relative to it), or a folder: "
                   "left/ + right/, A/ + B/ (+ label/, LEVIR-CD style), before/ + semantic/ or nonsemantic/ "
                   "(CLEVR-Change), or synth's output. Needs --out; writes DIR/results.jsonl; re-running skips "
                   "pairs already done.")
@click.option("--json", "json_out", default=None, metavar="PATH|-",
              help="Write the result JSON here ('-' or unset: stdout).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Also write DIR/<id>.json and DIR/<id>.png (side by side, regions boxed and numbered).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="result", show_default=True,
              help="'result': imgdiff-rt/result/v1; 'img-diff': Img-Diff visual-instruction records.")
@click.option("--id", "pair_id", default=None, help="Id of the pair [default: from the file names].")
@detector_options
@batch_options
def run(left: Path | None, right: Path | None, pairs: Path | None, json_out: str | None,
        out_dir: Path | None, fmt: str, pair_id: str | None, pipeline: Pipeline, batch: BatchOptions) -> None:
    """Find and describe the differences between LEFT and RIGHT.

    \b
    Examples:
      imgdiff-rt run examples/left.png examples/right.png
      imgdiff-rt run a.jpg b.jpg --align --out out/ --json out/result.json
      imgdiff-rt run --pairs pairs.jsonl --out out/
      imgdiff-rt run --pairs ../shared/data/levir-cd --out out/ --engine ray --workers 2
    """
    if pairs is not None:
        _run_pairs(pairs, left, right, out_dir, json_out, fmt, pair_id, pipeline, batch)
        return
    if not is_default(batch):
        raise UsageError("--engine, --address, --workers, --batch-size, --parquet, --redo, --force and --quiet "
                         "are for batches (--pairs)")
    if left is None or right is None:
        raise UsageError("give LEFT and RIGHT images (or --pairs FILE)")
    pair_id = pair_id or default_pair_id(left, right)
    stem = safe_stem(pair_id)
    _check_single_pair_outputs(left, right, out_dir, json_out, fmt, stem)
    with pipeline:
        processed = pipeline.process(left, right, id=pair_id)
    for warning in processed.result.warnings:  # also in the JSON; said here once so nobody misses it
        click.echo(f"warning: {warning}", err=True)
    if out_dir is not None:
        payload = write_pair(processed, make_dir(out_dir), fmt, stem)
    else:
        payload = pair_payload(processed, fmt, stem)
    text = json.dumps(payload, indent=2, ensure_ascii=False)
    if json_out in (None, "-"):
        click.echo(text)
    else:
        make_dir(Path(json_out).parent)
        write_text_atomic(json_out, text + "\n")
    _notice(pipeline)


def _check_single_pair_outputs(left: Path, right: Path, out_dir: Path | None, json_out: str | None, fmt: str,
                               stem: str) -> None:
    """Every file `run` will write, checked before any work: nothing is a folder, an input or unwritable, so a
    bad target costs no time and leaves nothing behind (the output folder is created only after the pair)."""
    inputs = (left, right)
    if json_out not in (None, "-"):
        check_output_file(json_out, inputs)
    if out_dir is None:
        return
    check_writable_dir(out_dir)
    for name in (f"{stem}.json", f"{stem}.png") if fmt == "result" else (f"{stem}.json",):
        check_output_file(out_dir / name, inputs)
    if fmt == "img-diff":  # one picture per region, named <stem>-<n>.png: none may be an input
        pattern = re.compile(re.escape(stem) + r"-[0-9]+\.png")
        for source in inputs:
            if pattern.fullmatch(source.name) and (out_dir / source.name).exists():
                check_output_file(out_dir / source.name, inputs)


def _run_pairs(pairs: Path, left: Path | None, right: Path | None, out_dir: Path | None, json_out: str | None,
               fmt: str, pair_id: str | None, pipeline: Pipeline, batch: BatchOptions) -> None:
    """The batch path: every pair's record in DIR, DIR/results.jsonl, resumable (see imgdiff_rt.batch)."""
    if left is not None or right is not None:
        raise UsageError("give either LEFT RIGHT or --pairs, not both")
    if json_out is not None or pair_id is not None:
        raise UsageError("--json and --id are for a single pair; a batch writes DIR/results.jsonl")
    if out_dir is None:
        raise UsageError("--pairs needs --out DIR (results go to DIR/results.jsonl)")
    items = load_pairs(pairs)
    check_writable_dir(out_dir)
    summary, records = execute(pipeline, items, RunJob(fmt), out_dir, batch)
    _notice(pipeline)
    write_report(out_dir, f"imgdiff-rt run --pairs {pairs}", items, records)
    click.echo(summary.line(out_dir / RESULTS_FILE), err=True)
    for line in failure_lines(items, records):
        click.echo(line, err=True)
    warned = sum(any(isinstance(r, dict) and r.get("warnings") for r in (rec if isinstance(rec, list) else [rec]))
                 for rec in records.values())
    if warned:
        click.echo(f"{warned} of {len(items)} pairs carry a warning (their records say why; report.html lists "
                   "them)", err=True)
    if summary.failed:
        sys.exit(1)


def _notice(_pipeline: Pipeline) -> None:
    """The fallback notice `detector_options` left on the CLI context (a pixel run for want of a bundle)."""
    notice = click.get_current_context().meta.get(NOTICE_KEY)
    if notice:
        click.echo(notice, err=True)
