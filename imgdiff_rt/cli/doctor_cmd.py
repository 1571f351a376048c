"""`imgdiff-rt doctor`: versions, accelerators, Java, the Triton side environment and the bundle, in one report."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("doctor", context_settings={"max_content_width": 100})
@click.option("--models", type=click.Path(path_type=Path), default=None,
              help="Model bundle to summarise [default: $IMGDIFF_RT_HOME/models, else ~/.cache/imgdiff-rt/models].")
@click.option("--no-hashes", is_flag=True, help="Skip re-hashing the bundle's files (faster on big bundles).")
@click.option("--json", "as_json", is_flag=True, help="The report as JSON on stdout.")
def doctor(models: Path | None, no_hashes: bool, as_json: bool) -> None:
    """Report what this machine offers imgdiff-rt (versions, ONNX Runtime providers, CUDA, TensorRT, Java for
    METEOR, the Triton server environment) and what the bundle at --models holds (graphs, precisions, weights
    kind, sha256 checked). Paste it into a bug report. Exit status 1 when the bundle's files do not match
    its manifest.

    \b
    Examples:
      imgdiff-rt doctor
      imgdiff-rt doctor --models /tmp/bundle --json
    """
    from imgdiff_rt.doctor import collect, format_report

    report = collect(models, verify=not no_hashes)
    click.echo(json.dumps(report, indent=2) if as_json else format_report(report))
    bundle = report["bundle"]
    if "graphs" in bundle and not bundle["ok"]:
        raise SystemExit(1)
