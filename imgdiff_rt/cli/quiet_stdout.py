"""Keep third-party output off stdout while a command works, so what the command prints there (e.g. --json)
is all there is. Libraries print banners and notes (Ultralytics' settings banner, `Overriding model.yaml`)
through ``print`` or logging handlers that captured ``sys.stdout`` at import: both are sent to stderr, at the
Python level and, for handlers holding the original stream, at the file-descriptor level."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Iterator


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no fd 1 (a detached process): the Python-level redirect still applies
        saved = None
    try:
        if saved is not None:
            os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        if saved is not None:
            os.dup2(saved, 1)
            os.close(saved)
