"""``PipelineConfig``: the typed, validated configuration tree of a pipeline, built from option values.

    config = PipelineConfig.from_values({"detector": "pixel", "blur": 2.0})   # names or request fields
    config.pixel.blur_sigma, config.segment.clip_threshold, config.placement.backend
    PipelineConfig.from_dict(config.to_dict()) == config                       # what workers and requests carry

The flat values (one per ``options.OPTIONS`` entry) are the wire form; the sections are the typed view the
pipeline reads. Rules that need no bundle are checked here (typed errors naming parameters); the rules that
depend on the bundle (which detector a bundle allows, which precisions it has) are checked where it is opened.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from imgdiff_rt.config.options import BY_NAME, DEFAULTS, OPTIONS, Option
from imgdiff_rt.detectors.ignore import IgnoreSpec
from imgdiff_rt.detectors.model.clip_filter import parse_pair_gate
from imgdiff_rt.detectors.model.detector import SegmentConfig
from imgdiff_rt.detectors.pixel.detector import PixelConfig
from imgdiff_rt.errors import UsageError
from imgdiff_rt.limits import check_number
from imgdiff_rt.runtime.device import half_precision

_FIELDS = {o.field: o for o in OPTIONS}


@dataclass(frozen=True)
class FilterConfig:
    """The extra similarity filter (``similarity_filter`` None: each detector's own)."""

    similarity_filter: str | None = None
    threshold: float = DEFAULTS["filter_threshold"]


@dataclass(frozen=True)
class CaptionConfig:
    captioner: str = "none"
    beams: int = 1
    max_new_tokens: int | None = None  # None: the captioner's own default


@dataclass(frozen=True)
class Placement:
    """Where the graphs run; ``precision`` is already fp16 when ``half`` asked for it."""

    models: Path | None = None
    backend: str = "onnx"
    precision: str = DEFAULTS["precision"]
    threads: int | None = None
    device: str | None = None
    url: str | None = None
    protocol: str | None = None


@dataclass(frozen=True)
class Limits:
    max_pixels: int = DEFAULTS["max_pixels"]
    tiled: bool = False


@dataclass(frozen=True)
class PipelineConfig:
    """One pipeline's configuration; build it with ``from_values`` (validated), never field by field."""

    values: Mapping[str, Any]  # every option's value, defaults filled in: the wire form
    detector: str | None  # None: the bundle decides (the segment/hybrid detectors need a pretrained CLIP)
    align: str
    pixel: PixelConfig
    segment: SegmentConfig
    filter: FilterConfig
    caption: CaptionConfig
    placement: Placement
    limits: Limits
    ignore: IgnoreSpec = field(default_factory=IgnoreSpec)

    @classmethod
    def from_values(cls, values: Mapping[str, Any] | None = None) -> "PipelineConfig":
        """Values by option name (or request field, e.g. ``blur``); unset ones take their defaults."""
        given = _by_name(values or {})
        for name, value in given.items():
            _check_range(BY_NAME[name], value)
        v = {**DEFAULTS, **given}
        if (v["url"] is not None or v["protocol"] is not None) and v["backend"] != "triton":
            raise UsageError("--url and --protocol are for --backend triton")
        pixel = PixelConfig(metric=v["metric"], blur_sigma=v["blur_sigma"], threshold=v["threshold"],
                            min_area=v["min_area"], max_regions=v["max_regions"],
                            merge="box" if v["merge_gap"] > 0 else "none", merge_gap=v["merge_gap"],
                            photometric=v["photometric"])
        segment = SegmentConfig(clip_threshold=v["clip_threshold"], max_proposals=v["max_proposals"],
                                pair_gate=pair_gate(v["pair_gate"]), pixel_gate=pixel_gate(v["pixel_gate"]))
        placement = Placement(models=Path(v["models"]).expanduser() if v["models"] is not None else None,
                              backend=v["backend"], precision=half_precision(v["half"], v["precision"]),
                              threads=v["threads"], device=v["device"], url=v["url"], protocol=v["protocol"])
        return cls(values=MappingProxyType(v), detector=v["detector"], align=v["align"], pixel=pixel,
                   segment=segment, filter=FilterConfig(v["similarity_filter"], v["filter_threshold"]),
                   caption=CaptionConfig(v["captioner"], v["beams"], v["max_new_tokens"]), placement=placement,
                   limits=Limits(v["max_pixels"], bool(v["tiled"])),
                   ignore=IgnoreSpec.parse(tuple(v["ignore"] or ()), v["ignore_mask"]))

    def with_values(self, values: Mapping[str, Any]) -> "PipelineConfig":
        """This configuration with ``values`` on top (a request's options over the server's)."""
        return PipelineConfig.from_values({**self.values, **_by_name(values)})

    def to_dict(self) -> dict[str, Any]:
        """The options that differ from their defaults, JSON-able (paths as text, boxes as lists)."""
        return {k: _jsonable(v) for k, v in self.values.items() if v != DEFAULTS[k]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PipelineConfig":
        return cls.from_values(data)

    def changed(self) -> dict[str, Any]:
        """{name: value} of the options set away from their defaults."""
        return {k: v for k, v in self.values.items() if v != DEFAULTS[k]}

    @property
    def captioner(self) -> str:
        return self.caption.captioner


def _by_name(values: Mapping[str, Any]) -> dict[str, Any]:
    """Keys as option names: a request's field (``blur``, ``max-regions``) becomes its option (``blur_sigma``)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        option = BY_NAME.get(key) or _FIELDS.get(str(key).replace("_", "-"))
        if option is None:
            raise UsageError(f"unknown option {key!r}; options: {', '.join(o.name for o in OPTIONS)}")
        if option.name in out:
            raise UsageError(f"option '{key}' is given twice", parameter=option.name)
        out[option.name] = value
    return out


def _check_range(option: Option, value: Any) -> None:
    if value is None or option.kind not in ("int", "float"):
        return
    check_number(option.name, value, option.low, option.high, hi_open=option.high_open,
                 integer=option.kind == "int")


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value


def pixel_gate(text: str | float | None) -> float | None:
    """pixel_gate: unset -> the default gate, "none" -> no gate (every box through CLIP), else a number."""
    if text is None:
        return SegmentConfig.pixel_gate
    if str(text).strip().lower() == "none":
        return None
    try:
        return float(text)
    except ValueError:
        raise UsageError(f"pixel_gate: expected a number or none, got {text!r}", parameter="pixel_gate") from None


def pair_gate(text: str | None) -> tuple[float, float] | None:
    if text is None:
        return None
    try:
        return parse_pair_gate(text)
    except ValueError as e:
        raise UsageError(f"--pair-gate: {e}") from None
