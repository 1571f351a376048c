"""The pixels a captioner sees: region crops (BLIP) or the boxed side-by-side picture (LLaVA), turned into
``pixel_values`` by the model's own image processor as saved in the bundle's generation folder.

Cropping policy (why: BLIP's processor squashes any crop to a square and CLIP/LLaVA's centre-crops it, so a
long thin box would be distorted or cut):

* a region's crop is a **square window** centred on its box, side = ``max(w, h) * (1 + 2 * CONTEXT)`` (a
  little surrounding context helps the captioner name the object), at least ``MIN_CROP_PX``; it is shifted to
  stay inside the image and clipped only when the image itself is smaller than the window;
* the left crop comes from the left image; the right crop from the right image as the user gave it
  (``right_unwarped``), with the box mapped through the registration homography when there is one, so the
  crop never contains the black borders of a warped image;
* LLaVA's side-by-side picture (about 2:1) is **padded to a square** with the processor's mean colour before
  the processor runs, as LLaVA-1.5's ``expand2square`` does, so neither box is cut off by the centre crop.

The processor is ``AutoImageProcessor.from_pretrained(generation folder)``: resize mode, size, resampling,
rescale and mean/std are exactly what the bundle recorded (for --tiny/--random-init bundles the exporter
saved a BlipImageProcessor / CLIPImageProcessor config with the model's image size and the CLIP mean/std).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from imgdiff_rt.annotate import right_frame_box, side_by_side
from imgdiff_rt.errors import ModelError
from imgdiff_rt.result import Region

CONTEXT = 0.15  # share of the box side added as context on each side of a crop
MIN_CROP_PX = 32  # a crop window is never smaller than this (tiny boxes need their surroundings)


def square_window(bbox: tuple[int, int, int, int], size: tuple[int, int], context: float = CONTEXT,
                  min_side: int = MIN_CROP_PX) -> tuple[int, int, int, int]:
    """A square (x0, y0, x1, y1) around ``bbox`` inside an image of ``size`` (w, h); see the module doc."""
    w, h = size
    x0, y0, x1, y1 = bbox
    side = max(int(round(max(x1 - x0, y1 - y0) * (1 + 2 * context))), min_side, 1)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2

    def span(centre: float, limit: int) -> tuple[int, int]:
        s = min(side, limit)
        lo = int(round(centre - s / 2))
        lo = min(max(lo, 0), limit - s)
        return lo, lo + s

    wx0, wx1 = span(cx, w)
    wy0, wy1 = span(cy, h)
    return wx0, wy0, wx1, wy1


def homography_of(images) -> np.ndarray | None:
    """The registration homography of a PairImages, or None when the pair was not registered."""
    a = getattr(images, "alignment", None)
    return a.matrix if a is not None and a.method != "none" else None


def region_crops(images, region: Region) -> tuple[np.ndarray, np.ndarray]:
    """(left crop, right crop) of one region, both HxWx3 uint8 RGB."""
    h, w = images.left.shape[:2]
    lx0, ly0, lx1, ly1 = square_window(region.bbox, (w, h))
    right = images.right_unwarped
    rbox = right_frame_box(region.bbox, homography_of(images), (w, h))
    if rbox[2] <= rbox[0] or rbox[3] <= rbox[1]:  # mapped outside the right image: use the same place
        rbox = region.bbox
    rx0, ry0, rx1, ry1 = square_window(rbox, (right.shape[1], right.shape[0]))
    return images.left[ly0:ly1, lx0:lx1], right[ry0:ry1, rx0:rx1]


def boxed_side_by_side(images, region: Region) -> np.ndarray:
    """Img-Diff's picture for one region: left | 20 px black bar | right, the region boxed in red on both."""
    return side_by_side(images.left, images.right_unwarped, [region], homography_of(images), numbered=False)


def pad_to_square(image: np.ndarray, fill: tuple[int, int, int]) -> np.ndarray:
    """Centre ``image`` on a square canvas of ``fill`` colour (LLaVA-1.5's expand2square)."""
    h, w = image.shape[:2]
    if h == w:
        return image
    side = max(h, w)
    canvas = np.empty((side, side, 3), np.uint8)
    canvas[:] = fill
    top, left = (side - h) // 2, (side - w) // 2
    canvas[top:top + h, left:left + w] = image
    return canvas


class ImagePreprocessor:
    """The model's image processor from the bundle: ``__call__(list of HxWx3 uint8) -> float32 NCHW``."""

    def __init__(self, processor, image_size: int):
        self.processor = processor
        self.image_size = int(image_size)
        mean = getattr(processor, "image_mean", None) or [0.5, 0.5, 0.5]
        self.mean_colour = tuple(int(round(m * 255)) for m in mean)

    @classmethod
    def from_folder(cls, folder: str | Path, image_size: int) -> "ImagePreprocessor":
        from transformers import AutoImageProcessor

        try:
            processor = AutoImageProcessor.from_pretrained(str(folder))
        except (OSError, ValueError) as e:
            raise ModelError(f"no usable image processor config in {folder}: {str(e).splitlines()[0]}; "
                             "re-export the bundle with `imgdiff-rt export`") from None
        return cls(processor, image_size)

    def __call__(self, images: list[np.ndarray]) -> np.ndarray:
        pixels = self.processor(images=[np.require(i, requirements=("C", "W")) for i in images], return_tensors="np")
        out = np.ascontiguousarray(pixels["pixel_values"], dtype=np.float32)
        if out.shape[-2:] != (self.image_size, self.image_size):
            # The processor config and the exported graph disagree: the bundle is inconsistent.
            raise ModelError(f"image processor gives {out.shape[-2:]} pixels but the encoder takes "
                             f"{self.image_size}x{self.image_size}; re-export the bundle")
        return out
