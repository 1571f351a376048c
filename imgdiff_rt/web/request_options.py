"""Run options sent with a request (form fields or a JSON part), checked by the very click options the CLI
declares: the same names, types, choices and defaults, one source.

Only options a pipeline applies per pair are taken per request. The others (detector, captioner, models,
backend, thresholds of the model detector, ...) shape the model sessions the server opened once at start;
a request naming one is told so (400), never silently ignored.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any, Callable, Iterable

import click

from imgdiff_rt.errors import UsageError
from imgdiff_rt.files import loads_json
from imgdiff_rt.detectors.ignore import IgnoreSpec, parse_boxes

# Per pair, without reopening model sessions: the pixel detector's settings, registration and the pixel cap.
PER_REQUEST = ("align", "photometric", "max_regions", "min_area", "threshold", "metric", "blur_sigma", "merge_gap",
               "max_pixels")
# What those options change on a Pipeline (the rest of a request's pipeline is the server's).
_PIPELINE_FIELDS = ("pixel", "align", "max_pixels")
# The served pipeline (Triton's imgdiff_pipeline) takes these too: there every graph is a model of the server,
# shared by all requests, so choosing the detector, the captioner or the CLIP filter's settings opens nothing.
SERVED_PER_REQUEST = PER_REQUEST + ("detector", "captioner", "clip_threshold", "max_proposals", "pixel_gate",
                                    "pair_gate", "beams", "max_new_tokens")


def shown(name: str) -> str:
    """A client's field name as error messages quote it: short, printable ASCII (others shown as '?')."""
    return re.sub(r"[^ -~]", "?", name[:60])


def _key(field: str) -> str:
    return field.strip().lower().replace("_", "-")


def _field_names(param: click.Parameter) -> list[str]:
    names = [_key(param.name or "")]
    names += [_key(o.lstrip("-")) for o in getattr(param, "opts", ()) if o.startswith("--")]
    return list(dict.fromkeys(names))


class RequestOptions:
    """``parse(fields)`` -> {param name: value} for the per-request options found among a request's fields."""

    def __init__(self, params: Iterable[click.Parameter], server_values: dict[str, Any],
                 per_request: Iterable[str] = PER_REQUEST, server_hint: str = "start `imgdiff-rt web --{key} ...`"):
        self.server_values = dict(server_values)
        self.server_hint = server_hint  # where a server setting is set, for the refusal
        wanted = set(per_request)
        self.params = [p for p in params if p.name in wanted]
        self._by_field = {n: p for p in self.params for n in _field_names(p)}
        self._server_only = {n: p for p in params if p.name not in wanted for n in _field_names(p)}

    def field_of(self, param: click.Parameter) -> str:
        return _field_names(param)[-1]  # the long flag's name, e.g. "blur" for --blur (param blur_sigma)

    def knows(self, field: str) -> bool:
        return _key(field) in self._by_field or _key(field) in self._server_only

    def describe(self) -> list[dict]:
        """The per-request options for /v1/info and the page's option form."""
        out = []
        for p in self.params:
            kind = ("bool" if isinstance(p.type, click.types.BoolParamType) else
                    "choice" if isinstance(p.type, click.Choice) else p.type.name)
            out.append({"field": self.field_of(p), "type": kind, "help": getattr(p, "help", None),
                        "choices": list(p.type.choices) if isinstance(p.type, click.Choice) else None,
                        "server_value": self.server_values.get(p.name)})
        return out

    def parse(self, fields: dict[str, Any], from_json: bool = False) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for field, raw in fields.items():
            key = _key(field)
            if key in self._server_only:
                raise UsageError(f"option '{field}' is a server setting ({self.server_hint.format(key=key)}); "
                                 f"per request: {', '.join(self.field_of(p) for p in self.params)}")
            param = self._by_field.get(key)
            if param is None:
                raise UsageError(f"unknown field '{shown(field)}'")
            if raw is None and from_json:
                continue  # JSON null: the server's value
            if param.name in values:
                raise UsageError(f"option '{field}' is given twice")
            values[param.name] = self._convert(field, param, raw, from_json)
        cap = self.server_values.get("max_pixels")
        if cap is not None and values.get("max_pixels", 0) > cap:
            raise UsageError(f"option 'max-pixels': {values['max_pixels']} is over the server's cap {cap}")
        return values

    @staticmethod
    def _convert(field: str, param: click.Parameter, raw: Any, from_json: bool) -> Any:
        is_bool = isinstance(param.type, click.types.BoolParamType)
        if from_json and (isinstance(raw, (dict, list)) or (isinstance(raw, bool) and not is_bool)):
            given = ("a JSON object" if isinstance(raw, dict) else "a JSON list" if isinstance(raw, list)
                     else json.dumps(raw))  # a nested value is not echoed back: it may be huge or deep
            raise UsageError(f"option '{field}': {given} is not a valid {param.type.name}")
        # Text first, so that 2.5 for an integer option fails instead of becoming 2.
        text = raw if isinstance(raw, str) else (str(raw).lower() if isinstance(raw, bool) else str(raw))
        try:
            return param.type.convert(text, param, None)
        except click.BadParameter as e:
            raise UsageError(f"option '{field}': {e.format_message()}") from None


def parse_json_options(text: str | bytes) -> dict[str, Any]:
    try:
        found = loads_json(text)  # nesting too deep to parse is malformed JSON too, not a RecursionError
    except (ValueError, UnicodeDecodeError) as e:
        raise UsageError(f"field 'options' is not valid JSON ({e})") from None
    if not isinstance(found, dict):
        raise UsageError("field 'options' must be a JSON object of option names and values")
    return found


def parse_ignore(raw: Any, from_json: bool = False) -> IgnoreSpec | None:
    """A request's ``ignore`` boxes (added to the server's): as ``--ignore`` takes them, several joined by ``;``,
    or a JSON list of them (in 'options', or as the field's text)."""
    if isinstance(raw, str) and not from_json and raw.lstrip().startswith("["):
        try:
            raw = loads_json(raw)
        except (ValueError, UnicodeDecodeError) as e:
            raise UsageError(f"field 'ignore' is not valid JSON ({e})") from None
    spec = IgnoreSpec(parse_boxes(raw))
    return spec or None


def request_pipeline(server_pipeline, server_values: dict[str, Any], overrides: dict[str, Any],
                     build: Callable[..., Any]):
    """The server's pipeline with a request's per-pair options applied. The options go through the CLI's own
    ``build`` (so they mean exactly what they mean on the command line); the copy shares the server's opened
    model sessions instead of opening new ones."""
    if not overrides:
        return server_pipeline
    if hasattr(server_pipeline, "with_options"):  # a served pipeline sends the options with each pair
        return server_pipeline.with_options(overrides)
    built = build(**{**server_values, **overrides})
    pipeline = copy.copy(server_pipeline)
    for name in _PIPELINE_FIELDS:
        setattr(pipeline, name, getattr(built, name))
    return pipeline
