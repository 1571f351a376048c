"""What an export is asked for: the artifact table (``ARTIFACTS``, which artifact is built from which),
``ExportOptions`` (checked before any model loads) and the captioner choice. ``build.run_export`` reads these; the
family build steps (``families.py``) and the run's state (``export_run.py``) read ``Artifact``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from imgdiff_rt.errors import UsageError
from imgdiff_rt.limits import check_count
from imgdiff_rt.models.specs import CAPTIONER_FAMILIES, DEFAULT_IMGSZ, DEFAULT_SOURCES, FORMATS, PRECISIONS
from imgdiff_rt.runtime.device import parse_device

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Artifact:
    """One kind of artifact a graph can have: its format and precision, the build step that makes it and the
    artifact it is built from (None: from the PyTorch module)."""

    fmt: str
    precision: str
    step: str  # "export" | "quantize" | "engine"
    built_from: tuple[str, str] | None
    doc: str


#: Every artifact the exporter can build, in build order (a later one is built from an earlier one).
ARTIFACTS: tuple[Artifact, ...] = (
    Artifact("onnx", "fp32", "export", None, "the reference graph, checked against PyTorch"),
    Artifact("onnx", "int8", "quantize", ("onnx", "fp32"),
             "CPU int8: dynamic for transformer encoders, static QDQ (calibration photos) for the segmenter"),
    # TensorRT cannot parse ORT's dynamic-int8 ops, and fp16 is the GPU's fast path for these graphs
    Artifact("engine", "fp16", "engine", ("onnx", "fp32"), "TensorRT fp16 engine from the fp32 graph"),
)


def artifacts_for(formats: tuple[str, ...], precision: str) -> list[Artifact]:
    """The artifacts ``formats`` and ``precision`` ask for: fp32 ONNX always (the reference, and what engines
    are built from), int8 ONNX for precision int8, the fp16 engine for format engine."""
    bad = set(formats) - set(FORMATS)
    if bad:
        raise UsageError(f"formats {sorted(bad)}: use {', '.join(FORMATS)}", parameter="formats")
    if precision not in PRECISIONS:
        raise UsageError(f"precision {precision!r}: use {', '.join(PRECISIONS)}", parameter="precision")
    if precision == "fp16" and "engine" not in formats:
        raise UsageError("precision 'fp16' is built as TensorRT engines only (formats must include 'engine'); "
                         "ONNX graphs are fp32, or int8 for CPUs", parameter="precision")
    wanted = {("onnx", "fp32")} | ({("onnx", "int8")} if precision == "int8" else set()) | \
        ({("engine", "fp16")} if "engine" in formats else set())
    return [a for a in ARTIFACTS if (a.fmt, a.precision) in wanted]


@dataclass
class ExportOptions:
    segmenter: str | None = DEFAULT_SOURCES["segmenter"]  # None: no segmenter
    segmenter_onnx: str | None = None
    segmenter_fp32: bool = False  # with segmenter_onnx (dynamic int8): also its dequantized fp32 rebuild
    clip: str | None = DEFAULT_SOURCES["clip"]
    captioner: str | None = "blip"  # "blip[:SRC]", "llava[:SRC]" or None
    formats: tuple[str, ...] = ("onnx",)
    precision: str = "fp32"
    imgsz: int = DEFAULT_IMGSZ
    random_init: bool = False
    tiny: bool = False
    force: bool = False
    caption_tokens: int = 12
    device: str = "cpu"  # cpu | cuda | cuda:N: PyTorch's device and ONNX Runtime's providers for the checks

    def __post_init__(self) -> None:  # before any model is loaded: a bad size fails in milliseconds
        parse_device(self.device)
        check_count("imgsz", self.imgsz, 32, 4096)
        if self.imgsz % 32:
            raise UsageError(f"imgsz must be a multiple of 32 (the segmenter's largest stride), got {self.imgsz}",
                             parameter="imgsz")
        check_count("caption_tokens", self.caption_tokens, 1, 512)

    def weights(self) -> str:
        return "tiny" if self.tiny else "random-init" if self.random_init else "pretrained"

    def artifacts(self) -> list[Artifact]:
        return artifacts_for(self.formats, self.precision)


def parse_captioner(value: str | None) -> tuple[str, str | None] | None:
    if value is None or value.strip().lower() in ("", "none"):
        return None
    kind, _, source = value.partition(":")
    if kind not in CAPTIONER_FAMILIES:
        raise UsageError(f"captioner {value!r}: use {'[:SRC], '.join(CAPTIONER_FAMILIES)}[:SRC] or none",
                         parameter="captioner")
    return kind, source or None
