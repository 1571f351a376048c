"""Which optional extra each command or option needs, in one table, checked before any work.

The base install runs the main job (the pixel detector, descriptions, every output); models, serving, the web
app and clusters come in extras (pyproject.toml). A command or option whose extra is absent is refused with one
line naming the install command (:class:`MissingExtraError`, exit 2), never a traceback from deep inside an
import. Modules are looked up with ``importlib.util.find_spec``: nothing is imported to check.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from imgdiff_rt.errors import UsageError

PACKAGE = "imgdiff-rt"


@dataclass(frozen=True)
class Extra:
    """An extra of pyproject.toml: the modules of it the code imports, and what they are for people."""

    name: str
    modules: tuple[str, ...]
    what: str
    alternative: str | None = None  # another extra that brings the same modules

    def install(self) -> str:
        cmd = f"pip install '{PACKAGE}[{self.name}]'"
        return cmd + (f" (or '{PACKAGE}[{self.alternative}]')" if self.alternative else "")


#: Every extra a command or option can need (``dev`` and ``models`` only gather these).
EXTRAS: dict[str, Extra] = {e.name: e for e in (
    Extra("cpu", ("onnxruntime", "onnx"), "ONNX Runtime", alternative="gpu"),
    Extra("export", ("torch", "torchvision", "transformers", "ultralytics", "onnx", "onnxslim", "onnxscript"),
          "PyTorch and the exporters"),
    Extra("captions", ("pycocoevalcap",), "pycocoevalcap"),
    Extra("triton", ("tritonclient",), "the Triton client"),
    Extra("bench", ("matplotlib",), "matplotlib"),
    Extra("web", ("fastapi", "uvicorn", "multipart"), "FastAPI and uvicorn"),
    Extra("ray", ("ray", "pyarrow"), "Ray and pyarrow"),
    Extra("tensorrt", ("tensorrt",), "TensorRT"),
)}

#: The extra that adds the models to a light install (exporting them and running them on the CPU).
MODELS_EXTRA = "models"

#: command -> the extras it needs whatever its options
COMMAND_EXTRAS: dict[str, tuple[str, ...]] = {
    "export": ("export", "cpu"),
    "web": ("web",),
    "eval-captions": ("captions",),
    "bench": ("bench",),
}

#: (option parameter, value) -> the extras that value needs; a value of True stands for a flag that is set
OPTION_EXTRAS: dict[tuple[str, Any], tuple[str, ...]] = {
    ("backend", "onnx"): ("cpu",),
    ("backend", "torch"): ("export",),
    ("backend", "tensorrt"): ("tensorrt", "export"),  # engines' buffers are torch tensors
    ("backend", "triton"): ("triton",),
    ("captioner", "blip"): ("export",),  # text generation runs in PyTorch
    ("captioner", "llava"): ("export",),
    ("similarity_filter", "segmenter"): ("cpu",),
    ("engine", "ray"): ("ray",),
    ("parquet", True): ("ray",),
}


#: parameters whose flag is not the parameter's name
OPTION_FLAGS = {"similarity_filter": "--filter"}


class MissingExtraError(UsageError):
    """A command or option whose optional extra is not installed; the message is the install command."""


def models_install_hint() -> str | None:
    """How to add the models to this install, or None when they are there already."""
    missing = _missing(("export", "cpu"))
    return None if not missing else f"pip install '{PACKAGE}[{MODELS_EXTRA}]'"


def is_installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken half-install counts as absent
        return False


def _missing(extras: Iterable[str]) -> list[Extra]:
    return [EXTRAS[n] for n in dict.fromkeys(extras) if not all(is_installed(m) for m in EXTRAS[n].modules)]


def require_command(command: str) -> None:
    """Refuse ``command`` when an extra it always needs is absent."""
    _raise([f"`{PACKAGE} {command}`"], _missing(COMMAND_EXTRAS.get(command, ())))


def option_needs(values: Mapping[str, Any], models_run: bool) -> list[tuple[str, str, tuple[str, ...]]]:
    """(parameter, what, extras) for each option value in ``values`` that needs an extra; the backend counts
    only when a model runs (``models_run``): the pixel detector never opens one."""
    out = []
    for (name, value), extras in OPTION_EXTRAS.items():
        given = values.get(name)
        if name == "backend" and not models_run or given is None:
            continue
        if given == value and isinstance(given, bool) == isinstance(value, bool):
            out.append((name, _spelt(name, value), extras))
    return out


def _spelt(name: str, value: Any) -> str:
    """The option as a person types it (the backend is said as what it runs: it is rarely typed)."""
    flag = OPTION_FLAGS.get(name, "--" + name.replace("_", "-"))
    if name == "backend":
        return f"running the models ({flag} {value})"
    return flag if value is True else f"{flag} {value}"


def require_options(values: Mapping[str, Any], models_run: bool) -> None:
    """Refuse the option values in ``values`` whose extras are absent, all in one line."""
    needs = [(name, what, _missing(extras)) for name, what, extras in option_needs(values, models_run)]
    needs = [n for n in needs if n[2]]
    if needs:
        _raise([what for _, what, _ in needs], [e for _, _, m in needs for e in m])


def install_command(extras: Iterable[Extra]) -> str:
    """One pip command for every extra in ``extras`` (each once, in order)."""
    names = list(dict.fromkeys(e.name for e in extras))
    if len(names) == 1:
        return EXTRAS[names[0]].install()
    return f"pip install '{PACKAGE}[{','.join(names)}]'"


def _raise(whats: list[str], missing: list[Extra]) -> None:
    if not missing:
        return
    things = list(dict.fromkeys(e.what for e in missing))
    verb = "needs" if len(whats) == 1 else "need"
    raise MissingExtraError(f"{' and '.join(whats)} {verb} {', '.join(things)} (not installed): "
                            f"{install_command(missing)}")
