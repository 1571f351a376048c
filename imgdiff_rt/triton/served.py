"""The client of ``imgdiff_pipeline``: one request per pair, the server's result JSON back.

``ServedPipeline`` stands where a ``Pipeline`` stands for `run`, `run --pairs` (local or Ray), `eval` and
`web`: ``process(left, right, id, ignore) -> Processed``. The image files travel as they are (no re-encoding;
arrays and PIL images as PNG); the request's options are the ones ``config.options.SERVED_OPTIONS`` names. The pixels
for pictures (``--out``) are decoded only when something reads them.
"""

from __future__ import annotations

import copy
import io
import json
import os
from typing import Any

import numpy as np

from imgdiff_rt.errors import ImageReadError, InputError
from imgdiff_rt.files import read_regular_file
from imgdiff_rt.detectors.ignore import IgnoreSpec
from imgdiff_rt.imageio import DEFAULT_MAX_PIXELS, MAX_IMAGE_FILE_BYTES, ImageSource, array_to_rgb8, read_image
from imgdiff_rt.imageio import right_at_left_size
from imgdiff_rt.pipeline import PairImages, Processed
from imgdiff_rt.result import default_pair_id, source_name
from imgdiff_rt.result import Result
from imgdiff_rt.triton.client import TritonClient
from imgdiff_rt.triton.glue import GLUE

MODEL = "imgdiff_pipeline"
INPUTS, OUTPUTS = GLUE[MODEL]


def encoded(source: ImageSource) -> bytes:
    """The bytes the server decodes: a file as it is on disk, an array or PIL image as PNG."""
    if isinstance(source, (str, os.PathLike)):
        data = read_regular_file(source, MAX_IMAGE_FILE_BYTES, what="an image file")
        if not data:
            raise ImageReadError(f"{source}: file is empty (0 bytes)")
        return data
    from PIL import Image

    if isinstance(source, np.ndarray):
        source = Image.fromarray(array_to_rgb8(source))
    if not isinstance(source, Image.Image):
        raise InputError(f"cannot send an image from a {type(source).__name__}")
    buf = io.BytesIO()
    source.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


class LazyPairImages:
    """``PairImages`` for the pictures of a served result, decoded on first use (most callers never look)."""

    def __init__(self, left: ImageSource, right: ImageSource, max_pixels: int):
        self._sources, self._max_pixels, self._images = (left, right), max_pixels, None

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        if self._images is None:
            left, right = (read_image(s, self._max_pixels) for s in self._sources)
            right = right_at_left_size(left, right)
            self._images = PairImages(left=left, right_unwarped=right, right=right)
        return getattr(self._images, name)


class ServedPipeline:
    """``Pipeline``'s place for a Triton server's ``imgdiff_pipeline``. ``options``: the request's fields
    (names from ``config.options.SERVED_OPTIONS``); ``ignore``: every pair's ignore boxes."""

    def __init__(self, options: dict[str, Any], url: str | None = None, protocol: str | None = None,
                 ignore: IgnoreSpec | None = None, max_pixels: int = DEFAULT_MAX_PIXELS, timeout: float = 120.0,
                 retries: int = 3):
        self.options = {k: v for k, v in options.items() if v is not None}
        self.url, self.protocol, self.timeout, self.retries = url, protocol, timeout, retries
        self.ignore = ignore or IgnoreSpec()
        self.max_pixels = int(self.options.get("max_pixels", max_pixels))
        self.detector, self.captioner = self.options.get("detector"), self.options.get("captioner", "none")
        self._client: TritonClient | None = None

    # -- Pipeline's interface ----------------------------------------------------------------------------------
    def open(self) -> "ServedPipeline":
        if self._client is None:
            self._client = TritonClient(self.url, self.protocol, self.timeout, self.retries)
            self._client.check_model(MODEL)
        return self

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def __enter__(self) -> "ServedPipeline":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self) -> dict:  # a Ray actor opens its own connection
        return {**self.__dict__, "_client": None}

    def settings(self) -> dict:
        """What this client asks for (the result's own settings say what the server ran)."""
        return {"served": {"model": MODEL, "url": self.url, "protocol": self.protocol},
                "request": self.request_fields(None)}

    def weights(self) -> dict:
        return {"graphs": {}, "note": "each result's weights block is the server's"}

    def with_options(self, overrides: dict[str, Any]) -> "ServedPipeline":
        """A copy sending ``overrides`` on top of this pipeline's options (the web API's per-request options)."""
        twin = copy.copy(self)
        twin.options = {**self.options, **{k: v for k, v in overrides.items() if v is not None}}
        twin.max_pixels = int(twin.options.get("max_pixels", self.max_pixels))
        return twin

    def request_fields(self, ignore: IgnoreSpec | None) -> dict[str, Any]:
        fields = dict(self.options)
        boxes = self.ignore.merged(ignore).boxes
        if boxes:
            fields["ignore"] = [list(b) for b in boxes]
        return fields

    def __call__(self, left: ImageSource, right: ImageSource, id: str | None = None,
                 ignore: IgnoreSpec | None = None) -> Result:
        return self.process(left, right, id, ignore).result

    def process(self, left: ImageSource, right: ImageSource, id: str | None = None,
                ignore: IgnoreSpec | None = None) -> Processed:
        """One request: both images and the options; the result JSON back, named as `run` names it."""
        feeds = {INPUTS[0].name: np.array([encoded(left)], dtype=object),
                 INPUTS[1].name: np.array([encoded(right)], dtype=object),
                 INPUTS[2].name: np.array([json.dumps(self.request_fields(ignore)).encode()], dtype=object)}
        out = self.open()._client.infer(MODEL, feeds, [OUTPUTS[0].name])[OUTPUTS[0].name]
        result = Result.from_dict(json.loads(out.reshape(-1)[0]))
        result = result.replace(id=id or default_pair_id(left, right), left=source_name(left),
                                right=source_name(right))
        return Processed(result, LazyPairImages(left, right, self.max_pixels))
