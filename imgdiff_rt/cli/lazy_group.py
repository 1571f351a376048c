"""A Click group that imports a command's module only when that command runs, so `imgdiff-rt --help` and
`imgdiff-rt run` on the pixel detector do not pay for numpy, OpenCV, SciPy or the model stack they never use.

The top-level `--help` lists every command with its short help; that text is read from the command function's
docstring in the module's source (``ast``), without importing the module, so the docstring stays the one source.
A command whose decorator sets its own help text, or that the source does not show plainly, is imported instead.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
from collections.abc import Iterator, Mapping, MutableMapping
from pathlib import Path

import click

# Decorator keywords that change what the listing shows; a command using one is imported for the listing.
_LISTING_KEYWORDS = {"help", "short_help", "hidden", "deprecated"}


class LazyCommands(MutableMapping):
    """name -> click command, importing ``package.module`` for ``attribute`` on first access; the group's
    ``commands``, so Click's own add_command and anything reading ``group.commands`` work as with a dict."""

    def __init__(self, package: str, table: Mapping[str, tuple[str, str]]):
        self._package = package
        self._table = dict(table)
        self._loaded: dict[str, click.Command] = {}

    def __getitem__(self, name: str) -> click.Command:
        if name not in self._loaded:
            module_name, attribute = self._table[name]  # KeyError for an unknown name, as a dict would
            module = importlib.import_module(f"{self._package}.{module_name}")
            self._loaded[name] = getattr(module, attribute)
        return self._loaded[name]

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._loaded[name] = command
        self._table.setdefault(name, ("", ""))

    def __delitem__(self, name: str) -> None:
        del self._table[name]
        self._loaded.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)

    def is_loaded(self, name: str) -> bool:
        return name in self._loaded

    def source_docstring(self, name: str) -> str | None:
        """The command function's docstring as written in its module, or None when the source does not show it
        plainly (no source file, a decorator that sets listing text itself, the function not found)."""
        module_name, attribute = self._table[name]
        spec = importlib.util.find_spec(f"{self._package}.{module_name}")
        if spec is None or not spec.origin or not spec.origin.endswith(".py"):
            return None
        tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name == attribute:
                if any(_sets_listing_text(d) for d in node.decorator_list):
                    return None
                return ast.get_docstring(node, clean=False)
        return None


def _sets_listing_text(decorator: ast.expr) -> bool:
    """True for a ``command(...)``/``group(...)`` decorator given listing text (options' help does not count)."""
    if not isinstance(decorator, ast.Call):
        return False
    callee = decorator.func
    name = callee.attr if isinstance(callee, ast.Attribute) else getattr(callee, "id", "")
    return name in ("command", "group") and any(k.arg in _LISTING_KEYWORDS for k in decorator.keywords)


class LazyGroup(click.Group):
    """click.Group over a LazyCommands table; commands added with add_command work as usual."""

    def __init__(self, *args, lazy_commands: LazyCommands, **kwargs):
        super().__init__(*args, **kwargs)
        lazy_commands.update(self.commands)
        self.lazy_commands = lazy_commands
        self.commands = lazy_commands

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(n) for n in names)
        rows = []
        for name in names:
            text = self._listing_text(ctx, name, limit)
            if text is not None:
                rows.append((name, text))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def _listing_text(self, ctx: click.Context, name: str, limit: int) -> str | None:
        lazy = self.lazy_commands
        if not lazy.is_loaded(name):
            docstring = lazy.source_docstring(name)
            if docstring is not None:
                return click.Command(name, help=docstring).get_short_help_str(limit)
        command = self.get_command(ctx, name)
        if command is None or command.hidden:
            return None
        return command.get_short_help_str(limit)
