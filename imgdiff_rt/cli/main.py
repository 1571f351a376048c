"""The `imgdiff-rt` command group. Library errors become one line on stderr and an exit code, here only."""

from __future__ import annotations

import errno
import os
import sys

import click

from imgdiff_rt import __version__
from imgdiff_rt.errors import ImgDiffError
from imgdiff_rt.extras import require_command
from imgdiff_rt.cli.lazy_group import LazyCommands, LazyGroup

# Every command: name -> (module in imgdiff_rt.cli, function). Add new ones here; a module is imported only when
# its command runs (or its own --help is asked for), so `imgdiff-rt --help` and `run` start fast.
COMMANDS = {
    "run": ("run", "run"),
    "synth": ("synth_cmd", "synth"),
    "eval": ("eval_cmd", "eval_command"),
    "eval-captions": ("eval_captions_cmd", "eval_captions"),
    "export": ("export_cmd", "export"),
    "triton-repo": ("triton_cmd", "triton_repo"),
    "serve": ("triton_cmd", "serve"),
    "bench": ("bench_cmd", "bench"),
    "web": ("web_cmd", "web"),
    "doctor": ("doctor_cmd", "doctor"),
}


# The CLI reports its own progress; library progress bars (Hugging Face weight loading) would only add noise
# to stderr. setdefault: a user who wants them sets the variable.
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


class _Group(LazyGroup):
    def resolve_command(self, ctx: click.Context, args: list[str]):
        # a command's extra is checked before its module is imported (which may import the extra itself);
        # its --help works without the extra
        if args and args[0] in self.lazy_commands and not {"--help", "-h"} & set(args[1:]):
            require_command(args[0])
        return super().resolve_command(ctx, args)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ImgDiffError as e:
            _fail(_name_flag(self, ctx, e), e.exit_code)
        except click.BadParameter as e:
            if not isinstance(getattr(e.param, "type", None), click.Path):
                raise  # Click's usage block helps with a mistyped option; a file problem is one line
            _fail(e.format_message(), 2)
        except OSError as e:  # a file problem the library did not foresee: still one line, never a traceback
            full = e.errno in (errno.ENOSPC, errno.EDQUOT)  # the machine's state, not bad input: exit 1
            _fail(f"{e.filename}: {e.strerror or e}" if e.filename else str(e), 1 if full else 2)


def _name_flag(group: click.Group, ctx: click.Context, error: ImgDiffError) -> str:
    """The message with the library parameter it is about spelt as this command's flag (``clip_threshold``
    -> ``--clip-threshold``); the library never names CLI flags itself."""
    message, name = str(error), getattr(error, "parameter", None)
    command = group.get_command(ctx, ctx.invoked_subcommand) if name and ctx.invoked_subcommand else None
    flags = [p.opts[0] for p in (command.params if command else ()) if p.name == name and p.opts[0].startswith("-")]
    if not flags:
        return message
    return flags[0] + message[len(name):] if message.startswith(name) else f"{message} ({flags[0]})"


def _fail(message: str, code: int) -> None:
    """One line on stderr whatever the message holds (a path may contain a newline) and exit ``code``."""
    one_line = message.replace("\r", "\\r").replace("\n", "\\n")
    click.echo(f"Error: {one_line}", err=True)
    sys.exit(code)


@click.group(cls=_Group, lazy_commands=LazyCommands(__package__, COMMANDS),
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="imgdiff-rt")
def cli() -> None:
    """Find and describe the differences between two similar images.

    \b
    Example:
      imgdiff-rt run examples/left.png examples/right.png --out out/
    """
