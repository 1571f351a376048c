"""A bundle's ``manifest.json``, typed: read, checked and parsed here, once, into frozen records that every
other module uses by attribute (none reads the manifest's JSON itself).

* Shape: the manifest, its ``entries`` and its part sections (``generation``, ``tokenizers``, ``torch``) are
  JSON objects; every graph entry names a ``file`` and its ``sha256`` (64 hex digits); a part's ``path`` or
  ``file`` is a string; the schema is this version's. Anything else is one :class:`ModelError` line (never an
  AttributeError or KeyError later).
* Paths: every ``file`` and ``path`` must stay inside the bundle (``manifest_safety.inside``).
* Forward compatibility: keys this version does not know are kept, never refused, and a descriptive field of
  the wrong JSON type reads as absent. Each record keeps the JSON it was read from, so a record written back
  (a re-export carrying an entry over) is, byte for byte, what was read.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from imgdiff_rt.errors import InputError, ModelError
from imgdiff_rt.files import loads_json, read_text_file
from imgdiff_rt.models.manifest_safety import inside

SCHEMA = "imgdiff-rt/bundle/v1"
MANIFEST = "manifest.json"
#: Manifest sections holding a family's non-graph parts (PyTorch generation files, tokenizers, eager weights).
PART_SECTIONS = ("generation", "tokenizers", "torch")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_frozen = MappingProxyType  # the read-only view every mapping field holds
_EMPTY: Mapping = _frozen({})
_NUM, _TEXT, _FLAG, _INT = (float, int), (str,), (bool,), (int,)  # the JSON types a field accepts


def _no_keys():
    """An empty read-only mapping as a field's default."""
    return field(default_factory=lambda: _EMPTY)


def _fail(where: str | Path, problem: str) -> ModelError:
    return ModelError(f"{where}: {problem}; re-export the bundle")


# ---- lenient readers of descriptive fields: a value of the wrong JSON type reads as absent ---------------
def _obj(value) -> dict:
    return value if isinstance(value, dict) else {}


def _as(value, *types):
    """``value`` when it is one of ``types`` (a JSON true/false is no number), else None."""
    if isinstance(value, bool) and bool not in types:
        return None
    return value if isinstance(value, types) else None


def _record(cls, data, /, **given):
    """``cls`` from the JSON object ``data``: each field named in ``cls._json`` read as its JSON types (else
    None), the ``given`` ones as given; None when ``data`` is not an object."""
    if not isinstance(data, dict):
        return None
    return cls(**{name: _as(data.get(name), *types) for name, types in cls._json.items()}, **given)


# ---- what an entry records ----------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Source:
    """Where a graph's or a part's weights came from."""

    _json = {"family": _TEXT, "id": _TEXT, "revision": _TEXT, "label": _TEXT}
    family: str | None = None
    id: str | None = None
    revision: str | None = None
    weights: str = "unknown"  # pretrained | random-init | tiny | registered-onnx
    label: str | None = None

    @property
    def name(self) -> str | None:
        """What reports show for it: the label, else the id."""
        return self.label or self.id

    @classmethod
    def from_json(cls, raw) -> "Source":
        raw = _obj(raw)
        return _record(cls, raw, weights=_as(raw.get("weights"), str) or "unknown")


@dataclass(frozen=True, kw_only=True)
class OutputCheck:
    """One output tensor compared with its reference (PyTorch, or the fp32 / registered graph)."""

    _json = {"max_abs": _NUM, "min_cosine": _NUM, "ok": _FLAG}
    max_abs: float | None = None
    min_cosine: float | None = None
    ok: bool | None = None


def _checks(raw) -> Mapping[str, OutputCheck]:
    return _frozen({str(k): _record(OutputCheck, r) for k, r in _obj(raw).items() if isinstance(r, dict)})


@dataclass(frozen=True, kw_only=True)
class GenerationCheck:
    """Greedy captions from the graph against the reference's: equal tokens, and the share that agreed."""

    _json = {"exact": _FLAG, "token_agreement": _NUM}
    exact: bool | None = None
    token_agreement: float | None = None


@dataclass(frozen=True, kw_only=True)
class DetectionCheck:
    """A dequantized segmenter's detections matched against the registered graph's."""

    _json = {"matched": _INT, "reference_detections": _INT, "recall": _NUM}
    matched: int | None = None
    reference_detections: int | None = None
    recall: float | None = None


@dataclass(frozen=True, kw_only=True)
class Parity:
    """An fp32 graph's (or engine's) export check: per output, plus captions or detections; or why skipped."""

    _json = {"ok": _FLAG, "device": _TEXT}
    ok: bool | None = None
    skipped: str | None = None
    device: str | None = None
    outputs: Mapping[str, OutputCheck] = _no_keys()
    generation: GenerationCheck | None = None
    detections: DetectionCheck | None = None
    cpu_ms: Mapping[str, float] = _no_keys()  # a dequantized rebuild's CPU time, and the registered graph's

    @classmethod
    def from_json(cls, raw) -> "Parity | None":
        if not isinstance(raw, dict):
            return None
        skipped, cpu_ms = raw.get("skipped"), _obj(raw.get("cpu_ms"))
        return _record(cls, raw, skipped=None if skipped is None else str(skipped), outputs=_checks(raw.get("outputs")),
                       generation=_record(GenerationCheck, raw.get("generation")),
                       detections=_record(DetectionCheck, raw.get("detections")),
                       cpu_ms=_frozen({k: v for k, v in cpu_ms.items() if _as(v, float, int) is not None}))


@dataclass(frozen=True, kw_only=True)
class Accuracy:
    """An int8 graph's cost: its outputs against the fp32 graph's (and a captioner's greedy tokens)."""

    vs_fp32: Mapping[str, OutputCheck] = _no_keys()
    generation: GenerationCheck | None = None

    @classmethod
    def from_json(cls, raw) -> "Accuracy | None":
        if not isinstance(raw, dict):
            return None
        return cls(vs_fp32=_checks(raw.get("vs_fp32")), generation=_record(GenerationCheck, raw.get("generation")))


@dataclass(frozen=True, kw_only=True)
class TensorLayout:
    """An input or output as exported: dtype, and dims (ints for fixed axes, symbol names for dynamic ones)."""

    dtype: str | None = None
    shape: tuple = ()


def _layouts(raw) -> Mapping[str, TensorLayout]:
    return _frozen({str(k): TensorLayout(dtype=_as(r.get("dtype"), str), shape=tuple(_as(r.get("shape"), list) or ()))
                    for k, r in _obj(raw).items() if isinstance(r, dict)})


@dataclass(frozen=True, kw_only=True)
class Registered:
    """What registering a foreign segmenter ONNX as is found in it."""

    _json = {"quantization": _TEXT, "tensorrt_parsable": _FLAG}
    quantization: str | None = None  # e.g. "dynamic-int8"; None for a float graph
    tensorrt_parsable: bool | None = None  # False: ORT-only int8 ops (ConvInteger ...)
    class_names: str | None = None  # the file's "names" metadata, a Python dict literal

    @classmethod
    def from_json(cls, raw) -> "Registered | None":
        if not isinstance(raw, dict) or not raw:
            return None
        return _record(cls, raw, class_names=str(raw["class_names"]) if raw.get("class_names") else None)


@dataclass(frozen=True, kw_only=True)
class Entry:
    """One graph artifact: ``<spec>/<format>-<precision>`` and everything its export recorded."""

    _json = {"bytes": _INT, "opset": _INT, "fingerprint": _TEXT, "dequantized_from": _TEXT}
    key: str
    spec: str
    format: str
    precision: str
    file: str  # relative to the bundle
    sha256: str
    bytes: int | None = None
    opset: int | None = None
    fingerprint: str | None = None  # of the options that produced it: a re-export reuses a current entry
    sizes: Mapping[str, Any] = _no_keys()  # the spec's sizes it was exported with
    inputs: Mapping[str, TensorLayout] = _no_keys()
    outputs: Mapping[str, TensorLayout] = _no_keys()
    tensor_names: Mapping[str, str] = _no_keys()  # spec name -> name in the file (a registered segmenter only)
    source: Source = field(default_factory=Source)
    parity: Parity | None = None
    accuracy: Accuracy | None = None  # int8 graphs
    quantization_kind: str | None = None  # "dynamic-int8", "static-qdq", ... for a quantised graph
    registered: Registered | None = None  # a foreign ONNX registered as is
    dequantized_from: str | None = None  # the entry key of the int8 graph this fp32 graph was rebuilt from
    engine: Mapping[str, Any] | None = None  # a TensorRT engine's build record, handed to its loader as is
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def weights(self) -> str:
        return self.source.weights

    def to_dict(self) -> dict:
        """The entry's JSON as read (unknown keys included), to write into another manifest."""
        return copy.deepcopy(self.raw)

    @classmethod
    def from_json(cls, key: str, raw, root: Path | None = None, where: str | Path = MANIFEST) -> "Entry":
        """The entry ``key`` of a manifest, its shape checked (and its file kept inside ``root`` when given)."""
        if not isinstance(raw, dict):
            raise _fail(where, f"entry {key!r} is not an object")
        for name in ("file", "sha256"):
            if not isinstance(raw.get(name), str):
                raise _fail(where, f"entry {key!r} has no {name!r}")
        if not _SHA256.fullmatch(raw["sha256"]):
            raise _fail(where, f"entry {key!r}: sha256 is not 64 hex digits")
        if root is not None:
            inside(root, raw["file"], f"entry {key!r}")
        engine, names = _obj(raw.get("engine")), _obj(raw.get("tensor_names"))
        return _record(cls, raw, key=key, **{k: _as(raw.get(k), str) or "" for k in ("spec", "format", "precision")},
                       file=raw["file"], sha256=raw["sha256"], sizes=_frozen(dict(_obj(raw.get("sizes")))),
                       inputs=_layouts(raw.get("inputs")), outputs=_layouts(raw.get("outputs")),
                       tensor_names=_frozen({str(k): v for k, v in names.items() if isinstance(v, str)}),
                       source=Source.from_json(raw.get("source")), parity=Parity.from_json(raw.get("parity")),
                       accuracy=Accuracy.from_json(raw.get("accuracy")),
                       registered=Registered.from_json(raw.get("registered")),
                       quantization_kind=_as(_obj(raw.get("quantization")).get("kind"), str),
                       engine=_frozen(engine) if engine else None, raw=raw)


# ---- a family's non-graph parts -----------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Part:
    """A family's non-graph part, in section ``section``: files inside the bundle (a ``path`` folder or a
    ``file``), or a place outside it that is loaded as is (``load_from``: a pretrained folder or hub id)."""

    _json = {"path": _TEXT, "file": _TEXT, "load_from": _TEXT, "revision": _TEXT, "weights": _TEXT,
             "model_class": _TEXT}
    section: str
    family: str
    path: str | None = None
    file: str | None = None
    load_from: str | None = None
    revision: str | None = None
    weights: str | None = None
    model_class: str | None = None
    source: Source = field(default_factory=Source)
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def relpath(self) -> str | None:
        """What of the bundle this part holds (a folder or a file), None when it is loaded from outside."""
        return self.path or self.file

    def to_dict(self) -> dict:
        """The part's JSON as read (unknown keys included), to write into another manifest."""
        return copy.deepcopy(self.raw)


@dataclass(frozen=True, kw_only=True)
class GenerationPart(Part):
    """A captioner's PyTorch generation files (decoder, tokenizer, processor)."""

    tokenizer_synthetic: bool = False
    files: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class TokenizerPart(Part):
    """A family's tokenizer folder; ``synthetic``: placeholder words of random weights, meaning nothing."""

    synthetic: bool = False


@dataclass(frozen=True, kw_only=True)
class SegmenterBuild:
    """How the `torch` backend rebuilds the segmenter's architecture before loading its saved weights."""

    _json = {"source": _TEXT, "architecture": _TEXT, "tiny": _FLAG}
    source: str | None = None
    architecture: str | None = None
    tiny: bool | None = None


@dataclass(frozen=True, kw_only=True)
class TorchPart(Part):
    """What the `torch` backend rebuilds a family's eager module from (``build``: the segmenter's)."""

    build: SegmenterBuild | None = None


def _part(section: str, family: str, raw, root: Path | None, where: str | Path) -> Part:
    if not isinstance(raw, dict):
        raise _fail(where, f"{section}.{family} is not an object")
    for name in ("path", "file"):
        if name in raw:
            if not isinstance(raw[name], str):
                raise _fail(where, f"{section}.{family}.{name} is not a string")
            if root is not None:
                inside(root, raw[name], f"{section}.{family}")
    common = dict(section=section, family=family, source=Source.from_json(raw.get("source")), raw=raw)
    if section == "generation":
        files = [f for f in (_as(raw.get("files"), list) or ()) if isinstance(f, str)]
        return _record(GenerationPart, raw, **common, files=tuple(files),
                       tokenizer_synthetic=bool(_as(raw.get("tokenizer_synthetic"), bool)))
    if section == "tokenizers":
        return _record(TokenizerPart, raw, **common, synthetic=bool(_as(raw.get("synthetic"), bool)))
    return _record(TorchPart, raw, **common, build=_record(SegmenterBuild, raw.get("info")))


# ---- the manifest ---------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Manifest:
    """The whole manifest: graph entries by key, and each family's parts by section."""

    _json = {"imgdiff_rt_version": _TEXT, "created": _TEXT, "export_seconds": _NUM}
    schema: str
    imgdiff_rt_version: str | None = None
    created: str | None = None
    export_seconds: float | None = None
    options: Mapping[str, Any] = _no_keys()  # the export options that built it
    libraries: Mapping[str, str] = _no_keys()  # library versions at export
    entries: Mapping[str, Entry] = _no_keys()
    generation: Mapping[str, GenerationPart] = _no_keys()
    tokenizers: Mapping[str, TokenizerPart] = _no_keys()
    torch: Mapping[str, TorchPart] = _no_keys()
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    def section(self, name: str) -> Mapping[str, Part]:
        """The parts of section ``name`` (one of PART_SECTIONS) by family."""
        return {"generation": self.generation, "tokenizers": self.tokenizers, "torch": self.torch}[name]

    def parts(self, family: str) -> dict[str, Part]:
        """{section: part} of ``family``'s non-graph parts."""
        return {s: self.section(s)[family] for s in PART_SECTIONS if family in self.section(s)}

    def to_dict(self) -> dict:
        """The manifest's JSON as read (unknown keys included)."""
        return copy.deepcopy(self.raw)

    def to_json(self) -> str:
        """The text of ``manifest.json``, as the exporter writes it."""
        return json.dumps(self.raw, indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_json(cls, data, root: Path | None = None, where: str | Path = MANIFEST) -> "Manifest":
        """``data`` (a parsed JSON document) checked and typed; with ``root``, every path it names is kept
        inside that folder. ModelError naming ``where`` on the first problem."""
        if not isinstance(data, dict):
            raise _fail(where, f"the manifest is a JSON {type(data).__name__}, not an object")
        data = copy.deepcopy(data)
        entries = data.get("entries", {})
        if not isinstance(entries, dict):
            raise _fail(where, f"'entries' is a JSON {type(entries).__name__}, not an object")
        typed = {key: Entry.from_json(key, raw, root, where) for key, raw in entries.items()}
        sections = {}
        for section in PART_SECTIONS:
            records = data.get(section, {})
            if not isinstance(records, dict):
                raise _fail(where, f"{section!r} is not an object")
            sections[section] = _frozen({family: _part(section, family, raw, root, where)
                                         for family, raw in records.items()})
        if data.get("schema") != SCHEMA:
            raise _fail(where, f"schema {data.get('schema')!r} is not {SCHEMA!r}")
        libraries = {k: v for k, v in _obj(data.get("libraries")).items() if isinstance(v, str)}
        return _record(cls, data, schema=SCHEMA, options=_frozen(_obj(data.get("options"))),
                       libraries=_frozen(libraries), entries=_frozen(typed), **sections, raw=data)


def load_manifest(file: Path) -> Manifest:
    """``file`` read and typed, its paths kept inside its folder; ModelError (one line) otherwise."""
    try:
        data = loads_json(read_text_file(file))
    except InputError as e:
        raise ModelError(str(e)) from None
    except ValueError as e:
        raise ModelError(f"{file} cannot be read: {e}") from None
    return Manifest.from_json(data, file.parent, file)
