"""Calls of imgdiff-rt's own served models: ``detect`` (the ``imgdiff_detect`` ensemble) and ``caption``
(``imgdiff_caption``), over the runtime's ``TritonClient``, which this module also names for its callers."""

from __future__ import annotations

import numpy as np

from imgdiff_rt.runtime.backends.triton_backend import (  # noqa: F401  (the client API, named here too)
    CLIENT_ERRORS, DEFAULT_URL, PROTOCOLS, TritonClient, TritonSession, default_protocol, default_url,
    open_triton, probe_protocol, resolve_endpoint, wire_dtype)
from imgdiff_rt.triton.glue import DETECT_INPUTS, DETECT_OUTPUTS, GLUE


def detect(client: TritonClient, left: bytes, right: bytes) -> dict[str, np.ndarray]:
    """``imgdiff_detect`` on two encoded images: {"regions", "similarity", "region_scores"}."""
    feeds = {t.name: np.frombuffer(b, np.uint8) for t, b in zip(DETECT_INPUTS, (left, right))}
    return client.infer("imgdiff_detect", feeds, [t.name for t in DETECT_OUTPUTS])


def caption(client: TritonClient, left: bytes, right: bytes, regions: np.ndarray) -> dict[str, np.ndarray]:
    """``imgdiff_caption``: token ids (-1 padded) and captions of each region's left and right crop."""
    inputs, outputs = GLUE["imgdiff_caption"]
    feeds = {inputs[0].name: np.frombuffer(left, np.uint8), inputs[1].name: np.frombuffer(right, np.uint8),
             inputs[2].name: np.asarray(regions, np.int64).reshape(-1, 4)}
    return client.infer("imgdiff_caption", feeds, [t.name for t in outputs])
