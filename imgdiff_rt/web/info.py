"""``GET /v1/info``: what answers requests — versions, the pipeline's settings, which weights its models carry
(the library's weights block: random weights are said to be random), the limits, and the options a request may
set."""

from __future__ import annotations

import platform
from typing import Any

from imgdiff_rt import __version__
from imgdiff_rt.models.bundle import library_versions

_LIBRARIES = ("fastapi", "starlette", "uvicorn", "numpy", "opencv-python-headless", "pillow", "onnxruntime",
              "onnxruntime-gpu", "tritonclient")


def info_payload(service, example: bool) -> dict[str, Any]:
    limits = service.limits
    return {
        "name": "imgdiff-rt", "version": __version__, "python": platform.python_version(),
        "libraries": library_versions(_LIBRARIES),
        "pipeline": service.pipeline.settings(),
        "weights": service.pipeline.weights(),
        "notice": service.notice,
        "limits": {"max_upload_bytes": limits.max_upload_bytes, "max_jobs": limits.max_jobs,
                   "keep_s": limits.keep_s, "keep_bytes": limits.keep_bytes,
                   "max_pixels": service.pipeline.max_pixels},
        "options": service.options.describe(),
        "example": example,
    }
