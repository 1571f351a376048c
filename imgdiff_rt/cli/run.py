"""`imgdiff-rt run`: one pair to JSON (and pictures), or a resumable batch of pairs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..errors import UsageError
from ..files import write_text_atomic
from ..outputs import FORMATS, RESULTS_FILE, check_writable_dir, make_dir, pair_payload, run_batch, write_pair
from ..pairs import load_pairs, safe_stem
from ..pipeline import Pipeline
from .options import detector_options


def _progress(items):
    if not sys.stderr.isatty():
        return items
    from rich.progress import track

    return track(items, description="pairs", console=None, transient=False)


@click.command("run", context_settings={"max_content_width": 100})
@click.argument("left", required=False, type=click.Path(path_type=Path))
@click.argument("right", required=False, type=click.Path(path_type=Path))
@click.option("--pairs", type=click.Path(path_type=Path),
              help="Batch: a JSONL of {id, left, right, truth?} (paths relative to it) or a folder with left/ "
                   "and right/. Needs --out; writes DIR/results.jsonl; re-running skips pairs already done.")
@click.option("--json", "json_out", default=None, metavar="PATH|-",
              help="Write the result JSON here ('-' or unset: stdout).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Also write DIR/<id>.json and DIR/<id>.png (side by side, regions boxed and numbered).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="result", show_default=True,
              help="'result': imgdiff-rt/result/v1; 'img-diff': Img-Diff visual-instruction records.")
@click.option("--id", "pair_id", default=None, help="Id of the pair [default: from the file names].")
@detector_options
def run(left: Path | None, right: Path | None, pairs: Path | None, json_out: str | None,
        out_dir: Path | None, fmt: str, pair_id: str | None, pipeline: Pipeline) -> None:
    """Find and describe the differences between LEFT and RIGHT.

    \b
    Examples:
      imgdiff-rt run examples/left.png examples/right.png
      imgdiff-rt run a.jpg b.jpg --align --out out/ --json out/result.json
      imgdiff-rt run --pairs pairs.jsonl --out out/
    """
    if pairs is not None:
        if left is not None or right is not None:
            raise UsageError("give either LEFT RIGHT or --pairs, not both")
        if out_dir is None:
            raise UsageError("--pairs needs --out DIR (results go to DIR/results.jsonl)")
        items = load_pairs(pairs)
        check_writable_dir(out_dir)
        with pipeline:  # sessions open once for the whole batch
            summary = run_batch(pipeline, items, out_dir, fmt, _progress)
        _notice(pipeline)
        click.echo(f"{summary.total} pairs: {summary.done} done, {summary.skipped} already done, "
                   f"{summary.failed} failed -> {out_dir / RESULTS_FILE}", err=True)
        if summary.failed:
            sys.exit(1)
        return
    if left is None or right is None:
        raise UsageError("give LEFT and RIGHT images (or --pairs FILE)")
    if out_dir is not None:
        check_writable_dir(out_dir)
    if json_out not in (None, "-"):
        check_writable_dir(Path(json_out).parent)
    with pipeline:
        processed = pipeline.process(left, right, id=pair_id)
    stem = safe_stem(processed.result.id)
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


def _notice(pipeline: Pipeline) -> None:
    if pipeline.notice:
        click.echo(pipeline.notice, err=True)
