"""``imgdiff_pipeline``: the whole pair as one request, answered with the result JSON `run` writes.

The model runs ``imgdiff_rt.pipeline.Pipeline`` itself (one method, one answer), built by the CLI's
``build_pipeline`` from the CLI's option table, with the graph sessions on the ``triton-bls`` backend: the
segmenter, CLIP and caption encoders are requests to the server's own models (their instances, batching and
placement), generation stays in PyTorch here. A request sets only what the web API lets a request set
(``web.request_options.SERVED_PER_REQUEST``) plus ``ignore`` boxes; anything else is a client error (400).

This is an edge like ``web/``: it is the one module of ``triton/`` that imports ``cli`` and ``web`` (see
docs/architecture.md).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path
from typing import Any

import click
import numpy as np

from imgdiff_rt.cli.options import PIPELINE_OPTIONS, build_pipeline
from imgdiff_rt.errors import InputError
from imgdiff_rt.imageio import DEFAULT_MAX_PIXELS, decode_image_bytes
from imgdiff_rt.web.request_options import (PER_REQUEST, SERVED_PER_REQUEST, RequestOptions, parse_ignore,
                                   parse_json_options, request_pipeline)
from imgdiff_rt.triton import bls
from imgdiff_rt.triton.glue import GLUE
from imgdiff_rt.triton.python_models import _Base

MODEL = "imgdiff_pipeline"
INPUTS, OUTPUTS = GLUE[MODEL]
OPTIONS_INPUT = INPUTS[2].name
IGNORE_FIELD = "ignore"
MAX_OPTIONS_BYTES = 64 * 1024  # a request's JSON configuration: a few hundred bytes in practice
MAX_PIPELINES = 8  # opened pipelines kept, one per distinct model choice (detector, captioner, CLIP settings)


def option_params() -> list[click.Option]:
    return [click.Option(decls, **kwargs) for decls, kwargs in PIPELINE_OPTIONS]


def server_values(bundle_dir: Path, precision: str, max_pixels: int) -> dict[str, Any]:
    """Every build_pipeline parameter at the CLI's default, on this repository's bundle and BLS sessions."""
    params = option_params()
    ctx = click.Context(click.Command(MODEL, params=params))
    values = {p.name: (() if p.multiple else p.get_default(ctx)) for p in params}
    values.update(models=bundle_dir, backend=bls.BACKEND, precision=precision, max_pixels=max_pixels)
    return values


def one_bytes(inputs: dict[str, np.ndarray | None], name: str, limit: int | None = None) -> bytes | None:
    """The single BYTES element of input ``name`` (None when an optional input is absent)."""
    value = inputs.get(name)
    if value is None:
        return None
    if value.dtype != np.object_ or value.size != 1:
        raise InputError(f"{name}: expected one BYTES element, got {value.dtype} {tuple(value.shape)}")
    data = value.reshape(-1)[0]
    if not isinstance(data, (bytes, bytearray)):
        raise InputError(f"{name}: expected bytes, got {type(data).__name__}")
    if not data:
        raise InputError(f"{name}: empty (0 bytes)")
    if limit is not None and len(data) > limit:
        raise InputError(f"{name}: {len(data)} bytes, over the {limit}-byte limit")
    return bytes(data)


class ServedRequests:
    """Request JSON -> an opened Pipeline with the request's options (cached per model choice); no Triton here,
    so the logic is tested without a server."""

    def __init__(self, bundle_dir: Path, precision: str = "fp32", max_pixels: int = DEFAULT_MAX_PIXELS):
        self.server_values = server_values(bundle_dir, precision, max_pixels)
        self.options = RequestOptions(option_params(), self.server_values, SERVED_PER_REQUEST,
                                      server_hint="fixed when the repository is written: `imgdiff-rt triton-repo`")
        self._pipelines: OrderedDict[str, Any] = OrderedDict()

    def parse(self, text: bytes | None):
        fields = parse_json_options(text) if text is not None else {}
        ignore = parse_ignore(fields.pop(IGNORE_FIELD), from_json=True) if IGNORE_FIELD in fields else None
        return self.options.parse(fields, from_json=True), ignore

    def pipeline(self, overrides: dict[str, Any]):
        models = {k: v for k, v in overrides.items() if k not in PER_REQUEST}
        key = json.dumps(models, sort_keys=True, default=str)
        values = {**self.server_values, **models}
        base = self._pipelines.pop(key, None)
        if base is None:
            base = build_pipeline(**values).open()
        self._pipelines[key] = base
        while len(self._pipelines) > MAX_PIPELINES:
            self._pipelines.popitem(last=False)[1].close()
        pair = {k: v for k, v in overrides.items() if k in PER_REQUEST}
        return request_pipeline(base, values, pair, build_pipeline)

    def answer(self, left: bytes, right: bytes, options: bytes | None) -> str:
        overrides, ignore = self.parse(options)
        pipeline = self.pipeline(overrides)
        pixels = [decode_image_bytes(data, name, pipeline.max_pixels)
                  for name, data in (("left_image", left), ("right_image", right))]
        return pipeline.process(*pixels, id="pair", ignore=ignore).result.to_json(None)

    def close(self) -> None:
        while self._pipelines:
            self._pipelines.popitem()[1].close()


class PipelineModel(_Base):
    def setup(self) -> None:
        self.served = ServedRequests(self.version_dir / "bundle", self.parameters.get("precision", "fp32"),
                                     int(self.parameters.get("max_pixels", DEFAULT_MAX_PIXELS)))

    def compute(self, x):
        left, right = (one_bytes(x, t.name) for t in INPUTS[:2])
        if left is None or right is None:
            raise InputError("left_image and right_image are required")
        text = self.served.answer(left, right, one_bytes(x, OPTIONS_INPUT, MAX_OPTIONS_BYTES))
        return {OUTPUTS[0].name: np.array([text.encode()], dtype=object)}

    def finalize(self) -> None:
        self.served.close()
