"""Run options sent with a request (form fields or a JSON part), checked against the library's option
declarations (``config.options``): the same names, types, choices, ranges and defaults as the CLI's flags.

Only options a pipeline applies per pair are taken per request. The others (detector, captioner, models,
backend, thresholds of the model detector, ...) shape the model sessions the server opened once at start;
a request naming one is told so (400), never silently ignored.
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterable

from imgdiff_rt.config.build import for_pair_options
from imgdiff_rt.config.options import OPTIONS, PAIR_OPTIONS, Option
from imgdiff_rt.detectors.ignore import IgnoreSpec, parse_boxes
from imgdiff_rt.errors import UsageError
from imgdiff_rt.files import loads_json

_TRUE, _FALSE = ("1", "true", "t", "yes", "y", "on"), ("0", "false", "f", "no", "n", "off")
_TYPE_NAMES = {"int": "integer", "float": "float", "flag": "bool", "choice": "choice", "text": "text",
               "path": "path", "file": "path", "boxes": "text"}


def shown(name: str) -> str:
    """A client's field name as error messages quote it: short, printable ASCII (others shown as '?')."""
    return re.sub(r"[^ -~]", "?", name[:60])


def _key(field: str) -> str:
    return field.strip().lower().replace("_", "-")


def _field_names(option: Option) -> list[str]:
    return list(dict.fromkeys([_key(option.name), option.field]))


class RequestOptions:
    """``parse(fields)`` -> {option name: value} for the per-request options found among a request's fields.

    ``per_request``: the options a request may set; ``server_fields``: the server's own settings besides the
    pipeline options (e.g. the web command's port), refused by name."""

    def __init__(self, server_values: dict[str, Any], per_request: Iterable[str] = PAIR_OPTIONS,
                 server_fields: Iterable[str] = (), server_hint: str = "start `imgdiff-rt web --{key} ...`"):
        self.server_values = dict(server_values)
        self.server_hint = server_hint  # where a server setting is set, for the refusal
        wanted = set(per_request)
        self.params = [o for o in OPTIONS if o.name in wanted]
        self._by_field = {n: o for o in self.params for n in _field_names(o)}
        self._server_only = {n for o in OPTIONS if o.name not in wanted for n in _field_names(o)}
        self._server_only |= {_key(f) for f in server_fields}

    @staticmethod
    def field_of(option: Option) -> str:
        return option.field  # the long flag's name, e.g. "blur" for --blur (option blur_sigma)

    def knows(self, field: str) -> bool:
        return _key(field) in self._by_field or _key(field) in self._server_only

    def describe(self) -> list[dict]:
        """The per-request options for /v1/info and the page's option form."""
        return [{"field": o.field, "type": _TYPE_NAMES[o.kind] if o.kind != "choice" else "choice",
                 "help": o.help, "choices": list(o.choices) if o.kind == "choice" else None,
                 "server_value": self.server_values.get(o.name)} for o in self.params]

    def parse(self, fields: dict[str, Any], from_json: bool = False) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for field, raw in fields.items():
            key = _key(field)
            if key in self._server_only:
                raise UsageError(f"option '{field}' is a server setting ({self.server_hint.format(key=key)}); "
                                 f"per request: {', '.join(o.field for o in self.params)}")
            option = self._by_field.get(key)
            if option is None:
                raise UsageError(f"unknown field '{shown(field)}'")
            if raw is None and from_json:
                continue  # JSON null: the server's value
            if option.name in values:
                raise UsageError(f"option '{field}' is given twice")
            values[option.name] = convert(field, option, raw, from_json)
        cap = self.server_values.get("max_pixels")
        if cap is not None and values.get("max_pixels", 0) > cap:
            raise UsageError(f"option 'max-pixels': {values['max_pixels']} is over the server's cap {cap}")
        return values


def convert(field: str, option: Option, raw: Any, from_json: bool = False) -> Any:
    """A request's value for ``option``, read as its command-line text would be (so 2.5 for an integer option
    fails instead of becoming 2); UsageError naming the field."""
    kind = option.kind
    if from_json and (isinstance(raw, (dict, list)) or (isinstance(raw, bool) and kind != "flag")):
        given = ("a JSON object" if isinstance(raw, dict) else "a JSON list" if isinstance(raw, list)
                 else json.dumps(raw))  # a nested value is not echoed back: it may be huge or deep
        raise UsageError(f"option '{field}': {given} is not a valid {_TYPE_NAMES[kind]}")
    text = raw if isinstance(raw, str) else (str(raw).lower() if isinstance(raw, bool) else str(raw))
    try:
        value = _from_text(option, text)
    except ValueError:
        if kind == "choice":
            listed = ", ".join(repr(c) for c in option.choices)
            raise UsageError(f"option '{field}': {text!r} is not one of {listed}.") from None
        raise UsageError(f"option '{field}': {text!r} is not a valid {_TYPE_NAMES[kind]}.") from None
    return value


def _from_text(option: Option, text: str) -> Any:
    kind = option.kind
    if kind == "int":
        return int(text.strip())
    if kind == "float":
        return float(text.strip())
    if kind == "flag":
        low = text.strip().lower()
        if low not in _TRUE + _FALSE:
            raise ValueError(text)
        return low in _TRUE
    if kind == "choice" and text not in option.choices:
        raise ValueError(text)
    return text


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


def request_pipeline(server_pipeline, overrides: dict[str, Any]):
    """The server's pipeline with a request's per-pair options applied: a served pipeline sends them with each
    pair; an in-process one becomes a twin on the configuration with them (sharing the opened sessions)."""
    if not overrides:
        return server_pipeline
    if hasattr(server_pipeline, "with_options"):
        return server_pipeline.with_options(overrides)
    return for_pair_options(server_pipeline, overrides)
