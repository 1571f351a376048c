"""``imgdiff_pipeline``: the whole pair as one request, answered with the result JSON `run` writes.

The model runs ``imgdiff_rt.pipeline.Pipeline`` itself (one method, one answer), built from a
``PipelineConfig`` by the same ``config.build.pipeline_from_config`` as `run`, with the graph sessions on the
``triton-bls`` backend: the segmenter, CLIP and caption encoders are requests to the server's own models (their
instances, batching and placement), generation stays in PyTorch here. A request sets only the options the
declarations let a served request set (``config.options.SERVED_OPTIONS``) plus ``ignore`` boxes; anything else
is a client error (400).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from imgdiff_rt.config.build import pipeline_from_config
from imgdiff_rt.config.options import PAIR_OPTIONS, SERVED_OPTIONS
from imgdiff_rt.config.requests import RequestOptions, parse_ignore, parse_json_options, request_pipeline
from imgdiff_rt.config.tree import PipelineConfig
from imgdiff_rt.errors import InputError
from imgdiff_rt.imageio import DEFAULT_MAX_PIXELS, decode_pair_bytes
from imgdiff_rt.triton import bls
from imgdiff_rt.triton.glue import GLUE
from imgdiff_rt.triton.python_models import PythonModelBase

MODEL = "imgdiff_pipeline"
INPUTS, OUTPUTS = GLUE[MODEL]
OPTIONS_INPUT = INPUTS[2].name
IGNORE_FIELD = "ignore"
MAX_OPTIONS_BYTES = 64 * 1024  # a request's JSON configuration: a few hundred bytes in practice
MAX_PIPELINES = 8  # opened pipelines kept, one per distinct model choice (detector, captioner, CLIP settings)


def server_config(bundle_dir: Path, precision: str, max_pixels: int) -> PipelineConfig:
    """Every option at its default, on this repository's bundle and BLS sessions."""
    return PipelineConfig.from_values({"models": bundle_dir, "backend": bls.BACKEND, "precision": precision,
                                       "max_pixels": max_pixels})


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
        self.config = server_config(bundle_dir, precision, max_pixels)
        self.options = RequestOptions(dict(self.config.values), SERVED_OPTIONS,
                                      server_hint="fixed when the repository is written: `imgdiff-rt triton-repo`")
        self._pipelines: OrderedDict[str, Any] = OrderedDict()

    def parse(self, text: bytes | None):
        fields = parse_json_options(text) if text is not None else {}
        ignore = parse_ignore(fields.pop(IGNORE_FIELD), from_json=True) if IGNORE_FIELD in fields else None
        return self.options.parse(fields, from_json=True), ignore

    def pipeline(self, overrides: dict[str, Any]):
        models = {k: v for k, v in overrides.items() if k not in PAIR_OPTIONS}
        key = json.dumps(models, sort_keys=True, default=str)
        base = self._pipelines.pop(key, None)
        if base is None:
            base = pipeline_from_config(self.config.with_values(models)).open()
        self._pipelines[key] = base
        while len(self._pipelines) > MAX_PIPELINES:
            self._pipelines.popitem(last=False)[1].close()
        pair = {k: v for k, v in overrides.items() if k in PAIR_OPTIONS}
        return request_pipeline(base, pair)

    def answer(self, left: bytes, right: bytes, options: bytes | None) -> str:
        overrides, ignore = self.parse(options)
        pipeline = self.pipeline(overrides)
        pixels = decode_pair_bytes(left, right, pipeline.max_pixels, (INPUTS[0].name, INPUTS[1].name))
        return pipeline.process(*pixels, id="pair", ignore=ignore).result.to_json(None)

    def close(self) -> None:
        while self._pipelines:
            self._pipelines.popitem()[1].close()


class PipelineModel(PythonModelBase):
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
