"""``GET /v1/info``: what answers requests — versions, the pipeline's settings, which weights its models carry
(random weights are said to be random), the limits, and the options a request may set."""

from __future__ import annotations

import platform
from typing import Any

from .. import __version__
from ..cli.options import fallback_notice
from ..errors import ImgDiffError
from ..models.bundle import Bundle, library_versions

_LIBRARIES = ("fastapi", "starlette", "uvicorn", "numpy", "opencv-python-headless", "pillow", "onnxruntime",
              "onnxruntime-gpu", "tritonclient")


def weights_info(pipeline) -> dict[str, Any]:
    """Where each model graph's weights came from, from the bundle's manifest."""
    if pipeline.models is None or (pipeline.detector == "pixel" and pipeline.captioner == "none"):
        return {"kinds": [], "note": "no model: the pixel detector and measured descriptions"}
    try:
        bundle = Bundle.load(pipeline.models)
    except ImgDiffError as e:
        return {"kinds": [], "note": f"bundle unreadable: {e}"}
    sources = {key: entry.get("source", {}) for key, entry in bundle.entries.items()}
    kinds = sorted({str(s.get("weights", "unknown")) for s in sources.values() if isinstance(s, dict)})
    note = None
    if {"random-init", "tiny"} & set(kinds):
        note = "some graphs carry random weights: their output is not a trained model's"
    return {"kinds": kinds, "note": note, "graphs": sources}


def info_payload(service, example: bool) -> dict[str, Any]:
    limits = service.limits
    return {
        "name": "imgdiff-rt", "version": __version__, "python": platform.python_version(),
        "libraries": library_versions(_LIBRARIES),
        "pipeline": service.pipeline.settings(),
        "notice": fallback_notice(service.options.server_values.get("detector"),
                                  service.options.server_values.get("models")),
        "weights": weights_info(service.pipeline),
        "limits": {"max_upload_bytes": limits.max_upload_bytes, "max_jobs": limits.max_jobs,
                   "keep_s": limits.keep_s, "keep_bytes": limits.keep_bytes,
                   "max_pixels": service.pipeline.max_pixels},
        "options": service.options.describe(),
        "example": example,
    }
