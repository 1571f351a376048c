"""Files in and out, safely.

In: only regular files are read (a FIFO would block forever, a character device such as /dev/zero never ends),
with a size cap, and JSON nested deeper than Python can parse is a decoding error like any other.
Out: atomic writes (a temp file or folder beside the target, then rename), so a reader (or a resumed batch)
never sees a half-written file, bundle or repository; but a rename never replaces anything that is not a
regular file (a device, a pipe: written in place), a folder is only replaced when imgdiff-rt made it (marker
file), and an output that would overwrite an input is refused before any work starts. An append to a growing
file (a batch's results) lands whole or not at all. A failed write names its file; a full disk is
``DiskFullError``.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator

from imgdiff_rt.errors import DiskFullError, InputError, OutputError

#: written into every folder imgdiff-rt makes as a whole (bundles, Triton repositories, server environments):
#: only a folder holding it (or an empty one) is ever replaced or deleted
MARKER = ".imgdiff-rt-made"
#: text files imgdiff-rt reads (pairs, truth, manifests, configs) are small; anything bigger is refused
MAX_TEXT_BYTES = 64 << 20


def _reason(e: OSError) -> str:
    return e.strerror or str(e)


def write_error(path: str | os.PathLike[str], e: OSError) -> OutputError:
    """The error for a failed write of ``path``: a full disk or quota is :class:`DiskFullError`."""
    cls = DiskFullError if e.errno in (errno.ENOSPC, errno.EDQUOT) else OutputError
    return cls(f"{path}: cannot write ({_reason(e)})")


# ---- reading -------------------------------------------------------------------------------------------
def read_regular_file(path: str | os.PathLike[str], max_bytes: int,
                      error: type[InputError] = InputError, what: str = "a file") -> bytes:
    """The bytes of a regular file of at most ``max_bytes``; ``error`` (one line naming the file) otherwise.
    Opened non-blocking so that a FIFO cannot hang the open itself."""
    name = str(path)
    try:  # the type first: opening a socket or a device may fail (or act) before fstat could tell
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
            raise error(f"{name}: not a regular file (a device, pipe or socket); only files are read")
    except OSError:
        pass  # reported by the open below, with its reason
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise error(f"{name}: file not found") from None
    except IsADirectoryError:
        raise error(f"{name}: is a folder, not {what}") from None
    except OSError as e:
        raise error(f"{name}: cannot read ({_reason(e)})") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise error(f"{name}: is a folder, not {what}")
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{name}: not a regular file (a device, pipe or socket); only files are read")
        if info.st_size > max_bytes:
            raise error(f"{name}: file is {info.st_size / 1e6:.1f} MB, over the {max_bytes / 1e6:g} MB limit")
        chunks, total = [], 0
        while True:  # a file that grows while read is still capped
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:
                raise error(f"{name}: file is over the {max_bytes / 1e6:g} MB limit")
        return b"".join(chunks)
    except OSError as e:
        raise error(f"{name}: cannot read ({_reason(e)})") from None
    finally:
        os.close(fd)


def read_text_file(path: str | os.PathLike[str], error: type[InputError] = InputError,
                   max_bytes: int = MAX_TEXT_BYTES) -> str:
    data = read_regular_file(path, max_bytes, error)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise error(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None


def loads_json(text: str | bytes):
    """``json.loads`` where nesting too deep to parse is a ``json.JSONDecodeError`` (a ValueError), not a
    RecursionError: every caller's "malformed JSON" handling covers it."""
    try:
        return json.loads(text)
    except RecursionError:
        doc = text if isinstance(text, str) else text.decode("utf-8", "replace")
        raise json.JSONDecodeError("nested too deeply to read", doc, 0) from None


# ---- checking outputs before any work ------------------------------------------------------------------
def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _check_name_lengths(p: Path) -> None:
    for part in p.parts:
        if len(os.fsencode(part)) > 255:
            raise OutputError(f"{p}: file name too long ({len(os.fsencode(part))} bytes; the limit is 255)")


def check_output_file(path: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str]] = ()) -> Path:
    """Prove ``path`` can be written as a file, without creating anything: not a folder, not one of
    ``inputs``, a name the file system accepts, and an existing or creatable writable folder above it."""
    p = Path(path)
    _check_name_lengths(p)
    for source in inputs:
        if _same_file(p, Path(source)):
            raise OutputError(f"{p}: output would overwrite the input {source}; choose another output path")
    try:
        info = os.stat(p)
    except FileNotFoundError:
        info = None
    except OSError as e:
        if e.errno == errno.ENOTDIR:
            raise OutputError(f"{p}: cannot be created (a file is in the way)") from None
        raise OutputError(f"{p}: cannot write ({_reason(e)})") from None
    if info is not None and stat.S_ISDIR(info.st_mode):
        raise OutputError(f"{p}: is a folder; give a file path")
    parent = p.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"{p}: cannot be created ({parent} is not a folder)")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{p}: cannot be created ({parent} is not writable)")
    return p


# ---- writing -------------------------------------------------------------------------------------------
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
        raise OutputError(f"{p}: output folder is not writable ({_reason(e)})") from None
    return p


def _write_in_place(p: Path, data: bytes) -> None:
    """A device or pipe the user named (``/dev/null``, ``/dev/stdout``, a FIFO): written, never replaced."""
    try:
        with open(p, "wb", buffering=0) as f:
            f.write(data)
    except OSError as e:
        raise write_error(p, e) from None


#: every byte this module writes goes through this call (a test puts a full disk here)
_os_write = os.write


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[_os_write(fd, view):]


def append_all_or_nothing(fd: int, data: bytes, path: str | os.PathLike[str]) -> None:
    """Append ``data`` to the open file ``fd`` (``path``, for the message) whole or not at all: a write that
    fails midway (a full disk) is cut off again, so the file still ends where a complete line ended."""
    start = os.lseek(fd, 0, os.SEEK_END)
    try:
        _write_all(fd, data)
    except OSError as e:
        try:
            os.ftruncate(fd, start)
        except OSError:
            pass  # the reader's repair (cut_partial_line) covers what cannot be undone here
        raise write_error(path, e) from None


def cut_partial_line(path: str | os.PathLike[str]) -> None:
    """Drop whatever follows the last newline of a text file (what a killed or failed append leaves): cutting
    needs no free space, so it works on a full disk. A missing file is left missing."""
    try:
        with open(path, "rb+") as f:
            size = end = f.seek(0, os.SEEK_END)
            while end > 0:  # back from the end, a block at a time, to the last newline
                start = max(0, end - 65536)
                f.seek(start)
                cut = f.read(end - start).rfind(b"\n")
                if cut >= 0:
                    end = start + cut + 1
                    break
                end = start
            if end != size:
                f.truncate(end)
    except FileNotFoundError:
        pass
    except OSError as e:
        raise write_error(path, e) from None


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    p = Path(path)
    try:
        info = os.stat(p)
    except OSError:
        info = None
    if info is not None and stat.S_ISDIR(info.st_mode):
        raise OutputError(f"{p}: is a folder; give a file path")
    if info is not None and not stat.S_ISREG(info.st_mode):
        return _write_in_place(p, data)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name[:200]}.", suffix=".tmp", dir=p.parent)
    except OSError as e:
        raise write_error(p, e) from None
    try:
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; the result is ordinary user data
        os.replace(tmp, p)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise write_error(p, e) from None
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


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


def made_by_us(folder: Path) -> bool:
    """A folder imgdiff-rt may replace or delete: it holds the marker, or it is empty."""
    return (folder / MARKER).is_file() or not any(folder.iterdir())


def mark_folder(folder: Path, what: str) -> None:
    (folder / MARKER).write_text(f"made by imgdiff-rt: {what}; replaced as a whole when rewritten\n")


@contextmanager
def staged_folder(target: str | os.PathLike[str], what: str,
                  replaceable: Callable[[Path], bool] | None = None) -> Iterator[Path]:
    """Yield an empty folder beside ``target`` to fill; on success it replaces ``target`` by two renames (the
    target is never half-written), on any exception it is deleted and ``target`` stays exactly as it was.
    An existing target is replaced only when imgdiff-rt made it (``MARKER``), it is empty, or
    ``replaceable(target)`` recognises it as ``what`` (folders written before the marker existed)."""
    target = Path(target).expanduser().resolve()
    if target.exists() and not target.is_dir():
        raise OutputError(f"{target} exists and is not a folder; choose another output folder")

    def ours(t: Path) -> bool:
        return made_by_us(t) or (replaceable is not None and replaceable(t))

    if target.is_dir() and not ours(target):  # before any work, and again before the swap
        raise OutputError(f"{target} exists and is not {what} imgdiff-rt made; choose another output folder")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.staging-", dir=target.parent))
    except OSError as e:
        raise OutputError(f"cannot write {what} beside {target}: {e}") from None
    try:
        yield staging
        mark_folder(staging, what)
        if target.exists() and not ours(target):
            raise OutputError(f"{target} exists and is not {what} imgdiff-rt made; choose another output folder")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    os.chmod(staging, 0o755)  # mkdtemp makes it private; the result is ordinary shared data
    retired = target.with_name(f".{target.name}.old-{os.getpid()}")
    if target.exists():
        os.replace(target, retired)
    os.replace(staging, target)
    shutil.rmtree(retired, ignore_errors=True)
