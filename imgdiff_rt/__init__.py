"""imgdiff-rt: find and describe the differences between two similar images, fast."""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import ImgDiffError  # noqa: E402
from .pipeline import Pipeline  # noqa: E402
from .result import Region, Result  # noqa: E402

__all__ = ["ImgDiffError", "Pipeline", "Region", "Result", "__version__"]
