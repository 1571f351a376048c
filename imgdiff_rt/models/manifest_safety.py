"""The files a bundle's manifest names are input like any other file: every path must stay inside the bundle,
and a graph's bytes must match the manifest's sha256 before the runtime uses them. (The manifest's own shape
is checked where it is parsed, in ``models.manifest``.)

* Paths: every ``file`` and ``path`` is resolved (symlinks followed) and refused when it leaves the bundle
  (``../../etc/passwd``, an absolute path, a link pointing out), so nothing outside is hashed, opened,
  linked into a Triton repository or written by `triton-repo`.
* Hashes: verified on first use and remembered by (file, size, mtime) in ``<cache>/verified-artifacts.json``,
  so a tampered or half-copied graph is refused by `run`, and an unchanged one is hashed once, not per run.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from imgdiff_rt.errors import ImgDiffError, ModelError
from imgdiff_rt.files import loads_json, read_text_file, write_text_atomic

_CACHE_NAME = "verified-artifacts.json"
_verified: dict[str, tuple[int, int, str]] = {}  # this process's memo: real path -> (size, mtime_ns, sha256)


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def inside(root: Path, relpath: str, what: str) -> Path:
    """``root / relpath`` resolved, when it stays inside ``root``; ModelError naming ``what`` otherwise."""
    base = Path(root).resolve()
    if not relpath or Path(relpath).is_absolute() or "\0" in relpath:
        raise ModelError(f"bundle {root}: {what} path {relpath!r} must be relative to the bundle")
    target = (base / relpath).resolve()
    if target != base and base not in target.parents:
        raise ModelError(f"bundle {root}: {what} path {relpath!r} leaves the bundle; refused")
    return target


def _cache_file() -> Path:
    home = os.environ.get("IMGDIFF_RT_HOME")
    return (Path(home) if home else Path.home() / ".cache" / "imgdiff-rt").expanduser() / _CACHE_NAME


def _load_cache() -> dict:
    try:
        data = loads_json(read_text_file(_cache_file(), max_bytes=4 << 20))
        return data if isinstance(data, dict) else {}
    except (ValueError, ImgDiffError):
        return {}


def verified_file(root: Path, relpath: str, sha256: str, key: str) -> Path:
    """The graph file ``relpath`` of entry ``key``, after its sha256 matched ``sha256`` (the manifest's) once for
    this (size, mtime)."""
    path = inside(root, relpath, f"entry {key!r}")
    try:
        st = os.stat(path)
    except OSError as e:
        raise ModelError(f"bundle {root}: {relpath} ({key}) cannot be read: {e.strerror}") from None
    if not os.path.isfile(path):
        raise ModelError(f"bundle {root}: {relpath} ({key}) is not a regular file")
    stamp = (st.st_size, st.st_mtime_ns, sha256)
    real = str(path)
    if _verified.get(real) == stamp:
        return path
    cache = _load_cache()
    if tuple(cache.get(real, ())) != stamp:
        if sha256_file(path) != sha256:
            raise ModelError(f"bundle {root}: {relpath} ({key}) does not match the sha256 in the manifest "
                             "(changed or damaged); re-export or check it with `imgdiff-rt export --check`")
        cache[real] = list(stamp)
        try:
            _cache_file().parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(_cache_file(), json.dumps(cache))
        except (OSError, ImgDiffError):
            pass  # an unwritable cache only costs a re-hash next time
    _verified[real] = stamp
    return path
