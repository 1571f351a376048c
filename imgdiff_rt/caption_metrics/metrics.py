"""Caption quality metrics the way difference-captioning papers report them: BLEU-1..4, METEOR, ROUGE-L and
CIDEr-D from ``pycocoevalcap`` over PTB-tokenised text (SPICE only where its CoreNLP models are installed).

The PTB tokenizer and METEOR are Java programs; :func:`score_many` scores several prediction/reference sets
with one tokenizer run and one METEOR process, because starting METEOR alone costs ~10 s.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imgdiff_rt.errors import InputError, ModelError, UsageError
from imgdiff_rt.result import SCHEMA as RESULT_SCHEMA

METRICS = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr-D")
FIELDS = ("description", "region")  # the pair's summary sentence, or the first region's sentence
_IMAGE_SUFFIX = re.compile(r"\.(png|jpe?g|bmp|gif|webp|tiff?)$", re.IGNORECASE)
_SENTINEL = "zzimgdiffsentinel"  # last tokenizer line: proves no input line was split or merged


def normalise_id(raw: Any) -> str:
    """Ids match across files after str(), trimming, and dropping an image suffix ('256.png' == '256')."""
    return _IMAGE_SUFFIX.sub("", str(raw).strip())


# ---------------------------------------------------------------- loading


@dataclass(frozen=True)
class Predictions:
    captions: dict[str, str]  # id -> raw caption ('' where the record has none)
    failed: tuple[str, ...] = ()  # ids whose record carries an `error` (scored as empty captions)


def _read_text(path: str | Path, what: str) -> str:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: {what} file {'is a folder' if p.is_dir() else 'not found'}")
    try:
        return p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{p}: cannot read {what} file ({e})") from None


def _caption_text(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InputError(f"{where}: caption must be a string, got {type(value).__name__}")
    return value


def _record_caption(rec: dict, field_name: str, where: str) -> str:
    if "caption" in rec and "regions" not in rec:
        return _caption_text(rec["caption"], where)
    if rec.get("schema") != RESULT_SCHEMA and "regions" not in rec:
        raise InputError(f"{where}: neither a result record (schema {RESULT_SCHEMA}) nor an "
                         '{"id", "caption"} record')
    if field_name == "description":
        return _caption_text(rec.get("description"), where)
    regions = rec.get("regions") or []
    if not isinstance(regions, list) or (regions and not isinstance(regions[0], dict)):
        raise InputError(f"{where}: 'regions' must be a list of objects")
    return _caption_text(regions[0].get("description"), where) if regions else ""


def load_predictions(path: str | Path, field_name: str = "description") -> Predictions:
    """``results.jsonl`` from ``imgdiff-rt run --pairs``, a JSONL of ``{"id", "caption"}``, or a COCO results
    JSON list of ``{"image_id", "caption"}``. ``field_name`` picks a result record's text (see FIELDS)."""
    if field_name not in FIELDS:
        raise UsageError(f"unknown caption field {field_name!r} (choose from {', '.join(FIELDS)})")
    text = _read_text(path, "prediction")
    if text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except ValueError as e:
            raise InputError(f"{path}: not valid JSON ({e})") from None
        numbered = [(f"{path}: item {i}", r) for i, r in enumerate(rows)]
    else:
        numbered = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    numbered.append((f"{path}:{n}", json.loads(line)))
                except ValueError as e:
                    raise InputError(f"{path}:{n}: not valid JSON ({e})") from None
    if not numbered:
        raise InputError(f"{path}: no prediction records")
    captions: dict[str, str] = {}
    seen_at: dict[str, str] = {}
    failed = []
    for where, rec in numbered:
        if not isinstance(rec, dict):
            raise InputError(f"{where}: expected a JSON object, got {type(rec).__name__}")
        raw_id = rec.get("id", rec.get("image_id"))
        if raw_id is None or not str(raw_id).strip():
            raise InputError(f"{where}: record has no 'id'")
        key = normalise_id(raw_id)
        if key in seen_at:
            raise InputError(f"{where}: duplicate id {key!r} (first at {seen_at[key]})")
        seen_at[key] = where
        if rec.get("error") is not None:  # a failed pair scores as an empty caption, not as absent
            failed.append(key)
            captions[key] = ""
        else:
            captions[key] = _record_caption(rec, field_name, where)
    return Predictions(captions, tuple(failed))


def load_references(path: str | Path) -> dict[str, list[str]]:
    """A COCO caption file (``annotations`` of ``{image_id, caption}``) or a JSON list of ``{img_id,
    sentences}``. All sentences of an id are its references (Spot-the-Diff lists one per difference, and an
    id may appear once per annotator), in file order."""
    text = _read_text(path, "reference")
    try:
        data = json.loads(text)
    except ValueError as e:
        raise InputError(f"{path}: not valid JSON ({e})") from None
    refs: dict[str, list[str]] = {}
    if isinstance(data, dict) and isinstance(data.get("annotations"), list):
        for i, ann in enumerate(data["annotations"]):
            if not isinstance(ann, dict) or "image_id" not in ann or "caption" not in ann:
                raise InputError(f"{path}: annotations[{i}] lacks 'image_id' or 'caption'")
            cap = _caption_text(ann["caption"], f"{path}: annotations[{i}]")
            refs.setdefault(normalise_id(ann["image_id"]), []).append(cap)
    elif isinstance(data, list) and all(isinstance(r, dict) and "sentences" in r for r in data) and data:
        for i, row in enumerate(data):
            raw_id = row.get("img_id", row.get("image_id", row.get("id")))
            if raw_id is None or not isinstance(row["sentences"], list):
                raise InputError(f"{path}: item {i} needs 'img_id' and a 'sentences' list")
            caps = [_caption_text(s, f"{path}: item {i}") for s in row["sentences"]]
            refs.setdefault(normalise_id(raw_id), []).extend(caps)
    else:
        raise InputError(f"{path}: not a COCO caption file (with 'annotations') nor a JSON list of "
                         "{img_id, sentences}")
    if not refs:
        raise InputError(f"{path}: no reference captions")
    return refs


# ---------------------------------------------------------------- Java scorers


def spice_status() -> tuple[bool, str]:
    """(usable, reason). Checked from files only: pycocoevalcap's Spice() would download CoreNLP (~1 GB)."""
    lib = Path(_package_dir()) / "spice" / "lib"
    needed = [lib / "stanford-corenlp-3.6.0.jar", lib / "stanford-corenlp-3.6.0-models.jar"]
    missing = [p.name for p in needed if not p.is_file()]
    if missing or not (lib.parent / "spice-1.0.jar").is_file():
        return False, (f"its Stanford CoreNLP models are not installed ({', '.join(missing)} "
                       f"missing in {lib}); pycocoevalcap would download them on first use")
    if shutil.which("java") is None:
        return False, "java is not on PATH"
    return True, "installed"


def _package_dir() -> str:
    try:
        from pycocoevalcap.tokenizer import ptbtokenizer
    except ImportError:
        raise ModelError("pycocoevalcap is not installed: pip install 'pycocoevalcap>=1.2'") from None
    return str(Path(ptbtokenizer.__file__).resolve().parents[1])


def _require_java() -> None:
    _package_dir()
    if shutil.which("java") is None:
        raise ModelError("java is not on PATH: the PTB tokenizer and METEOR (pycocoevalcap) need Java 8+")


def _one_line(text: str) -> str:
    # Java's tokenizer also breaks lines at \f, \x85, \u2028...; a split line would shift every later caption.
    return " ".join("".join(" " if ord(c) < 32 else c for c in part) for part in text.splitlines())


def tokenize(texts: Sequence[str]) -> dict[str, str]:
    """PTB-tokenise (lower-cased, punctuation dropped) every distinct text in one Java run."""
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    unique = sorted({t for t in texts if t.strip()})
    batch = {str(i): [{"caption": _one_line(t)}] for i, t in enumerate(unique)}
    batch["sentinel"] = [{"caption": _SENTINEL}]
    try:
        out = PTBTokenizer().tokenize(batch)
    except (OSError, subprocess.SubprocessError) as e:
        raise ModelError(f"the PTB tokenizer (Java) failed to run: {e}") from None
    if out.get("sentinel") != [_SENTINEL] or any(len(out.get(str(i), ())) != 1 for i in range(len(unique))):
        raise ModelError("the PTB tokenizer returned misaligned lines (a caption was split or dropped)")
    tokens = {t: out[str(i)][0].strip() for i, t in enumerate(unique)}
    return {t: tokens.get(t, "") for t in texts}


class _MeteorProcess:
    """pycocoevalcap's METEOR wrapper, closed deterministically and with a readable error if Java dies."""

    def __init__(self) -> None:
        from pycocoevalcap.meteor.meteor import Meteor

        try:
            self.meteor = Meteor()
        except OSError as e:
            raise ModelError(f"METEOR (Java) failed to start: {e}") from None

    def score(self, gts: dict[str, list[str]], res: dict[str, list[str]]) -> tuple[float, list[float]]:
        try:
            score, scores = self.meteor.compute_score(gts, res)
        except (ValueError, OSError) as e:  # an empty line back means the Java process died
            self.close()
            err = self.meteor.meteor_p.stderr.read().decode(errors="replace").strip()
            raise ModelError(f"METEOR (Java) failed: {e} {err[-500:]}") from None
        return float(score), [float(s) for s in scores]

    def close(self) -> None:
        p = self.meteor.meteor_p
        if self.meteor.lock.locked():  # left held by a failed compute_score; its __del__ would wait forever
            self.meteor.lock.release()
        p.stdin.close()
        p.kill()
        p.wait()


# ---------------------------------------------------------------- scoring


@dataclass
class CaptionReport:
    """Scores over the ids present in both predictions and references, and what was left out and why."""

    metrics: dict[str, float]
    scored_ids: list[str]
    per_item: dict[str, dict[str, float]]
    missing_in_refs: list[str]  # predicted ids without a (non-empty) reference
    missing_in_pred: list[str]  # referenced ids without a prediction
    empty_predictions: list[str]  # scored ids whose caption is empty after tokenisation: they score 0
    empty_references_dropped: int  # reference sentences empty after tokenisation (they carry nothing)
    spice: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "metrics": self.metrics,
            "scope": (f"scores are computed over the {len(self.scored_ids)} ids present in both files; "
                      f"{len(self.missing_in_refs)} predicted ids have no reference and "
                      f"{len(self.missing_in_pred)} referenced ids have no prediction"),
            "counts": {"scored": len(self.scored_ids), "missing_in_refs": len(self.missing_in_refs),
                       "missing_in_pred": len(self.missing_in_pred),
                       "empty_predictions": len(self.empty_predictions),
                       "empty_references_dropped": self.empty_references_dropped},
            "missing_in_refs": self.missing_in_refs,
            "missing_in_pred": self.missing_in_pred,
            "empty_predictions": self.empty_predictions,
            "spice": self.spice,
            "per_item": self.per_item,
        }


Job = tuple[Mapping[str, str], Mapping[str, Sequence[str]]]  # (id -> prediction, id -> references)


def score_many(jobs: Mapping[str, Job], spice: bool | None = None) -> dict[str, CaptionReport]:
    """Score each (predictions, references) job with one tokenizer run and one METEOR process.

    ``spice``: None runs SPICE only where its models are installed, False never, True requires it."""
    for name, (preds, refs) in jobs.items():  # cheap check before any Java starts
        if not any(any(s.strip() for s in refs.get(i, ())) for i in preds):
            raise InputError(f"{name}: no id is present in both predictions and references (predictions e.g. "
                             f"{sorted(preds)[:3]}, references e.g. {sorted(refs)[:3]})")
    spice_ok, spice_reason = spice_status()
    if spice and not spice_ok:
        raise UsageError(f"SPICE was asked for but {spice_reason}")
    _require_java()
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    run_spice = spice_ok and spice is not False
    texts = [t for preds, refs in jobs.values() for t in preds.values()]
    texts += [s for _, refs in jobs.values() for r in refs.values() for s in r]
    tok = tokenize(texts)
    meteor = _MeteorProcess()
    try:
        reports = {}
        for name, (preds, refs) in jobs.items():
            report, gts, res = _prepare(preds, refs, tok, name)
            bleu, bleu_items = Bleu(4).compute_score(gts, res, verbose=0)
            meteor_all, meteor_items = meteor.score(gts, res)
            _, rouge_items = Rouge().compute_score(gts, res)
            _, cider_items = Cider().compute_score(gts, res)
            columns = {**{f"BLEU-{n + 1}": bleu_items[n] for n in range(4)}, "METEOR": meteor_items,
                       "ROUGE-L": list(rouge_items), "CIDEr-D": list(cider_items)}
            if run_spice:
                columns.update(_spice_column(gts, res, report))
            empty = set(report.empty_predictions)
            report.per_item = {i: {m: 0.0 if i in empty else float(col[k]) for m, col in columns.items()}
                               for k, i in enumerate(report.scored_ids)}
            # BLEU and METEOR are corpus statistics (an empty caption still counts its reference length);
            # the others are means over items.
            report.metrics = {**{f"BLEU-{n + 1}": float(bleu[n]) for n in range(4)}, "METEOR": meteor_all}
            for m in ("ROUGE-L", "CIDEr-D", "SPICE"):
                if m in columns:
                    vals = [report.per_item[i][m] for i in report.scored_ids]
                    report.metrics[m] = float(sum(vals) / len(vals))
            if not run_spice:
                report.spice = {"status": "skipped", "reason": spice_reason if not spice_ok else "disabled"}
            reports[name] = report
        return reports
    finally:
        meteor.close()


def _prepare(preds: Mapping[str, str], refs: Mapping[str, Sequence[str]], tok: Mapping[str, str],
             name: str) -> tuple[CaptionReport, dict[str, list[str]], dict[str, list[str]]]:
    usable_refs = {i: [tok[s] for s in r if tok[s]] for i, r in refs.items()}
    dropped = sum(len(r) for r in refs.values()) - sum(len(r) for r in usable_refs.values())
    usable_refs = {i: r for i, r in usable_refs.items() if r}
    scored = sorted((i for i in preds if i in usable_refs), key=_natural)
    if not scored:  # every shared id's references tokenise to nothing (e.g. only punctuation)
        raise InputError(f"{name}: no id with a non-empty reference is present in both files")
    report = CaptionReport(
        metrics={}, scored_ids=scored, per_item={},
        missing_in_refs=sorted((i for i in preds if i not in usable_refs), key=_natural),
        missing_in_pred=sorted((i for i in refs if i not in preds), key=_natural),
        empty_predictions=[i for i in scored if not tok[preds[i]]],
        empty_references_dropped=dropped,
    )
    gts = {i: usable_refs[i] for i in scored}
    res = {i: [tok[preds[i]]] for i in scored}
    return report, gts, res


def _spice_column(gts: dict, res: dict, report: CaptionReport) -> dict[str, list[float]]:
    from pycocoevalcap.spice.spice import Spice

    try:
        _, items = Spice().compute_score(gts, res)
    except (OSError, subprocess.SubprocessError, ValueError) as e:
        report.spice = {"status": "failed", "reason": f"SPICE (Java) failed: {e}"}
        return {}
    report.spice = {"status": "computed"}
    by_id = dict(zip(sorted(gts), (float(s["All"]["f"]) for s in items), strict=True))  # Spice sorts ids
    f_scores = [by_id[i] for i in gts]
    return {"SPICE": [0.0 if math.isnan(f) else f for f in f_scores]}  # NaN: nothing parsed, nothing matched


def _natural(key: str) -> tuple:
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", key))


def evaluate_captions(preds: Predictions, refs: Mapping[str, Sequence[str]], spice: bool | None = None,
                      source: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The whole ``eval-captions`` JSON document: scores, what was left out, and ``source`` (paths, field)."""
    name = str((source or {}).get("pred", "predictions"))
    report = score_many({name: (preds.captions, refs)}, spice=spice)[name]
    doc: dict[str, Any] = {"schema": "imgdiff-rt/caption-metrics/v1", **(source or {}),
                           "tokenizer": "PTB (pycocoevalcap; lower-cased, punctuation removed)"}
    doc.update(report.to_dict())
    doc["counts"]["failed_predictions"] = len(preds.failed)
    doc["failed_predictions"] = list(preds.failed)
    return doc
