"""Reading images safely into 8-bit RGB arrays, and writing them atomically.

Every failure becomes an :class:`InputError` subclass whose message names the file and the problem, so the
CLI can print one line. The pixel cap is checked from the header, before any pixel is decoded.
"""

from __future__ import annotations

import io
import os
import warnings
from typing import Union

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from imgdiff_rt.errors import ImageReadError, ImageTooLargeError, InputError
from imgdiff_rt.files import read_regular_file, write_bytes_atomic

#: Pixel cap per image, checked from the header before decoding. A pair takes about PAIR_BYTES_PER_PIXEL bytes
#: of memory per pixel of one image (measured, see README "Bad input"), so the default keeps a pair near 2 GB.
DEFAULT_MAX_PIXELS = 30_000_000
#: the largest pair the tiled path (``--tiled``, detectors/pixel/tiles.py) decodes: the pair itself takes 6 bytes a pixel
TILED_MAX_PIXELS = 300_000_000
PAIR_BYTES_PER_PIXEL = 70  # peak RSS, pixel detector: 330 MB at 3 MP, 944 MB at 12 MP (+68 B/px)
#: File-size cap: an uncompressed 30 MP RGBA BMP/TIFF is 120 MB; nothing legitimate is bigger than this.
MAX_IMAGE_FILE_BYTES = 256 << 20
#: The formats the tool documents; Pillow's other decoders (EPS via Ghostscript, PSD, ICO, ...) are never tried.
IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF")  # camera MPO files open as JPEG
MIN_SIDE = 8  # below this there is nothing to blur, segment or describe

ImageSource = Union[str, os.PathLike, Image.Image, np.ndarray]

# Truncated files must fail, not decode half an image silently.
ImageFile.LOAD_TRUNCATED_IMAGES = False


def _check_size(name: str, w: int, h: int, max_pixels: int) -> None:
    if w * h > max_pixels:
        tiled = (f"; or compare it in strips with --tiled (bounded memory, pairs up to {TILED_MAX_PIXELS / 1e6:g} MP)"
                 if w * h <= TILED_MAX_PIXELS and max_pixels < TILED_MAX_PIXELS else "")
        raise ImageTooLargeError(
            f"{name}: image is {w}x{h} = {w * h / 1e6:.1f} MP, over the {max_pixels / 1e6:g} MP cap "
            f"(possible decompression bomb; raise it with --max-pixels{tiled})"
        )
    if w < MIN_SIDE or h < MIN_SIDE:
        raise ImageReadError(f"{name}: image is {w}x{h}; both sides must be at least {MIN_SIDE} px")


def pil_to_rgb8(img: Image.Image) -> np.ndarray:
    """Any PIL mode -> HxWx3 uint8 RGB. Alpha is composited onto white; 16/32-bit data is scaled to 8 bits."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img).astype(np.float64)
        if mode == "F":
            top = 1.0 if arr.max(initial=0) <= 1.0 else 65535.0
        else:
            top = 65535.0 if arr.max(initial=0) > 255 or mode.startswith("I;16") else 255.0
        gray = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    if mode != "RGB":  # convert copies the image even when it is RGB already
        img = img.convert("RGB")
    return np.ascontiguousarray(np.asarray(img, dtype=np.uint8))


def array_to_rgb8(arr: np.ndarray, name: str = "<array>") -> np.ndarray:
    """An in-memory array (HxW, HxWx1/3/4; uint8, uint16 or float in 0..1) -> HxWx3 uint8 RGB."""
    a = np.asarray(arr)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise ImageReadError(f"{name}: expected an HxW, HxWx3 or HxWx4 array, got shape {a.shape}")
    if a.dtype == np.uint8:
        pass
    elif a.dtype == np.uint16:
        a = (a.astype(np.float64) / 257.0 + 0.5).astype(np.uint8)
    elif np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise ImageReadError(f"{name}: array holds NaN or infinite values")
        a = (np.clip(a, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    else:
        raise ImageReadError(f"{name}: unsupported array dtype {a.dtype}")
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    elif a.shape[2] == 4:
        alpha = a[:, :, 3:4].astype(np.float32) / 255.0
        a = (a[:, :, :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha) + 0.5).astype(np.uint8)
    return np.ascontiguousarray(a)


def read_image(source: ImageSource, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Load a path, PIL image or array as HxWx3 uint8 RGB, EXIF orientation applied."""
    if isinstance(source, np.ndarray):
        rgb = array_to_rgb8(source)
        _check_size("<array>", rgb.shape[1], rgb.shape[0], max_pixels)
        return rgb
    if isinstance(source, Image.Image):
        _check_size("<image>", source.width, source.height, max_pixels)
        return pil_to_rgb8(ImageOps.exif_transpose(source))
    if not isinstance(source, (str, os.PathLike)):
        raise InputError(f"cannot read an image from a {type(source).__name__}")
    name = str(source)
    data = read_regular_file(source, MAX_IMAGE_FILE_BYTES, what="an image file")
    if not data:
        raise ImageReadError(f"{name}: file is empty (0 bytes)")
    return decode_image_bytes(data, name, max_pixels)


def decode_image_bytes(data: bytes, name: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            # Pillow's own bomb warning/error is replaced by our header check with a clearer message.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            saved = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = None
            try:
                img = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
                _check_size(name, img.width, img.height, max_pixels)
                fast = _png_rgb_by_opencv(data, img)
                if fast is not None:
                    return fast
                img.load()
            finally:
                Image.MAX_IMAGE_PIXELS = saved
    except InputError:
        raise
    except (UnidentifiedImageError, ImportError):
        # ImportError: a library that wraps Image.open (Ultralytics does, once imported) may try to load an
        # optional HEIF plugin for files Pillow cannot identify. Either way the file is not an image we read.
        raise ImageReadError(f"{name}: not a recognised image format (JPEG, PNG, WebP, BMP, TIFF)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        msg = str(e) or type(e).__name__
        if "truncated" in msg.lower() or isinstance(e, EOFError):
            raise ImageReadError(f"{name}: image data is truncated or corrupt ({msg})") from None
        raise ImageReadError(f"{name}: cannot decode image ({msg})") from None
    ImageOps.exif_transpose(img, in_place=True)  # in place: no copy of a large image without an orientation tag
    return pil_to_rgb8(img)


def _png_rgb_by_opencv(data: bytes, header: Image.Image) -> np.ndarray | None:
    """An 8-bit RGB PNG without EXIF decoded by OpenCV (the same lossless pixels; it releases the GIL, so a
    pair decodes on two cores): None for anything else, which Pillow decodes."""
    if header.format != "PNG" or header.mode != "RGB" or "exif" in header.info or "transparency" in header.info:
        return None
    import cv2

    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if bgr is None or bgr.shape[:2] != (header.height, header.width):
        return None
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_pair(left: ImageSource, right: ImageSource, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[np.ndarray,
                                                                                                   np.ndarray]:
    """Both images of a pair, decoded side by side on two threads when both are files."""
    if not all(isinstance(s, (str, os.PathLike)) for s in (left, right)):
        return read_image(left, max_pixels), read_image(right, max_pixels)
    return _both(read_image, (left, max_pixels), (right, max_pixels))


def decode_pair_bytes(left: bytes, right: bytes, max_pixels: int = DEFAULT_MAX_PIXELS,
                      names: tuple[str, str] = ("left", "right")) -> tuple[np.ndarray, np.ndarray]:
    """Both encoded images of a pair (a served request's), decoded side by side as ``read_pair`` decodes
    files; errors name the image by ``names``."""
    return _both(decode_image_bytes, (left, names[0], max_pixels), (right, names[1], max_pixels))


def _both(decode, first_args: tuple, second_args: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Two decodes on two threads (the decoders release the GIL); the first one's error wins."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(decode, *first_args)
        second = pool.submit(decode, *second_args)
        return first.result(), second.result()


def encode_png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def write_png_atomic(path: str | os.PathLike[str], rgb: np.ndarray) -> None:
    write_bytes_atomic(path, encode_png(rgb))


def right_at_left_size(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """``right`` resized to ``left``'s size (``right`` itself when they match): area when shrinking, else linear."""
    import cv2  # only a pair of different sizes needs OpenCV here

    h, w = left.shape[:2]
    rh, rw = right.shape[:2]
    if (rh, rw) == (h, w):
        return right
    return cv2.resize(right, (w, h), interpolation=cv2.INTER_AREA if rw * rh > w * h else cv2.INTER_LINEAR)
