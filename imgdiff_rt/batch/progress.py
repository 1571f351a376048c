"""Batch progress on stderr: a bar with count, rate and ETA on a terminal, plain lines otherwise (logs, CI): one
at the start, one every few seconds, one at the end, so even a short batch shows what it did; nothing when quiet. The rate counts only pairs computed in this run (not the ones a
resumed batch skipped), from the first one on, so start-up (models, a Ray cluster) does not skew the ETA."""

from __future__ import annotations

import sys
import time
from typing import TextIO

PLAIN_EVERY_S = 10.0
#: records arriving this soon after the first came with it (a Ray task returns several at once): the rate counts
#: from the first record on, without them, over at least MIN_RATE_WINDOW_S, so a burst never reads as a speed
FIRST_BURST_S = 0.05
MIN_RATE_WINDOW_S = 0.2
MODES = ("auto", "bar", "lines", "quiet")


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class Progress:
    def __init__(self, total: int, already: int = 0, mode: str = "auto", stream: TextIO | None = None,
                 label: str = "pairs") -> None:
        self.stream = stream if stream is not None else sys.stderr
        if mode == "auto":
            mode = "bar" if getattr(self.stream, "isatty", lambda: False)() else "lines"
        self.mode, self.total, self.already, self.label = mode, total, already, label
        self.computed = 0
        self._first: float | None = None  # when the first pair of this run finished
        self._burst = 0  # pairs that finished with the first one
        self._rate_shown = False  # a plain line has shown a rate
        self._last_line = time.monotonic()
        self._last_shown: int | None = None  # the count the last plain line showed
        self._bar = None

    @property
    def finished(self) -> int:
        return self.already + self.computed

    def rate(self) -> float | None:
        if self._first is None or self.computed <= self._burst:
            return None
        elapsed = time.monotonic() - self._first
        return (self.computed - self._burst) / elapsed if elapsed >= MIN_RATE_WINDOW_S else None

    def eta_s(self) -> float | None:
        rate = self.rate()
        return (self.total - self.finished) / rate if rate else None

    def line(self) -> str:
        pct = 100.0 * self.finished / self.total if self.total else 100.0
        rate = self.rate()
        return (f"{self.label} {self.finished}/{self.total} ({pct:.0f}%), "
                f"{'?' if rate is None else format(rate, '.2f')} {self.label}/s, ETA {_clock(self.eta_s())}")

    def __enter__(self) -> "Progress":
        if self.mode == "bar":
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn,
                                       TimeRemainingColumn)

            self._bar = RichProgress(TextColumn(self.label), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[rate]}"), TextColumn("ETA"), TimeRemainingColumn(),
                                     console=Console(file=self.stream), transient=False)
            self._bar.start()
            self._task = self._bar.add_task(self.label, total=self.total, completed=self.already, rate="")
        elif self.mode == "lines":
            self._print_line()
        return self

    def advance(self) -> None:
        self.computed += 1
        if self._first is None:
            self._first = time.monotonic()
        if time.monotonic() - self._first < FIRST_BURST_S:
            self._burst += 1
        if self._bar is not None:
            rate = self.rate()
            self._bar.update(self._task, completed=self.finished,
                             rate=f"{'?' if rate is None else format(rate, '.2f')} {self.label}/s")
        elif self.mode == "lines" and (time.monotonic() - self._last_line >= PLAIN_EVERY_S
                                       or (not self._rate_shown and self.rate() is not None)):
            self._print_line()  # every few seconds, and as soon as a rate is known (after start-up)

    def _print_line(self) -> None:
        self._last_line, self._last_shown = time.monotonic(), self.finished
        self._rate_shown = self._rate_shown or self.rate() is not None
        print(self.line(), file=self.stream, flush=True)

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        elif self.mode == "lines" and self._last_shown != self.finished:
            self._print_line()  # where the batch ended, unless the last line already said it
