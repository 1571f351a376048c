"""The annotated picture of a result: both images side by side with a 20 px black bar between them, each
region boxed in red and numbered on both sides (the layout Img-Diff's instruction data uses)."""

from __future__ import annotations

from typing import Iterable

import cv2
import numpy as np

from imgdiff_rt.result import Region

BAR_PX = 20
RED = (230, 25, 25)
SHADE_GREY, SHADE_ALPHA, HATCH_PX = 160, 0.6, 10  # ignored pixels: faded to grey with dark diagonal hatching


def right_frame_box(bbox: tuple[int, int, int, int], homography: np.ndarray | None,
                    size: tuple[int, int]) -> tuple[int, int, int, int]:
    """Map a left-frame box into the right image (inverse registration), clipped to the image."""
    if homography is None:
        return bbox
    x0, y0, x1, y1 = bbox
    corners = np.float32([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]).reshape(-1, 1, 2)
    pts = cv2.perspectiveTransform(corners, np.linalg.inv(homography)).reshape(-1, 2)
    w, h = size
    return (int(max(0, pts[:, 0].min())), int(max(0, pts[:, 1].min())),
            int(min(w, pts[:, 0].max())), int(min(h, pts[:, 1].max())))


def _draw_box(img: np.ndarray, bbox: tuple[int, int, int, int], label: str | None, thickness: int) -> None:
    x0, y0, x1, y1 = bbox
    cv2.rectangle(img, (x0, y0), (max(x0, x1 - 1), max(y0, y1 - 1)), RED, thickness)
    if label is None:
        return
    scale = max(0.4, min(img.shape[:2]) / 600)
    (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, max(1, thickness - 1))
    ty = y0 - 2 if y0 - th - base - 2 >= 0 else min(img.shape[0] - 1, y1 + th + base)
    cv2.rectangle(img, (x0, ty - th - base), (x0 + tw + 4, ty + 2), RED, -1)
    cv2.putText(img, label, (x0 + 2, ty - base + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255),
                max(1, thickness - 1), cv2.LINE_AA)


def shade(img: np.ndarray, mask: np.ndarray) -> None:
    """Grey out and hatch ``mask``'s pixels of ``img`` in place: ignored, so visibly not compared."""
    if not mask.any():
        return
    ys, xs = np.nonzero(mask)
    faded = (img[ys, xs].astype(np.float32) * (1 - SHADE_ALPHA) + np.float32(SHADE_GREY) * SHADE_ALPHA)
    hatch = (xs + ys) % HATCH_PX < 2
    faded[hatch] = SHADE_GREY // 2
    img[ys, xs] = faded.astype(np.uint8)


def side_by_side(left: np.ndarray, right: np.ndarray, regions: Iterable[Region],
                 homography: np.ndarray | None = None, numbered: bool = True,
                 ignore: np.ndarray | None = None) -> np.ndarray:
    """``right`` is the right image at the left image's size (not warped); boxes are mapped into it. ``ignore``
    (left-frame pixels) is shaded on both sides."""
    h, w = left.shape[:2]
    canvas = np.zeros((h, 2 * w + BAR_PX, 3), np.uint8)
    lhs, rhs = left.copy(), right.copy()
    if ignore is not None:
        shade(lhs, ignore)
        shade(rhs, ignore)
    thickness = max(2, min(h, w) // 200)
    for r in regions:
        label = str(r.id) if numbered else None
        _draw_box(lhs, r.bbox, label, thickness)
        _draw_box(rhs, right_frame_box(r.bbox, homography, (w, h)), label, thickness)
    canvas[:, :w] = lhs
    canvas[:, w + BAR_PX:] = rhs
    return canvas


FOOTER_BG, FOOTER_TEXT = (40, 40, 40), (255, 210, 0)


def with_footer(canvas: np.ndarray, text: str | None) -> np.ndarray:
    """``canvas`` with a dark strip below it carrying ``text`` (e.g. that the weights were not trained), shrunk
    to fit the width; the picture itself is untouched. No text: ``canvas`` as it is."""
    if not text:
        return canvas
    h, w = canvas.shape[:2]
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, max(0.35, min(0.6, w / 1400))
    (tw, th), base = cv2.getTextSize(text, font, scale, 1)
    if tw > w - 8:
        scale *= (w - 8) / tw
        (tw, th), base = cv2.getTextSize(text, font, scale, 1)
    strip = th + base + 8
    out = np.empty((h + strip, w, 3), np.uint8)
    out[:h] = canvas
    out[h:] = FOOTER_BG
    cv2.putText(out, text, (4, h + 4 + th), font, scale, FOOTER_TEXT, 1, cv2.LINE_AA)
    return out
