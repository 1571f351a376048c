"""Dense registration for parallax and local motion: DIS optical flow both ways, a forward-backward consistency
check, and a smooth camera field the flow may deviate from only a little.

Why not the raw flow: optical flow also "explains" real changes (a moved object is tracked, an added object on
a plain floor is flowed around). So the flow is trusted only where it is forward-backward consistent and stays
within ``max_deviation`` pixels of the camera field (a homography fitted to the consistent flow plus its
heavily smoothed residual, which carries the parallax of large structures); elsewhere the camera field is used.
An object that moved further than that, appeared, vanished or changed colour therefore stays a difference.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

FLOW_MAX_SIDE = 640  # flow is computed on a copy this size: camera motion is smooth, and it keeps flow fast
FB_TOLERANCE_PX = 1.0  # forward + backward flow must cancel within this (plus 5% of the motion)
MAX_DEVIATION_SHARE = 0.05  # how far (share of the diagonal) the flow may depart from the camera field
MIN_CONSISTENT_SHARE = 0.3  # below this share of consistent textured pixels the flow is not trusted at all
TEXTURE_GRADIENT = 4.0  # grey levels per pixel: where flow can be checked (a plain floor or sky matches anywhere)
DIS_PRESET = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM
SNAP_PX = 0.5  # a camera field that moves nothing by this much is no motion (no resampling)


@dataclass(frozen=True)
class FlowFit:
    """Flow registration of the right image onto the left one."""

    flow: np.ndarray | None  # HxWx2 float32: left pixel (x, y) is seen at (x, y) + flow in the right image
    consistent_share: float  # share of textured pixels whose forward and backward flow agree
    residual_px: float  # median end-point error of the forward-backward check, in full-resolution px
    median_motion_px: float  # median length of the used flow
    homography: np.ndarray | None = None  # 3x3 fitted to the consistent flow, left pixels -> right pixels
    parallax_px: float = 0.0  # 95th percentile of how far the used flow departs from that homography
    note: str = ""
    backward: np.ndarray | None = None  # the same for the other direction: right pixel -> left image
    camera: np.ndarray | None = None  # the smooth camera field (left -> right) the flow was held to


def _gray(rgb: np.ndarray, scale: float) -> np.ndarray:
    g = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    if scale != 1.0:
        g = cv2.resize(g, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return cv2.equalizeHist(g)  # DIS compares patches: equalising removes most of a global light change


def textured(gray: np.ndarray) -> np.ndarray:
    """Pixels with enough local gradient for motion to be measured there. On a plain floor or sky any flow
    matches, so the forward-backward check says nothing there either way: the share is counted on texture."""
    g = cv2.GaussianBlur(gray.astype(np.float32), (0, 0), 1.0)
    magnitude = np.hypot(cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1)) / 8.0
    return magnitude > TEXTURE_GRADIENT


def _length(vectors: np.ndarray) -> np.ndarray:
    """Per-pixel length of an HxWx2 field (np.linalg.norm over the last axis is several times slower)."""
    return cv2.magnitude(np.ascontiguousarray(vectors[..., 0]), np.ascontiguousarray(vectors[..., 1]))


def _sample(field: np.ndarray, flow: np.ndarray) -> np.ndarray:
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(field, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def smooth(field: np.ndarray, sigma: float) -> np.ndarray:
    """A Gaussian blur with a large sigma, done on a copy shrunk so the kernel stays ~8 px: the result is smooth
    anyway, and a full-size kernel of hundreds of pixels would cost more than the rest of the detector."""
    h, w = field.shape[:2]
    factor = max(1, int(sigma / 4))
    if factor == 1:
        return cv2.GaussianBlur(field, (0, 0), sigma)
    small = cv2.resize(field, (max(1, w // factor), max(1, h // factor)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma / factor)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def camera_field(flow: np.ndarray, consistent: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Homography fitted to the consistent flow, plus its residual smoothed at 1/8 of the image size.

    Returns (camera field, the homography's own flow, the homography or None)."""
    h, w = flow.shape[:2]
    ys, xs = np.nonzero(consistent[::4, ::4])
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    base = np.zeros_like(flow)
    hom = None
    if len(xs) >= 8:
        src = np.stack([xs * 4, ys * 4], axis=1).astype(np.float32)
        dst = src + flow[ys * 4, xs * 4]
        hom, _ = cv2.findHomography(src, dst, cv2.RANSAC, 1.5)
        if hom is None or not np.isfinite(hom).all():
            hom = None
        else:
            pts = cv2.perspectiveTransform(np.stack([gx, gy], axis=2).reshape(-1, 1, 2), hom).reshape(h, w, 2)
            base = (pts - np.stack([gx, gy], axis=2)).astype(np.float32)
    weight = consistent.astype(np.float32)
    sigma = max(h, w) / 8.0
    residual = (flow - base) * weight[..., None]
    num = smooth(residual, sigma)
    den = smooth(weight, sigma)[..., None]
    return base + num / np.maximum(den, 1e-3), base, hom


def _clamped(flow: np.ndarray, consistent: np.ndarray, limit: float) -> tuple[np.ndarray, np.ndarray,
                                                                          np.ndarray | None]:
    """The flow where it stays within ``limit`` of its camera field, the field elsewhere; and the field, the
    homography's own flow and the homography."""
    field, base, hom = camera_field(flow, consistent)
    deviation = _length(flow - field)
    return np.where((deviation <= limit)[..., None], flow, field), field, base, hom


def _full(flow: np.ndarray, size: tuple[int, int], scale: float) -> np.ndarray:
    return flow if scale == 1.0 else cv2.resize(flow, size, interpolation=cv2.INTER_LINEAR) / scale


def fit_flow(left: np.ndarray, right: np.ndarray) -> FlowFit:
    """Register ``right`` onto ``left`` (HxWx3 uint8 RGB, same size) with constrained dense flow, both ways."""
    h, w = left.shape[:2]
    scale = min(1.0, FLOW_MAX_SIDE / max(h, w))
    lg, rg = _gray(left, scale), _gray(right, scale)
    dis = cv2.DISOpticalFlow_create(DIS_PRESET)
    fwd = dis.calc(lg, rg, None)
    bwd = dis.calc(rg, lg, None)
    error = _length(fwd + _sample(bwd, fwd))
    consistent = error <= FB_TOLERANCE_PX * scale + 0.05 * _length(fwd)
    back_error = _length(bwd + _sample(fwd, bwd))
    back_consistent = back_error <= FB_TOLERANCE_PX * scale + 0.05 * _length(bwd)
    texture = textured(lg)
    share = float(consistent[texture].mean()) if texture.any() else 0.0
    residual = float(np.median(error)) / scale
    if share < MIN_CONSISTENT_SHARE:
        return FlowFit(None, share, residual, 0.0, note="too few forward-backward consistent pixels")
    limit = MAX_DEVIATION_SHARE * float(np.hypot(*lg.shape))
    used, field, base, hom = _clamped(fwd, consistent, limit)
    back, _, _, _ = _clamped(bwd, back_consistent, limit)
    parallax = float(np.percentile(_length(used - base), 95)) / scale
    if hom is not None and scale != 1.0:  # the fit was made on the small copy
        s_ = np.diag([scale, scale, 1.0])
        hom = np.linalg.inv(s_) @ hom @ s_
    used = _full(used, (w, h), scale)
    motion = _length(used)
    # The camera field, not the raw flow, decides: flow inside a changed area is not camera motion.
    if float(_length(field).max()) / scale < SNAP_PX:
        return FlowFit(None, share, residual, float(np.median(motion)), hom, parallax,
                       note="no motion found; not warped")
    return FlowFit(used.astype(np.float32), share, residual, float(np.median(motion)), hom, parallax,
                   backward=_full(back, (w, h), scale).astype(np.float32),
                   camera=_full(field, (w, h), scale).astype(np.float32))


def warp_with_flow(right: np.ndarray, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The right image resampled into the left frame, and where it has real content."""
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    mx, my = gx + flow[..., 0], gy + flow[..., 1]
    warped = cv2.remap(right, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    valid = (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)
    valid = cv2.erode(valid.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    return warped, valid


@dataclass(frozen=True)
class ReverseView:
    """The pair seen from the right image: the left image flowed into the right frame. Differencing there finds
    what appeared in the right image even where the forward flow "flowed around" it (a new object on a plain
    floor); ``to_left`` brings such a right-frame map back along the smooth camera field."""

    right: np.ndarray
    left_in_right: np.ndarray
    valid: np.ndarray
    camera: np.ndarray  # left pixel x sees the right frame at x + camera(x)

    def to_left(self, right_frame_map: np.ndarray) -> np.ndarray:
        return _sample(right_frame_map, self.camera)


def reverse_view(left: np.ndarray, right: np.ndarray, fitted: FlowFit) -> ReverseView | None:
    if fitted.backward is None or fitted.camera is None:
        return None
    left_in_right, valid = warp_with_flow(left, fitted.backward)
    return ReverseView(right, left_in_right, valid, fitted.camera)
