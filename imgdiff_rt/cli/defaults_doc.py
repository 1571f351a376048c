"""docs/defaults.md, generated from the code: every default of the commands' options and of the detectors'
settings, so the documentation cannot drift from what runs. ``python scripts/gen_defaults_doc.py`` rewrites the
file; tests/contract/test_docs.py fails when the committed copy is stale."""

from __future__ import annotations

import dataclasses
import re

import click

#: the commands whose options are listed, in this order (each table comes from the command's Click params)
COMMANDS = ("run", "eval", "export", "bench", "triton-repo", "serve", "web", "doctor")
_DEFAULT_IN_HELP = re.compile(r"\[default: ([^\]]*)\]")
HEADER = ("# Defaults\n\n*Generated from the code by `python scripts/gen_defaults_doc.py`; do not edit by hand "
          "(tests/contract/test_docs.py checks it is current).*\n")


def option_default(param: click.Parameter) -> str:
    """What an option defaults to, as its --help says it: the value, or the rule in its ``[default: ...]``."""
    default = param.default
    if callable(default):
        default = default()
    if type(default).__name__ == "Sentinel":  # Click >= 8.3 marks "no default" with a sentinel, not None
        default = None
    if isinstance(param, click.Option) and param.is_flag and not param.secondary_opts:
        return "on" if default is True else "off"
    if isinstance(param, click.Option) and param.secondary_opts:
        return param.opts[0] if default is True else param.secondary_opts[0]
    if default is None:
        found = _DEFAULT_IN_HELP.search(getattr(param, "help", None) or "")
        return found.group(1) if found else "none"
    return str(default)


def command_table(command: click.Command) -> list[str]:
    rows = ["| option | default |", "|---|---|"]
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden and param.name != "help":
            rows.append(f"| `{param.opts[0]}` | {_cell(option_default(param))} |")
    return rows


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def settings_table(config: type, title: str) -> list[str]:
    """A library settings dataclass: field and default (what the CLI's options start from)."""
    rows = [f"### {title}", "", "| setting | default |", "|---|---|"]
    for f in dataclasses.fields(config):
        value = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        rows.append(f"| `{f.name}` | {_cell(repr(value))} |")
    return rows + [""]


def render() -> str:
    from imgdiff_rt.detectors.pixel.detector import DEFAULT_NOISE_FLOOR, DEFAULT_THRESHOLD, PixelConfig
    from imgdiff_rt.detectors.model.detector import SegmentConfig
    from imgdiff_rt.cli.main import cli

    ctx = click.Context(cli)
    parts = [HEADER, "## Command options", ""]
    for name in COMMANDS:
        command = cli.get_command(ctx, name)
        if command is None:
            continue
        parts += [f"### `imgdiff-rt {name}`", "", *command_table(command), ""]
    parts += ["## Detector settings (library)", ""]
    parts += settings_table(PixelConfig, "Pixel detector (`imgdiff_rt.detectors.pixel.detector.PixelConfig`)")
    parts += ["Per metric, when `threshold` / `noise_floor` are unset:", "", "| metric | threshold | noise floor |",
              "|---|---|---|"]
    parts += [f"| {m} | {DEFAULT_THRESHOLD[m]} | {DEFAULT_NOISE_FLOOR[m]:g} |" for m in DEFAULT_THRESHOLD]
    parts += [""]
    parts += settings_table(SegmentConfig, "Segment + CLIP detector (`imgdiff_rt.detectors.model.detector.SegmentConfig`)")
    return "\n".join(parts).rstrip() + "\n"
