"""The `imgdiff-rt` command group. Library errors become one line on stderr and an exit code, here only."""

from __future__ import annotations

import os
import sys

import click

from .. import __version__
from ..errors import ImgDiffError


# The CLI reports its own progress; library progress bars (Hugging Face weight loading) would only add noise
# to stderr. setdefault: a user who wants them sets the variable.
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ImgDiffError as e:
            click.echo(f"Error: {e}", err=True)
            sys.exit(e.exit_code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="imgdiff-rt")
def cli() -> None:
    """Find and describe the differences between two similar images.

    \b
    Example:
      imgdiff-rt run examples/left.png examples/right.png --out out/
    """


def _register() -> None:
    # Each command lives in its own module; add new ones here.
    from .bench_cmd import bench
    from .eval_captions_cmd import eval_captions
    from .eval_cmd import eval_command
    from .export_cmd import export
    from .run import run
    from .synth_cmd import synth
    from .triton_cmd import serve, triton_repo
    from .web_cmd import web

    for command in (run, synth, eval_command, eval_captions, export, triton_repo, serve, bench, web):
        cli.add_command(command)


_register()
