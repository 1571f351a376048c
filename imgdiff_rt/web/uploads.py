"""An uploaded image's bytes: read under the size cap and named for error messages. Its format is then sniffed
from its content by the CLI's own reader (``imageio.decode_image_bytes`` opens only ``IMAGE_FORMATS``, whatever
the file name or the declared content type says), which checks the pixel cap from the header before decoding."""

from __future__ import annotations

import re

from imgdiff_rt.errors import ImageReadError, InputError


class UploadTooLarge(InputError):
    """An uploaded file over the per-file byte cap."""


def client_file_name(filename: str | None) -> str | None:
    """The client's file name, path stripped and anything odd replaced (it is echoed back in results)."""
    base = re.sub(r"[^\w.\- ]", "_", re.split(r"[\\/]", filename or "")[-1])[:120]
    return base or None


def display_name(field: str, filename: str | None) -> str:
    """How errors name an upload: the form field and the client's file name."""
    base = client_file_name(filename)
    return f"{field} ({base})" if base else field


def check_upload(data: bytes, name: str, max_bytes: int) -> None:
    """``data`` holds at most ``max_bytes + 1`` bytes of the upload (the reader stops there)."""
    if len(data) > max_bytes:
        raise UploadTooLarge(f"{name}: file is over the {max_bytes / 2**20:.3g} MiB upload cap")
    if not data:
        raise ImageReadError(f"{name}: file is empty (0 bytes)")
