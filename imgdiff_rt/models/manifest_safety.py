"""A bundle's manifest is input like any other file: its shape is checked, every path it names must stay inside
the bundle, and a graph's bytes must match the manifest's sha256 before the runtime uses them.

* Shape: the manifest and its entries are JSON objects, every graph entry names a ``file`` and its
  ``sha256``; anything else is one :class:`ModelError` line (never an AttributeError or KeyError later).
* Paths: every ``file`` and ``path`` is resolved (symlinks followed) and refused when it leaves the bundle
  (``../../etc/passwd``, an absolute path, a link pointing out), so nothing outside is hashed, opened,
  linked into a Triton repository or written by `triton-repo`.
* Hashes: verified on first use and remembered by (file, size, mtime) in ``<cache>/verified-artifacts.json``,
  so a tampered or half-copied graph is refused by `run`, and an unchanged one is hashed once, not per run.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from imgdiff_rt.errors import ImgDiffError, InputError, ModelError
from imgdiff_rt.files import loads_json, read_text_file, write_text_atomic

_SHA256 = re.compile(r"[0-9a-f]{64}")
_CACHE_NAME = "verified-artifacts.json"
_verified: dict[str, tuple[int, int, str]] = {}  # this process's memo: real path -> (size, mtime_ns, sha256)


def read_manifest(file: Path) -> dict:
    """The manifest as a dict, its shape and paths checked; ModelError (one line) otherwise."""
    try:
        manifest = loads_json(read_text_file(file))
    except InputError as e:
        raise ModelError(str(e)) from None
    except ValueError as e:
        raise ModelError(f"{file} cannot be read: {e}") from None
    check_manifest(file.parent, manifest, file)
    return manifest


def _fail(file: Path, problem: str) -> ModelError:
    return ModelError(f"{file}: {problem}; re-export the bundle")


def check_manifest(root: Path, manifest, file: Path) -> None:
    if not isinstance(manifest, dict):
        raise _fail(file, f"the manifest is a JSON {type(manifest).__name__}, not an object")
    entries = manifest.get("entries", {})
    if not isinstance(entries, dict):
        raise _fail(file, f"'entries' is a JSON {type(entries).__name__}, not an object")
    for key, entry in entries.items():
        if not isinstance(entry, dict):
            raise _fail(file, f"entry {key!r} is not an object")
        for field in ("file", "sha256"):
            if not isinstance(entry.get(field), str):
                raise _fail(file, f"entry {key!r} has no {field!r}")
        if not _SHA256.fullmatch(entry["sha256"]):
            raise _fail(file, f"entry {key!r}: sha256 is not 64 hex digits")
        inside(root, entry["file"], f"entry {key!r}")
    from imgdiff_rt.models.bundle import PART_SECTIONS

    for section in PART_SECTIONS:
        records = manifest.get(section, {})
        if not isinstance(records, dict):
            raise _fail(file, f"{section!r} is not an object")
        for family, record in records.items():
            if not isinstance(record, dict):
                raise _fail(file, f"{section}.{family} is not an object")
            for field in ("path", "file"):
                if field in record:
                    if not isinstance(record[field], str):
                        raise _fail(file, f"{section}.{family}.{field} is not a string")
                    inside(root, record[field], f"{section}.{family}")


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


def verified_file(root: Path, entry: dict, key: str) -> Path:
    """The entry's file, after its sha256 matched the manifest once for this (size, mtime)."""
    path = inside(root, entry["file"], f"entry {key!r}")
    try:
        st = os.stat(path)
    except OSError as e:
        raise ModelError(f"bundle {root}: {entry['file']} ({key}) cannot be read: {e.strerror}") from None
    if not os.path.isfile(path):
        raise ModelError(f"bundle {root}: {entry['file']} ({key}) is not a regular file")
    stamp = (st.st_size, st.st_mtime_ns, entry["sha256"])
    real = str(path)
    if _verified.get(real) == stamp:
        return path
    cache = _load_cache()
    if tuple(cache.get(real, ())) != stamp:
        from imgdiff_rt.models.bundle import sha256_file

        if sha256_file(path) != entry["sha256"]:
            raise ModelError(f"bundle {root}: {entry['file']} ({key}) does not match the sha256 in the manifest "
                             "(changed or damaged); re-export or check it with `imgdiff-rt export --check`")
        cache[real] = list(stamp)
        try:
            _cache_file().parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(_cache_file(), json.dumps(cache))
        except (OSError, ImgDiffError):
            pass  # an unwritable cache only costs a re-hash next time
    _verified[real] = stamp
    return path
