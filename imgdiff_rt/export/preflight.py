"""Before an export loads anything: is every pretrained source it asks for really there, tokenizer and processor
included? And after loading: does each tokenizer turn a sentence into ids and back?

A model folder without its tokenizer files loads "successfully" in transformers 5 (an empty tokenizer of two
tokens), and every caption then decodes to ''. So a local folder must hold its config, weights, tokenizer and
image processor files, a hub id must be in the local cache when the hub cannot be reached, and every problem is
reported at once, in one line, before any work. An unreachable hub is found in seconds (one TCP connect) and the
rest of the export then runs as HF_HUB_OFFLINE would, instead of retrying for half a minute.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from imgdiff_rt.errors import ModelError, WeightsUnavailableError

#: the sentence every real tokenizer must encode and decode back to itself (case and spacing aside)
SAMPLE_SENTENCE = "a red car is parked next to the small house"
#: any one group complete is enough (a fast tokenizer.json, or the slow tokenizer's files)
TOKENIZER_FILES: dict[str, tuple[tuple[str, ...], ...]] = {
    "clip": (("tokenizer.json",), ("vocab.json", "merges.txt")),
    "blip": (("tokenizer.json",), ("vocab.txt",)),
    "llava": (("tokenizer.json",), ("tokenizer.model",)),
}
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
PROCESSOR_FILE = "preprocessor_config.json"
HUB_CONNECT_TIMEOUT_S = 2.0


def _one_of(groups: tuple[tuple[str, ...], ...]) -> str:
    return " or ".join(" + ".join(g) for g in groups)


def folder_problems(family: str, folder: Path) -> list[str]:
    """The files a pretrained ``family`` folder lacks (each named; empty when complete)."""
    present = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
    missing = [] if "config.json" in present else ["config.json"]
    if not present.intersection(WEIGHT_FILES):
        missing.append(_one_of(tuple((w,) for w in WEIGHT_FILES[::2])))
    groups = TOKENIZER_FILES[family]
    if not any(set(g) <= present for g in groups):
        missing.append(_one_of(groups))
    if PROCESSOR_FILE not in present:
        missing.append(PROCESSOR_FILE)
    return missing


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}


def hub_reachable(timeout: float = HUB_CONNECT_TIMEOUT_S) -> bool:
    """One TCP connect to the hub (``$HF_ENDPOINT`` or huggingface.co): seconds, not the client's retries."""
    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    try:
        with socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout):
            return True
    except OSError:
        return False


def cached_snapshot(repo_id: str) -> Path | None:
    """The local Hugging Face cache's folder of ``repo_id`` (None when its config is not cached)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    try:
        found = try_to_load_from_cache(repo_id, "config.json")
    except ValueError:  # not a valid repo id (e.g. a path that does not exist): nothing cached under it
        return None
    return Path(found).parent if isinstance(found, str) else None


def _hf_problem(family: str, source: str, offline: bool) -> str | None:
    folder = Path(source).expanduser()
    if folder.is_dir():
        missing = folder_problems(family, folder)
        return f"{family} folder {folder} lacks {', '.join(missing)}" if missing else None
    if not offline:
        return None  # the hub will be asked; a miss there is reported by the loader
    snapshot = cached_snapshot(source)
    if snapshot is None:
        return f"{family} {source!r} is not a local folder and not in the Hugging Face cache"
    missing = folder_problems(family, snapshot)
    return f"{family} {source!r} in the cache lacks {', '.join(missing)}" if missing else None


def check_sources(hf_sources: dict[str, str], segmenter: str | None) -> None:
    """WeightsUnavailableError naming every missing pretrained source at once (``hf_sources``: family ->
    id or folder; ``segmenter``: an Ultralytics checkpoint, or None). Sets HF_HUB_OFFLINE for the rest of
    the process when the hub cannot be reached, so loaders fail at once instead of retrying."""
    offline, why = hub_offline(), " (HF_HUB_OFFLINE is set)"
    if not offline and hf_sources and not all(Path(s).expanduser().is_dir() for s in hf_sources.values()):
        if not hub_reachable():
            os.environ["HF_HUB_OFFLINE"] = "1"
            offline, why = True, " (the model hub cannot be reached)"
    problems = [p for family, source in hf_sources.items() if (p := _hf_problem(family, source, offline))]
    if segmenter is not None and not Path(segmenter).expanduser().is_file():
        yolo_offline = os.environ.get("YOLO_OFFLINE", "").lower() in {"1", "true", "yes"}
        if offline or yolo_offline or Path(segmenter).parent != Path("."):
            problems.append(f"segmenter checkpoint {segmenter!r} is not a local file")
    if problems:
        raise WeightsUnavailableError(
            f"pretrained weights unavailable{why if offline else ''}: {'; '.join(problems)}. Give complete "
            "local sources (clip, captioner family:FOLDER, segmenter checkpoint file), or random_init / tiny "
            "for random weights", parameter="random_init")


# ---- tokenizer round trip ---------------------------------------------------------------------------------
def _normalised(text: str) -> str:
    return " ".join(text.lower().split())


def tokenizer_round_trip(tokenizer, synthetic: bool, where: str) -> dict:
    """{"sentence", "ok", "decoded", "vocabulary"} for a real tokenizer (ModelError when the sentence does not
    come back); a synthetic one (random weights, placeholder words) is recorded as skipped, never as checked."""
    if synthetic:
        return {"sentence": SAMPLE_SENTENCE, "skipped": "synthetic tokenizer (random weights): placeholder words"}
    ids = tokenizer(SAMPLE_SENTENCE)["input_ids"]
    decoded = tokenizer.decode(ids, skip_special_tokens=True)
    if _normalised(decoded) != _normalised(SAMPLE_SENTENCE):
        raise ModelError(f"the tokenizer of {where} does not round-trip {SAMPLE_SENTENCE!r} (decoded {decoded!r}; "
                         f"vocabulary of {len(tokenizer)}): its tokenizer files are missing or broken")
    return {"sentence": SAMPLE_SENTENCE, "ok": True, "decoded": decoded, "vocabulary": len(tokenizer)}


def check_bundle_tokenizers(bundle) -> dict[str, dict]:
    """``export --check``: every tokenizer folder of the bundle loaded and round-tripped (synthetic ones, which
    carry SYNTHETIC_MARKER, are reported as skipped). {"tokenizer/<family>": row}."""
    from transformers import AutoTokenizer

    from imgdiff_rt.torch_models.tokenizers import SYNTHETIC_MARKER

    folders: dict[str, Path] = {}
    for section in ("tokenizers", "generation"):
        for family, part in bundle.manifest.section(section).items():
            if part.path is not None:
                folders.setdefault(family, bundle.root / part.path)
    report = {}
    for family, folder in folders.items():
        row: dict = {"ok": True}
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(folder))
            row["round_trip"] = tokenizer_round_trip(tokenizer, (folder / SYNTHETIC_MARKER).exists(),
                                                     f"{family} ({folder})")
        except (ModelError, OSError, ValueError) as e:
            row.update(ok=False, error=str(e).splitlines()[0])
        report[f"tokenizer/{family}"] = row
    return report


def check_export_ready(opts, captioner: tuple[str, str | None] | None) -> None:
    """Everything an export needs that can be checked before loading anything: TensorRT and a GPU when engines
    are asked for, and every pretrained source (``check_sources``). ``opts``: an ``ExportOptions``."""
    from imgdiff_rt.models.specs import DEFAULT_SOURCES

    if "engine" in opts.formats:
        from imgdiff_rt.runtime.tensorrt_engines import gpu_identity, import_tensorrt

        import_tensorrt()
        gpu_identity()
    if opts.weights() != "pretrained":
        return
    families = ([("clip", opts.clip)] if opts.clip else []) + ([captioner] if captioner else [])
    check_sources({family: source or DEFAULT_SOURCES[family] for family, source in families},
                  None if opts.segmenter_onnx else opts.segmenter)
