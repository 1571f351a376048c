"""A batch's output folder: the one record writer, the one resume rule and the one settings check that every
engine (the local loop, Ray) shares.

``DIR/<stem>.json`` (eval: ``DIR/pairs/<stem>.json``) is the per-pair record of truth, written atomically and last (after the pair's pictures).
A re-run with the same ``DIR`` skips pairs whose record holds no error. ``DIR/<results>.jsonl`` lists the
finished records: rebuilt from them when the batch starts, appended to as pairs finish (each pair's lines
whole or not at all), rebuilt in input order when it ends. Where a rebuild cannot be written (a full disk), the
file is cut back to its last complete line instead, so it always parses line by line; the record files stay
the truth, and the next run rebuilds it from them. A lock file (with the owner's PID) keeps a second batch out; the batch's settings are recorded so
that resuming with other settings is refused unless forced.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from pathlib import Path
from typing import Iterable

from imgdiff_rt.errors import OutputError, SettingsMismatchError
from imgdiff_rt.files import append_all_or_nothing, cut_partial_line, write_error, write_text_atomic
from imgdiff_rt.writers.pair import make_dir
from imgdiff_rt.pairs import PairItem

LOCK_FILE = ".imgdiff-rt-batch.lock"
SETTINGS_FILE = ".imgdiff-rt-batch.json"
TMP_PATTERN = ".*.tmp"  # what files.write_bytes_atomic leaves behind when it is killed mid-write


def record_status(record: dict | list) -> str:
    """'failed', 'unscored' or 'done'. The resume rule: only a failed pair is computed again."""
    if isinstance(record, dict) and "error" in record:
        return "failed"
    if isinstance(record, dict) and "unscored" in record:
        return "unscored"
    return "done"


def record_lines(record: dict | list) -> list[str]:
    records = record if isinstance(record, list) else [record]
    return [json.dumps(r, ensure_ascii=False) for r in records]


def write_record(out_dir: Path, item: PairItem, record: dict | list) -> None:
    write_text_atomic(out_dir / f"{item.file_stem}.json", json.dumps(record, indent=2, ensure_ascii=False))


def _read_json(path: Path) -> dict | list | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None


def _flatten(d: object, prefix: str = "") -> dict[str, object]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, object] = {}
    for k, v in d.items():
        out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def settings_difference(recorded: dict, current: dict) -> str:
    old, new = _flatten(recorded), _flatten(current)
    keys = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    return ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys[:6]) + (" ..." if len(keys) > 6 else "")


class BatchStore:
    """Use as a context manager: entering creates the folder, takes the lock and removes leftover temp files."""

    def __init__(self, path: str | os.PathLike[str], results_name: str, parquet: bool = False,
                 records_subdir: str = "") -> None:
        self.path = Path(path)
        self.records_dir = self.path / records_subdir  # eval keeps records apart from its summary file
        self.results_name = results_name
        self.parquet = parquet
        self._lock_fd: int | None = None
        self._results: int | None = None  # the results file, open for appending

    # -- lock ----------------------------------------------------------------------------------------------
    def __enter__(self) -> "BatchStore":
        make_dir(self.path)
        self._take_lock()
        make_dir(self.records_dir)
        self.clean_temp_files()
        return self

    def __exit__(self, *exc) -> None:
        self._close_results()
        self.clean_temp_files()
        if self._lock_fd is not None:
            try:
                os.unlink(self.path / LOCK_FILE)
            except OSError:
                pass
            os.close(self._lock_fd)
            self._lock_fd = None

    def _take_lock(self) -> None:
        """flock on DIR/LOCK_FILE: the kernel drops it when its owner dies, so a stale file (dead PID) is simply
        taken over. The inode check covers a file its previous owner unlinked between our open and our lock."""
        lock = self.path / LOCK_FILE
        for _ in range(5):
            try:
                fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                raise OutputError(f"{lock}: cannot create the batch lock ({e.strerror or e})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.read(fd, 200).decode("utf-8", "replace").strip() or "unknown"
                os.close(fd)
                raise OutputError(f"{self.path}: another batch is writing to this folder (pid, host: {holder}); "
                                  "wait for it to end or choose another output folder") from None
            try:
                same = os.fstat(fd).st_ino == os.stat(lock).st_ino
            except OSError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
                self._lock_fd = fd
                return
            os.close(fd)
        raise OutputError(f"{lock}: could not take the batch lock")

    def clean_temp_files(self) -> None:
        """Remove half-written files of an interrupted run (only a lock holder may: no writer is running)."""
        folders = {self.path, self.records_dir}
        for p in (f for folder in folders for f in folder.glob(TMP_PATTERN)):
            if p.is_file() and not p.is_symlink():
                try:
                    p.unlink()
                except OSError:
                    pass

    # -- settings ------------------------------------------------------------------------------------------
    def check_settings(self, settings: dict, force: bool = False, redo: bool = False) -> str | None:
        """Record ``settings``; if the folder was made with others, refuse unless ``force`` or ``redo``.
        Returns a warning line when it went on over a difference."""
        path = self.path / SETTINGS_FILE
        recorded = _read_json(path) if path.exists() else None
        warning = None
        if isinstance(recorded, dict) and recorded != settings and not redo:
            diff = settings_difference(recorded, settings)
            if not force:
                raise SettingsMismatchError(self.path, diff)
            warning = f"warning: {self.path} holds pairs made with other settings ({diff}); kept them (forced)"
        write_text_atomic(path, json.dumps(settings, indent=2, sort_keys=True) + "\n")
        return warning

    # -- records -------------------------------------------------------------------------------------------
    def split(self, items: list[PairItem], redo: bool = False) -> tuple[dict[str, dict | list], list[PairItem]]:
        """(records of pairs already finished, items still to do): the one resume rule."""
        finished: dict[str, dict | list] = {}
        todo: list[PairItem] = []
        for item in items:
            path = self.records_dir / f"{item.file_stem}.json"
            record = None if redo or not path.exists() else _read_json(path)
            if record is not None and record_status(record) != "failed":
                finished[item.id] = record
            else:
                todo.append(item)
        self._rebuild(items, finished)
        target = self.path / self.results_name
        try:
            self._results = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0),
                                    0o666)
        except OSError as e:
            raise write_error(target, e) from None
        return finished, todo

    def add(self, item: PairItem, record: dict | list, write: bool = True) -> None:
        """Keep a finished pair: its record file (unless a worker wrote it already), then its results line(s),
        appended whole or not at all."""
        if write:
            write_record(self.records_dir, item, record)
        if self._results is not None:
            data = "".join(line + "\n" for line in record_lines(record)).encode("utf-8")
            append_all_or_nothing(self._results, data, self.path / self.results_name)

    def finish(self, items: list[PairItem], records: dict[str, dict | list], failing: bool = False) -> None:
        """The final results file. ``failing``: the batch is ending on an error, which is the one to report; a
        rebuild that fails too leaves the appended lines (cut to the last whole one) for the next run."""
        self._close_results()
        try:
            self._rebuild(items, records)
        except OutputError:
            if not failing:
                raise
            return
        if self.parquet:
            self._write_parquet(items, records)

    def _close_results(self) -> None:
        if self._results is not None:
            os.close(self._results)
            self._results = None

    def _rebuild(self, items: Iterable[PairItem], records: dict[str, dict | list]) -> None:
        lines = [line for it in items if it.id in records for line in record_lines(records[it.id])]
        target = self.path / self.results_name
        try:
            write_text_atomic(target, "".join(line + "\n" for line in lines))
        except OutputError:
            cut_partial_line(target)  # no room for a new copy: at least the old one parses line by line
            raise

    def _write_parquet(self, items: list[PairItem], records: dict[str, dict | list]) -> None:
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise OutputError("writing results.parquet needs pyarrow (pip install 'imgdiff-rt[ray]')") from None
        rows = []
        for it in items:
            if it.id in records:
                for line in record_lines(records[it.id]):
                    rec = json.loads(line)
                    rows.append({"id": str(rec.get("id", it.id)), "pair_id": it.id,
                                 "status": record_status(records[it.id]), "record": line})
        target = self.path / (Path(self.results_name).stem + ".parquet")
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        schema = pa.schema([("id", pa.string()), ("pair_id", pa.string()), ("status", pa.string()),
                            ("record", pa.string())])
        try:
            pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp)
            os.replace(tmp, target)
        except OSError as e:  # pyarrow's IO errors are OSErrors too
            tmp.unlink(missing_ok=True)
            raise write_error(target, e) from None
