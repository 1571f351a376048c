"""`imgdiff-rt export`: the segmenter, CLIP and captioner encoders to a checked, versioned model bundle."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from imgdiff_rt.errors import InputError, UsageError
from imgdiff_rt.export.build import ExportOptions
from imgdiff_rt.models.specs import CAPTIONER_FAMILIES, FORMATS, PRECISIONS

#: --tiny's default segmenter size: the smallest multiple of 32 the head's strides leave room for in seconds.
TINY_IMGSZ = 64


def _progress(started: float):
    def say(message: str) -> None:
        click.echo(f"[{time.perf_counter() - started:6.1f}s] {message}", err=True)

    return say


@click.command("export", context_settings={"max_content_width": 100})
@click.option("--segmenter", "segmenter", default=ExportOptions.segmenter, show_default=True, metavar="SRC",
              help="Ultralytics checkpoint path or name (FastSAM-s.pt, FastSAM-x.pt, yolov8*-seg.pt), or none.")
@click.option("--segmenter-onnx", type=click.Path(dir_okay=False), metavar="PATH",
              help="Register an already-exported segmenter ONNX as is (layout checked against the spec).")
@click.option("--segmenter-fp32", is_flag=True,
              help="With --segmenter-onnx of an ORT dynamic-int8 graph: also register its dequantized fp32 rebuild "
                   "(the same int8-rounded weights in fp32 Convs, faster on CPUs), checked against the registered "
                   "graph on photos; --precision auto (run's default) runs it when the check passed.")
@click.option("--clip", default=ExportOptions.clip, show_default=True, metavar="SRC",
              help="Hugging Face id or local folder of a CLIP model, or none.")
@click.option("--captioner", default=ExportOptions.captioner, show_default=True,
              metavar="|".join(f"{c}[:SRC]" for c in CAPTIONER_FAMILIES) + "|none",
              help="Captioner whose image encoder is exported (generation stays in PyTorch).")
@click.option("--format", "fmt", type=click.Choice([*FORMATS, "all"]), default=ExportOptions.formats[0], show_default=True,
              help="engine/all also build TensorRT engines (needs the tensorrt extra and a GPU).")
@click.option("--precision", type=click.Choice(PRECISIONS), default=ExportOptions.precision, show_default=True,
              help="fp32 ONNX is always written (the reference); int8 adds CPU int8 ONNX beside it (dynamic for "
                   "encoders, static QDQ for the segmenter). TensorRT engines are always fp16; fp16 without "
                   "--format engine/all is refused (no fp16 ONNX is built).")
@click.option("--half", is_flag=True, help="Alias of --precision fp16 (TensorRT engines; with --format engine/all).")
@click.option("--device", default=ExportOptions.device, show_default=True, metavar="cpu|cuda[:N]",
              help="PyTorch device and ONNX Runtime providers of the parity and int8 checks (export traces on "
                   "the CPU); checked before any work.")
@click.option("--imgsz", type=int, default=None,
              help=f"Segmenter export/optimisation size [default: {ExportOptions.imgsz}; {TINY_IMGSZ} with --tiny].")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Bundle folder [default: $IMGDIFF_RT_HOME/models or ~/.cache/imgdiff-rt/models].")
@click.option("--random-init", is_flag=True, help="Real-size architectures with random weights (no download).")
@click.option("--tiny", is_flag=True, help="Small configs of the same architectures, random weights (tests).")
@click.option("--force", is_flag=True, help="Re-export every graph even when its manifest entry is current.")
@click.option("--check", "check_dir", type=click.Path(), metavar="DIR",
              help="Re-verify an existing bundle (hashes + parity on fresh inputs) instead of exporting.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest (or check report) as JSON on stdout.")
def export(segmenter, segmenter_onnx, segmenter_fp32, clip, captioner, fmt, precision, half, device, imgsz, out_dir, random_init,
           tiny, force, check_dir, as_json) -> None:
    """Export the segmenter, CLIP and the captioner's image encoder to ONNX (and TensorRT engines), check
    parity against PyTorch, and write a versioned bundle with manifest.json.

    \b
    Examples:
      imgdiff-rt export --tiny --random-init --out /tmp/bundle         # seconds, no weights needed
      imgdiff-rt export --random-init --precision int8 --out /tmp/real # real-size, random weights
      imgdiff-rt export --segmenter-onnx ../shared/models/yolov8n-seg-int8.onnx --clip none --captioner none
      imgdiff-rt export --check /tmp/bundle
    """
    from imgdiff_rt.runtime.device import check_device, half_precision, parse_device

    placed = check_device(parse_device(device))  # a missing GPU is one line before any work
    started = time.perf_counter()
    say = _progress(started)
    if check_dir:
        if placed.kind != "cpu":
            raise UsageError(f"device {placed}: bundle checks (check) run on the CPU", parameter="device")
        from imgdiff_rt.export.bundle_check import check_bundle

        if not Path(check_dir).is_dir():
            raise InputError(f"{check_dir}: {'is a file' if Path(check_dir).exists() else 'not found'}; --check "
                             "takes a model bundle folder (the --out of `imgdiff-rt export`, with manifest.json)")
        say(f"checking {check_dir}")
        from imgdiff_rt.cli.quiet_stdout import stdout_to_stderr

        with stdout_to_stderr():
            report = check_bundle(check_dir, progress=say)
        say(f"bundle ok ({len(report)} entries)")
        if as_json:
            click.echo(json.dumps(report, indent=2, default=str))
        return
    from imgdiff_rt.export.build import run_export

    precision = half_precision(half, precision)

    none = ("", "none")
    if segmenter_onnx and segmenter not in (ExportOptions.segmenter, "none"):
        raise UsageError("segmenter_onnx and segmenter exclude each other", parameter="segmenter_onnx")
    opts = ExportOptions(
        segmenter=None if segmenter.lower() in none or segmenter_onnx else segmenter,
        segmenter_onnx=segmenter_onnx,
        segmenter_fp32=segmenter_fp32,
        clip=None if clip.lower() in none else clip,
        captioner=None if captioner.lower() in none else captioner,
        formats=FORMATS if fmt == "all" else (fmt,),
        precision=precision,
        imgsz=imgsz if imgsz is not None else (TINY_IMGSZ if tiny else ExportOptions.imgsz),
        random_init=random_init,
        tiny=tiny,
        force=force,
        device=device,
    )
    if tiny or random_init:
        say("note: random weights (--tiny/--random-init): figures measure the architecture, not a trained model")
    from imgdiff_rt.export.summary import format_table, next_command
    from imgdiff_rt.models.bundle import default_bundle_dir
    from imgdiff_rt.cli.quiet_stdout import stdout_to_stderr

    with stdout_to_stderr():  # library banners must not break --json (or the table) on stdout
        manifest = run_export(opts, out_dir, progress=say)
    target = out_dir or default_bundle_dir()
    summary = f"{format_table(manifest)}\nnext: {next_command(manifest, target)}"
    if as_json:
        click.echo(summary, err=True)
        click.echo(json.dumps(manifest.to_dict(), indent=2, default=str))
    else:
        click.echo(summary)
