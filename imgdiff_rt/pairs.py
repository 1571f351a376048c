"""Batch inputs: where the pairs of a batch come from, as a list of :class:`PairItem`.

Accepted sources (:func:`load_pairs` tells them apart):

- a JSONL file of ``{"id", "left", "right", "truth"?, "ignore"?}`` lines, paths relative to the file (``ignore``:
  the pair's own ignore boxes, as ``--ignore`` takes them or a list of them);
- a Parquet file with the same columns (needs ``pyarrow``, part of ``imgdiff-rt[ray]``);
- ``synth``'s output folder (it holds ``pairs.jsonl``);
- a folder with ``left/`` and ``right/`` of matching names (optionally ``truth/NAME.json`` or a mask);
- the change-detection layout ``A/`` + ``B/`` (+ ``label/`` masks), as LEVIR-CD, DSIFN and CDD ship;
- the CLEVR-Change layout: ``before/`` with ``semantic/`` and/or ``nonsemantic/``.

A pair without truth is legal (``eval`` reports it as unscored); a line or file that cannot describe a pair
becomes an item with ``error`` set, so one bad line costs one pair, not the batch.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from imgdiff_rt.errors import PairsFileError, UsageError
from imgdiff_rt.files import read_text_file
from imgdiff_rt.detectors.ignore import parse_boxes

MAX_PAIRS_FILE_BYTES = 1 << 30  # a million pairs' lines fit several times over

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}
SYNTH_PAIRS_FILE = "pairs.jsonl"  # what `imgdiff-rt synth --out DIR` writes
#: CLEVR-Change gives the kind of change, not where it is: box metrics cannot score its semantic pairs
CLEVR_SEMANTIC_UNSCORED = "CLEVR-Change gives no location for its semantic change"

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class PairItem:
    id: str
    left: Path | None
    right: Path | None
    truth: Path | None = None
    error: str | None = None  # set when the line describing this pair could not be used
    truth_boxes: tuple[Box, ...] | None = None  # truth known from the layout itself (e.g. "no change")
    unscored: str | None = None  # why this pair has no truth, when the source says so
    expects_change: bool = False  # the source says one change is there, not where (CLEVR-Change's semantic pairs)
    ignore: tuple[tuple[float, float, float, float], ...] = ()  # this pair's own ignore boxes (ignore.parse_box)

    @property
    def file_stem(self) -> str:
        return safe_stem(self.id)

    @property
    def has_truth(self) -> bool:
        return self.truth is not None or self.truth_boxes is not None

    def to_row(self) -> dict:
        """Plain types only (for Ray actors and Parquet)."""
        return {"id": self.id, "left": _str(self.left), "right": _str(self.right), "truth": _str(self.truth),
                "error": self.error, "unscored": self.unscored,
                "truth_boxes": None if self.truth_boxes is None else json.dumps(self.truth_boxes),
                "expects_change": self.expects_change,
                "ignore": json.dumps(self.ignore) if self.ignore else None}

    @classmethod
    def from_row(cls, row: dict) -> "PairItem":
        boxes = row.get("truth_boxes")
        return cls(row["id"], _path(row.get("left")), _path(row.get("right")), _path(row.get("truth")),
                   row.get("error"), None if boxes is None else tuple(tuple(b) for b in json.loads(boxes)),
                   row.get("unscored"), bool(row.get("expects_change")),
                   tuple(tuple(b) for b in json.loads(row["ignore"])) if row.get("ignore") else ())


def _str(p: Path | None) -> str | None:
    return None if p is None else str(p)


def _path(s: str | None) -> Path | None:
    return None if s is None else Path(s)


#: what outputs adds to a stem for the pair's change-mask picture; a stem may not end with it
MASK_SUFFIX = "_mask"
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_RESERVED_ENDING = re.compile(r".*(-[0-9a-f]{8}|" + re.escape(MASK_SUFFIX) + ")")


def safe_stem(pair_id: str) -> str:
    """A file name for an id, one-to-one: a short plain id is its own name; any other id (unsafe characters,
    too long, or ending like a hashed name or like another pair's mask picture) gets a cleaned prefix plus 8 hex
    digits of its SHA-256, so ``a/b`` and ``a_b``, or ``日本`` and ``中国``, never share a file."""
    if _SAFE_ID.fullmatch(pair_id) and not _RESERVED_ENDING.fullmatch(pair_id):
        return pair_id
    prefix = re.sub(r"[^A-Za-z0-9._-]", "_", pair_id).lstrip(".")[:80] or "pair"
    digest = hashlib.sha256(pair_id.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{prefix}-{digest}"


def _item_from_record(rec: object, where: str, fallback: str, base: Path) -> PairItem:
    """One pairs-file record (a JSONL line or a Parquet row) -> an item, or an item carrying the error."""
    if not isinstance(rec, dict):
        return PairItem(fallback, None, None, error=f"{where}: malformed pairs line (a line must be a JSON object)")
    raw_id = rec.get("id")
    pair_id = str(raw_id) if raw_id not in (None, "") else fallback
    missing = [k for k in ("left", "right") if not isinstance(rec.get(k), str) or not rec.get(k)]
    if missing:
        return PairItem(pair_id, None, None,
                        error=f"{where}: malformed pairs line (missing {' and '.join(repr(k) for k in missing)})")
    paths = [rec[k] for k in ("left", "right", "truth") if isinstance(rec.get(k), str)]
    if any("\0" in p for p in paths):  # no file system takes it; the pair fails here, not deep in a reader
        return PairItem(pair_id, None, None, error=f"{where}: malformed pairs line (a path holds a NUL byte)")
    truth = base / rec["truth"] if isinstance(rec.get("truth"), str) and rec["truth"] else None
    try:
        ignore = parse_boxes(rec.get("ignore"))
    except UsageError as e:
        return PairItem(pair_id, None, None, error=f"{where}: malformed pairs line ({e})")
    return PairItem(pair_id, base / rec["left"], base / rec["right"], truth, ignore=ignore)


def _unique_ids(entries: list[tuple[PairItem, str, str]]) -> list[PairItem]:
    """``(item, where, fallback)`` -> items whose ids all differ, so that no record file or results line is
    shared: the first good pair with an id keeps it (a later good one fails as a duplicate); a line that failed
    keeps its id only when no pair has it, else it is named ``id@fallback`` (``~2``, ``~3`` if even that is
    taken). The same file gives the same ids on every run, so a resumed batch finds its records."""
    first_good: dict[str, int] = {}
    for i, (item, _, _) in enumerate(entries):
        if item.error is None:
            first_good.setdefault(item.id, i)
    taken = set(first_good)
    out = []
    for i, (item, where, fallback) in enumerate(entries):
        if item.error is None and first_good[item.id] == i:
            out.append(item)
            continue
        new_id, n = (item.id if item.id not in taken else f"{item.id}@{fallback}"), 1
        while new_id in taken:
            n += 1
            new_id = f"{item.id}@{fallback}~{n}"
        taken.add(new_id)
        out.append(PairItem(new_id, None, None, error=item.error or f"{where}: duplicate id {item.id!r}"))
    return out


def _from_jsonl(path: Path) -> list[PairItem]:
    lines = read_text_file(path, PairsFileError, max_bytes=MAX_PAIRS_FILE_BYTES).splitlines()  # no FIFO hang
    entries: list[tuple[PairItem, str, str]] = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where, fallback = f"{path}:{n}", f"line-{n}"
        try:
            rec = json.loads(line)
        except (ValueError, RecursionError) as e:
            entries.append((PairItem(fallback, None, None, error=f"{where}: malformed pairs line ({e})"),
                            where, fallback))
            continue
        entries.append((_item_from_record(rec, where, fallback, path.parent), where, fallback))
    return _unique_ids(entries)


def _from_parquet(path: Path) -> list[PairItem]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise PairsFileError(f"{path}: reading Parquet needs pyarrow (pip install 'imgdiff-rt[ray]')") from None
    try:
        rows = pq.read_table(path).to_pylist()
    except Exception as e:  # pyarrow raises its own error types for every kind of bad file
        raise PairsFileError(f"{path}: cannot read Parquet pairs file ({e})") from None
    return _unique_ids([(_item_from_record(r, f"{path}: row {n}", f"row-{n}", path.parent), f"{path}: row {n}",
                         f"row-{n}") for n, r in enumerate(rows, start=1)])


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _from_two_folders(first: Path, second: Path, truth_dir: Path | None, id_suffix: str = "",
                      truth_boxes: tuple | None = None, unscored: str | None = None,
                      expects_change: bool = False) -> list[PairItem]:
    """Pairs by matching file stem; a first image with no partner is an item with an error."""
    seconds = {p.stem: p for p in _images(second)}
    truths = {}
    if truth_dir is not None and truth_dir.is_dir():
        for t in sorted(truth_dir.iterdir()):
            if t.suffix.lower() in IMAGE_SUFFIXES | {".json"}:
                truths.setdefault(t.stem, t)
    items = []
    for left in _images(first):
        right = seconds.get(left.stem)
        pair_id = left.stem + id_suffix
        if right is None:
            items.append(PairItem(pair_id, left, None, error=f"{second}: no image named {left.stem}.*"))
        else:
            items.append(PairItem(pair_id, left, right, truths.get(left.stem), truth_boxes=truth_boxes,
                                  unscored=unscored, expects_change=expects_change))
    return items


def _from_clevr(path: Path) -> list[PairItem]:
    items = []
    if (path / "semantic").is_dir():
        items += _from_two_folders(path / "before", path / "semantic", None, "-semantic",
                                   unscored=CLEVR_SEMANTIC_UNSCORED, expects_change=True)
    if (path / "nonsemantic").is_dir():  # only camera and light jitter: the truth is "no change"
        items += _from_two_folders(path / "before", path / "nonsemantic", None, "-nonsemantic", truth_boxes=())
    return items


def _from_folder(path: Path) -> list[PairItem]:
    if (path / SYNTH_PAIRS_FILE).is_file():
        return _from_jsonl(path / SYNTH_PAIRS_FILE)
    if (path / "left").is_dir() and (path / "right").is_dir():
        return _from_two_folders(path / "left", path / "right", path / "truth")
    if (path / "A").is_dir() and (path / "B").is_dir():
        return _from_two_folders(path / "A", path / "B", path / "label")
    if (path / "before").is_dir() and ((path / "semantic").is_dir() or (path / "nonsemantic").is_dir()):
        return _from_clevr(path)
    raise PairsFileError(f"{path}: not a pairs folder; expected {SYNTH_PAIRS_FILE}, left/ + right/, A/ + B/ "
                         "(+ label/), or before/ + semantic/ or nonsemantic/")


def load_pairs(path: str | Path) -> list[PairItem]:
    p = Path(path)
    if not p.exists():
        raise PairsFileError(f"{p}: pairs file or folder not found")
    try:
        if p.is_dir():
            items = _from_folder(p)
        elif p.suffix.lower() == ".parquet":
            items = _from_parquet(p)
        else:
            items = _from_jsonl(p)
    except OSError as e:
        raise PairsFileError(f"{p}: cannot read pairs ({e.strerror or e})") from None
    if not items:
        raise PairsFileError(f"{p}: holds no pairs")
    return items
