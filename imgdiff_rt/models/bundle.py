"""The versioned model bundle: ``manifest.json`` + artifacts, written atomically, and the reader the runtime uses.

Layout::

    DIR/manifest.json            schema "imgdiff-rt/bundle/v1"
    DIR/onnx/<spec>.<precision>.onnx
    DIR/engines/<spec>.<precision>.engine
    DIR/<family>/                tokenizer / processor / decoder weights PyTorch generation needs

Entries are keyed ``"<spec>/<format>-<precision>"`` (e.g. ``"clip_image/onnx-fp32"``). Each records the
spec name, file, sha256, opset, input/output shapes, precision, source (id + revision, or "random-init" /
"tiny"), parity figures, library versions, export time and a ``fingerprint`` of the options that produced
it: a re-export reuses entries whose fingerprint and hash are unchanged. The manifest is read, checked and
typed in ``models.manifest``; everything here and above uses its records by attribute.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Mapping

from imgdiff_rt import __version__
from imgdiff_rt.errors import BundleNotFoundError, ModelError, UsageError
from imgdiff_rt.files import link_or_copy, staged_folder
# MANIFEST, SCHEMA and sha256_file are also imported from here by callers, as the bundle's names
from imgdiff_rt.models.manifest import (MANIFEST, PART_SECTIONS, SCHEMA, Entry, GenerationPart,  # noqa: F401
                                        Manifest, Part, TokenizerPart, load_manifest)
from imgdiff_rt.models.manifest_safety import sha256_file, verified_file
from imgdiff_rt.models.specs import ModelSpec, get_spec

_LIBRARIES = ("torch", "torchvision", "transformers", "onnx", "onnxruntime", "onnxruntime-gpu", "onnxslim",
              "onnxscript", "ultralytics", "tensorrt", "numpy")


def default_bundle_dir() -> Path:
    """``$IMGDIFF_RT_HOME/models``, else ``~/.cache/imgdiff-rt/models``."""
    home = os.environ.get("IMGDIFF_RT_HOME")
    return (Path(home) if home else Path.home() / ".cache" / "imgdiff-rt").expanduser() / "models"


def require_bundle(models: str | Path | None, needed_by: str) -> Path:
    """The bundle folder ``needed_by`` (e.g. "detector 'segment'") asked for; the one UsageError, naming the
    ``models`` parameter, when none was given."""
    if models is None:
        raise UsageError(f"{needed_by} needs a model bundle (models); create one with `imgdiff-rt export --out DIR`",
                         parameter="models")
    return Path(models).expanduser()


def entry_key(spec_name: str, fmt: str, precision: str) -> str:
    return f"{spec_name}/{fmt}-{precision}"


def artifact_relpath(spec_name: str, fmt: str, precision: str) -> str:
    """Where an artifact lives inside the bundle."""
    return f"onnx/{spec_name}.{precision}.onnx" if fmt == "onnx" else f"engines/{spec_name}.{precision}.engine"


def fingerprint(**options) -> str:
    """A short stable hash of the options that determine an artifact (plus the imgdiff-rt version)."""
    blob = json.dumps({**options, "imgdiff_rt": __version__}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def library_versions(names: tuple[str, ...] = _LIBRARIES) -> dict[str, str]:
    """Installed versions of ``names`` (absent packages are left out)."""
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def tensor_layout(spec: ModelSpec) -> dict:
    """{"inputs": {name: {dtype, shape}}, "outputs": {...}} with symbolic dims kept as their names."""
    def rows(tensors):
        return {t.name: {"dtype": t.dtype, "shape": list(t.dims)} for t in tensors}

    return {"inputs": rows(spec.inputs), "outputs": rows(spec.outputs)}


# ---- reading -------------------------------------------------------------------------------------------
@dataclass
class Bundle:
    """A bundle on disk: ``Bundle.load(dir)``, then ``entry()``, ``path()``, ``spec()`` for the runtime. Its
    ``manifest`` is the typed :class:`~imgdiff_rt.models.manifest.Manifest`."""

    root: Path
    manifest: Manifest

    @classmethod
    def load(cls, root: str | Path) -> "Bundle":
        root = Path(root).expanduser()
        file = root / MANIFEST
        if not file.is_file():
            raise BundleNotFoundError(
                f"no model bundle at {root} ({MANIFEST} missing): run `imgdiff-rt export --out {root}`")
        return cls(root, load_manifest(file))  # shape and schema checked, every path kept inside the bundle

    @property
    def entries(self) -> Mapping[str, Entry]:
        return self.manifest.entries

    def find(self, spec_name: str, fmt: str = "onnx", precision: str = "fp32") -> Entry | None:
        return self.entries.get(entry_key(spec_name, fmt, precision))

    def entry(self, spec_name: str, fmt: str = "onnx", precision: str = "fp32") -> Entry:
        found = self.find(spec_name, fmt, precision)
        if found is None:
            have = ", ".join(sorted(self.entries)) or "nothing"
            raise ModelError(f"bundle {self.root} has no {spec_name} {fmt} {precision} graph (it has: {have})")
        return found

    def path(self, spec_name: str, fmt: str = "onnx", precision: str = "fp32") -> Path:
        """The graph's file, its sha256 verified against the manifest on first use (then cached)."""
        entry = self.entry(spec_name, fmt, precision)
        return verified_file(self.root, entry.file, entry.sha256, entry.key)

    def spec(self, spec_name: str, fmt: str = "onnx", precision: str = "fp32") -> ModelSpec:
        """The spec bound to the sizes this bundle's graph was exported with."""
        return get_spec(spec_name).bind(**self.entry(spec_name, fmt, precision).sizes)

    def tensor_names(self, spec_name: str, fmt: str = "onnx", precision: str = "fp32") -> dict[str, str]:
        """Spec tensor name -> name in the file (differs only for a registered foreign segmenter ONNX)."""
        entry = self.entry(spec_name, fmt, precision)
        spec = get_spec(spec_name)
        return dict(entry.tensor_names) or {n: n for n in (*spec.input_names, *spec.output_names)}

    # -- typed queries: what the bundle holds, so no caller scans entries or pokes at the manifest ---------
    def graph_entries(self, spec_name: str, fmt: str | None = None) -> list[Entry]:
        """Every entry of ``spec_name`` (of format ``fmt`` when given), in manifest order."""
        return [e for e in self.entries.values() if e.spec == spec_name and (fmt is None or e.format == fmt)]

    def has_graph(self, spec_name: str) -> bool:
        return bool(self.graph_entries(spec_name))

    def precisions(self, spec_name: str, fmt: str = "onnx") -> list[str]:
        """The precisions the bundle holds ``spec_name`` in, for format ``fmt``."""
        return [e.precision for e in self.graph_entries(spec_name, fmt)]

    def formats(self, spec_name: str) -> list[str]:
        return sorted({e.format for e in self.graph_entries(spec_name)})

    def precision_for(self, spec_name: str, wanted: str, fmt: str = "onnx") -> str | None:
        """``wanted`` when the bundle has it, else fp32, else the only precision there is (a registered int8
        segmenter), else None. Callers record the precision that really ran."""
        have = self.precisions(spec_name, fmt)
        if wanted in have:
            return wanted
        return "fp32" if "fp32" in have else (have[0] if have else None)

    def is_registered(self, spec_name: str) -> bool:
        """True when the graph is a foreign ONNX registered as is (no PyTorch module behind it)."""
        return any(e.registered is not None for e in self.graph_entries(spec_name))

    def weights_label(self, spec_name: str) -> str:
        """random-init / tiny / pretrained / registered-onnx as the manifest records it; "absent" if none."""
        for entry in self.graph_entries(spec_name):
            return entry.weights
        return "absent"

    def generation(self, family: str) -> GenerationPart | None:
        """The manifest's record of a captioner's PyTorch generation part (None when absent)."""
        return self.manifest.generation.get(family)

    def generation_dir(self, family: str) -> Path | None:
        """Folder (or path recorded) that PyTorch generation loads the captioner from; None when absent."""
        gen = self.generation(family)
        if gen is None:
            return None
        if gen.path is not None:
            return self.root / gen.path
        return Path(gen.load_from) if gen.load_from else None

    def tokenizer(self, family: str) -> TokenizerPart | None:
        """The manifest's record of a family's tokenizer files (None when absent); ``path`` is relative."""
        return self.manifest.tokenizers.get(family)

    def tokenizer_dir(self, family: str) -> Path | None:
        found = self.tokenizer(family)
        return self.root / found.path if found is not None and found.path is not None else None

    def torch_source(self, family: str) -> Part | None:
        """What the `torch` backend rebuilds a family's eager module from (None when the bundle has nothing):
        a ``TorchPart`` (``path``/``load_from``, or the segmenter's ``file`` and ``build``); captioners use their
        ``generation`` part."""
        return self.manifest.torch.get(family) or self.generation(family)

    def family_parts(self, family: str) -> dict[str, Part]:
        """{section: part} of the non-graph parts ("generation", "tokenizers", "torch") of ``family``."""
        return self.manifest.parts(family)


# ---- writing -------------------------------------------------------------------------------------------
class ManifestDraft:
    """The manifest an export is building: JSON records added by key. ``write`` types and checks it as the
    reader will (a manifest the reader would refuse is never written) and returns the typed manifest."""

    def __init__(self, options: dict):
        self.libraries = library_versions()
        self._head = {"schema": SCHEMA, "imgdiff_rt_version": __version__,
                      "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "options": options,
                      "libraries": self.libraries}
        self._entries: dict[str, dict] = {}
        self._parts: dict[str, dict[str, dict]] = {section: {} for section in PART_SECTIONS}

    @property
    def graphs(self) -> int:
        return len(self._entries)

    def add_entry(self, key: str, record: dict) -> None:
        self._entries[key] = record

    def add_part(self, section: str, family: str, record: dict) -> None:
        self._parts[section][family] = record

    def keep_entry(self, entry: Entry) -> None:
        """A previous bundle's entry, as it was (unknown keys included)."""
        self.add_entry(entry.key, entry.to_dict())

    def keep_part(self, part: Part) -> None:
        self.add_part(part.section, part.family, part.to_dict())

    def write(self, root: Path, export_seconds: float) -> Manifest:
        doc = {**self._head, "entries": self._entries, **self._parts, "export_seconds": export_seconds}
        manifest = Manifest.from_json(doc, root, root / MANIFEST)
        (root / MANIFEST).write_text(manifest.to_json(), encoding="utf-8")
        return manifest


def reusable_entry(previous: Bundle | None, key: str, fp: str) -> Entry | None:
    """The previous bundle's entry for ``key`` when its fingerprint matches and its file is intact."""
    if previous is None:
        return None
    entry = previous.entries.get(key)
    if entry is None or entry.fingerprint != fp:
        return None
    file = previous.root / entry.file
    if not file.is_file() or file.stat().st_size != entry.bytes or sha256_file(file) != entry.sha256:
        return None
    return entry


def carry_over(previous: Bundle, staging: Path, relpath: str) -> None:
    """Bring a file or folder of the previous bundle into the staging folder (hard links where possible)."""
    src, dst = previous.root / relpath, staging / relpath
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(src, dst, copy_function=link_or_copy, dirs_exist_ok=True)
    else:
        link_or_copy(src, dst)


def staged_bundle(target: str | Path):
    """An empty folder beside ``target`` that replaces it on success; a failed export leaves ``target`` intact.
    An existing non-empty folder without a manifest is not ours to replace."""
    def replaceable(t: Path) -> bool:
        return (t / MANIFEST).is_file() or not any(t.iterdir())

    return staged_folder(target, f"a model bundle (no {MANIFEST})", replaceable)
