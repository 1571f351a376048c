"""Atomic writes: a temp file (or folder) beside the target, then rename, so a reader (or a resumed batch)
never sees a half-written file, bundle or repository."""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from .errors import OutputError


def ensure_writable_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` if needed and prove it is writable before any work starts (no partial output)."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise OutputError(f"{p}: output path exists and is not a folder")
    try:
        p.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=p)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise OutputError(f"{p}: output folder is not writable ({e.strerror or e})") from None
    return p


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    p = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    except OSError as e:
        raise OutputError(f"{p}: cannot write ({e.strerror or e})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def link_or_copy(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """Hard-link ``src`` to ``dst`` (big model files are not duplicated), copying across file systems."""
    src, dst = Path(src), Path(dst)
    if dst.exists() and os.path.samefile(src, dst):
        return  # already there (two manifest sections may share a folder)
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


@contextmanager
def staged_folder(target: str | os.PathLike[str], what: str,
                  replaceable: Callable[[Path], bool] | None = None) -> Iterator[Path]:
    """Yield an empty folder beside ``target`` to fill; on success it replaces ``target`` by two renames (the
    target is never half-written), on any exception it is deleted and ``target`` stays exactly as it was.
    ``replaceable(target)`` guards an existing target that is not ``what`` (e.g. a user's unrelated folder)."""
    target = Path(target).expanduser().resolve()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.staging-", dir=target.parent))
    except OSError as e:
        raise OutputError(f"cannot write {what} beside {target}: {e}") from None
    try:
        yield staging
        if target.exists() and replaceable is not None and not replaceable(target):
            raise OutputError(f"{target} exists and is not {what}; choose another output folder")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    os.chmod(staging, 0o755)  # mkdtemp makes it private; the result is ordinary shared data
    retired = target.with_name(f".{target.name}.old-{os.getpid()}")
    if target.exists():
        os.replace(target, retired)
    os.replace(staging, target)
    shutil.rmtree(retired, ignore_errors=True)
