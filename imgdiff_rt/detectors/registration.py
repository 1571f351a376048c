"""Registering the right image onto the left one (camera shake is the commonest reason pixel differencing
fails on real photos). Methods (``align_pair``):

- ``homography``: ORB features + RANSAC homography, with ECC as the fallback (a flat scene or a distant view);
- ``flow``: dense optical flow with a forward-backward check, kept close to a smooth camera field
  (imgdiff_rt.detectors.pixel.flow): handles parallax and local motion without explaining real changes away;
- ``auto``: the flow fit decides: no motion -> not warped; motion a homography explains to within
  ``AUTO_PARALLAX_PX`` -> that homography (one clean resampling); otherwise the flow;
- ``none``: compared as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from imgdiff_rt.detectors.pixel.flow import ReverseView, fit_flow, reverse_view, textured, warp_with_flow
from imgdiff_rt.detectors.pixel.photometric import unchanged_pixels
from imgdiff_rt.errors import UsageError

ALIGN_METHODS = ("none", "homography", "flow", "auto")
DEFAULT_ALIGN = "auto"  # measured across all sets (docs/detection.md)
AUTO_PARALLAX_PX = 0.75  # auto: flow that departs from its homography by less than this is a homography
IDENTICAL_SHARE = 0.5  # this share of textured pixels within 1 grey level: the pair is already registered
MIN_INLIERS = 12
ORB_FEATURES = 3000
ECC_MAX_SIDE = 512
SNAP_PX = 0.5  # a fit that moves no corner by this much is treated as no motion


@dataclass(frozen=True)
class Alignment:
    method: str  # what was used: "orb", "ecc", "flow" or "none"
    matrix: np.ndarray  # 3x3 homography mapping right-image pixels onto left-image pixels (flow: its fit)
    inliers: int
    overlap: float  # share of the left image covered by the warped right image
    note: str = ""
    requested: str = ""  # the --align method asked for
    fit: dict | None = None  # flow: how well it fitted (consistent share, residual, motion, parallax)
    reverse: ReverseView | None = field(default=None, compare=False, repr=False)  # flow: the right-frame view

    def to_settings(self) -> dict:
        return {
            "method": self.method,
            **({"requested": self.requested} if self.requested else {}),
            "matrix": [[round(float(v), 6) for v in row] for row in self.matrix],
            "inliers": int(self.inliers),
            "overlap": round(float(self.overlap), 4),
            **({"fit": self.fit} if self.fit else {}),
            **({"note": self.note} if self.note else {}),
        }


def _plausible(h: np.ndarray, w: int, hgt: int) -> bool:
    """Reject degenerate fits: a shaken camera moves the picture a little, it does not fold or shrink it."""
    if h is None or not np.isfinite(h).all():
        return False
    corners = np.float32([[0, 0], [w, 0], [w, hgt], [0, hgt]]).reshape(-1, 1, 2)
    warped = cv2.perspectiveTransform(corners, h).reshape(-1, 2)
    area = abs(cv2.contourArea(warped.astype(np.float32)))
    if not (0.6 * w * hgt < area < 1.6 * w * hgt):
        return False
    shift = np.abs(warped - corners.reshape(-1, 2)).max()
    return bool(shift < 0.25 * max(w, hgt)) and cv2.isContourConvex(warped.astype(np.float32))


def _orb(left_gray: np.ndarray, right_gray: np.ndarray) -> tuple[np.ndarray | None, int]:
    orb = cv2.ORB_create(nfeatures=ORB_FEATURES)
    kl, dl = orb.detectAndCompute(left_gray, None)
    kr, dr = orb.detectAndCompute(right_gray, None)
    if dl is None or dr is None or len(kl) < MIN_INLIERS or len(kr) < MIN_INLIERS:
        return None, 0
    pairs = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(dr, dl, k=2)
    good = [m[0] for m in pairs if len(m) == 2 and m[0].distance < 0.8 * m[1].distance]
    if len(good) < MIN_INLIERS:
        return None, 0
    src = np.float32([kr[m.queryIdx].pt for m in good]).reshape(-1, 1, 2)
    dst = np.float32([kl[m.trainIdx].pt for m in good]).reshape(-1, 1, 2)
    h, mask = cv2.findHomography(src, dst, cv2.RANSAC, 3.0)
    inliers = int(mask.sum()) if mask is not None else 0
    return (h if inliers >= MIN_INLIERS else None), inliers


def _ecc(left_gray: np.ndarray, right_gray: np.ndarray) -> np.ndarray | None:
    # ECC on a downscaled copy: robust to lighting changes, and the scale keeps it fast.
    scale = min(1.0, ECC_MAX_SIDE / max(left_gray.shape))
    small = lambda g: cv2.resize(g, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)  # noqa: E731
    warp = np.eye(2, 3, dtype=np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 200, 1e-5)
    try:
        _, warp = cv2.findTransformECC(
            small(left_gray).astype(np.float32), small(right_gray).astype(np.float32), warp,
            cv2.MOTION_AFFINE, criteria, None, 5,
        )
    except cv2.error:
        return None
    # ECC's warp maps left coordinates to right ones; invert it to map right onto left, at full scale.
    full = np.vstack([warp, [0, 0, 1]]).astype(np.float64)
    s = np.diag([scale, scale, 1.0])
    return np.linalg.inv(np.linalg.inv(s) @ full @ s)


def register(left: np.ndarray, right: np.ndarray) -> Alignment:
    """Find the homography that maps ``right`` onto ``left`` (both HxWx3 uint8, same size)."""
    h_, w_ = left.shape[:2]
    lg = cv2.cvtColor(left, cv2.COLOR_RGB2GRAY)
    rg = cv2.cvtColor(right, cv2.COLOR_RGB2GRAY)
    hom, inliers = _orb(lg, rg)
    method = "orb"
    if hom is None or not _plausible(hom, w_, h_) or not _improves(lg, rg, hom):
        hom, inliers, method = _ecc(lg, rg), 0, "ecc"
        if hom is None or not _plausible(hom, w_, h_) or not _improves(lg, rg, hom):
            return Alignment("none", np.eye(3), 0, 1.0,
                             note="registration failed or did not improve the match; images compared unaligned")
    if _max_corner_shift(hom, w_, h_) < SNAP_PX:
        # Already aligned: resampling would only blur the right image and light up every edge.
        return Alignment(method, np.eye(3), inliers, 1.0, note="shift under half a pixel; not warped")
    valid = cv2.warpPerspective(np.ones((h_, w_), np.uint8), hom, (w_, h_), flags=cv2.INTER_NEAREST)
    return Alignment(method, hom, inliers, float(valid.mean()))


def _improves(left_gray: np.ndarray, right_gray: np.ndarray, h: np.ndarray) -> bool:
    """Keep a fit only if it makes the images agree better than no warp at all: a fit pulled by the changed
    regions themselves (ECC on a smooth scene, say) must not shift everything else."""
    hgt, w = left_gray.shape
    warped = cv2.warpPerspective(right_gray, h, (w, hgt), flags=cv2.INTER_LINEAR)
    valid = cv2.warpPerspective(np.ones_like(right_gray), h, (w, hgt), flags=cv2.INTER_NEAREST) > 0
    lf, rf, wf = (g.astype(np.float32) for g in (left_gray, right_gray, warped))
    before = float(np.median(np.abs(lf - rf)[valid]))
    after = float(np.median(np.abs(lf - wf)[valid]))
    return after < before


def _max_corner_shift(h: np.ndarray, w: int, hgt: int) -> float:
    corners = np.float32([[0, 0], [w, 0], [w, hgt], [0, hgt]]).reshape(-1, 1, 2)
    return float(np.abs(cv2.perspectiveTransform(corners, h) - corners).max())


def warp_to_left(right: np.ndarray, alignment: Alignment) -> tuple[np.ndarray, np.ndarray | None]:
    """Warp ``right`` into the left frame; also return the mask of pixels the warped image really covers."""
    h_, w_ = right.shape[:2]
    if np.allclose(alignment.matrix, np.eye(3)):
        return right, None
    warped = cv2.warpPerspective(right, alignment.matrix, (w_, h_), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_REPLICATE)
    valid = cv2.warpPerspective(np.full((h_, w_), 255, np.uint8), alignment.matrix, (w_, h_),
                                flags=cv2.INTER_NEAREST)
    # Erode: interpolation at the border blends in replicated pixels that are not real content.
    valid = cv2.erode(valid, np.ones((5, 5), np.uint8)) > 0
    return warped, valid


@dataclass(frozen=True)
class AlignedPair:
    right: np.ndarray  # the right image in the left frame
    valid: np.ndarray | None  # where it has real content; None: everywhere
    alignment: Alignment


def normalise_method(method: str | bool | None) -> str:
    """The method name for a setting; True/False are the older on/off switch (homography / none)."""
    if method is True:
        return "homography"
    if method is False or method is None:
        return "none"
    if method not in ALIGN_METHODS:
        raise UsageError(f"align {method!r}: choose one of {', '.join(ALIGN_METHODS)}")
    return str(method)


def already_registered(left: np.ndarray, right: np.ndarray) -> bool:
    """Most textured pixels identical (an edited copy, a fixed camera's lossless frames): nothing for flow to
    find, and resampling would only blur. Re-shot images never qualify: noise alone changes nearly every pixel.
    Counted where the image has texture: a rendered scene's plain floor stays identical when the camera moves."""
    step = max(1, int(np.sqrt(left.shape[0] * left.shape[1] / 65536)))
    a = left[::step, ::step]
    b = right[::step, ::step]
    same = unchanged_pixels(a, b, levels=1)
    texture = textured(cv2.cvtColor(a, cv2.COLOR_RGB2GRAY))
    return float(same[texture].mean() if texture.any() else same.mean()) >= IDENTICAL_SHARE


def _inner_band(flow: np.ndarray) -> np.ndarray:
    """Everything but a frame as wide as the motion at the image's edges: there the right image shows what the
    left one never saw (the scene beyond the old frame), which is not a change of the overlap."""
    h, w = flow.shape[:2]
    edges = np.concatenate([flow[0], flow[-1], flow[:, 0], flow[:, -1]])
    band = int(np.ceil(float(np.abs(edges).max()))) + 1
    inner = np.zeros((h, w), bool)
    if 2 * band < min(h, w):
        inner[band:h - band, band:w - band] = True
    return inner


def _flow_alignment(left: np.ndarray, right: np.ndarray, requested: str) -> AlignedPair:
    if already_registered(left, right):
        alignment = Alignment("none", np.eye(3), 0, 1.0, "most pixels identical; not warped", requested)
        return AlignedPair(right, None, alignment)
    fitted = fit_flow(left, right)
    facts = {"consistent_share": round(fitted.consistent_share, 4), "fb_residual_px": round(fitted.residual_px, 3),
             "median_motion_px": round(fitted.median_motion_px, 3), "parallax_px": round(fitted.parallax_px, 3)}
    matrix = np.linalg.inv(fitted.homography) if fitted.homography is not None else np.eye(3)
    if fitted.flow is None:
        alignment = Alignment("none", np.eye(3), 0, 1.0, fitted.note, requested, facts)
        return AlignedPair(right, None, alignment)
    if requested == "auto" and fitted.homography is not None and fitted.parallax_px < AUTO_PARALLAX_PX:
        alignment = Alignment("flow-homography", matrix, 0, 1.0, "motion is one homography", requested, facts)
        warped, valid = warp_to_left(right, alignment)
        overlap = 1.0 if valid is None else float(valid.mean())
        return AlignedPair(warped, valid, replace(alignment, overlap=overlap))
    warped, valid = warp_with_flow(right, fitted.flow)
    valid = valid & _inner_band(fitted.camera if fitted.camera is not None else fitted.flow)
    gain = improvement(left, right, warped, valid)
    facts["improvement"] = None if gain is None else round(gain, 3)
    alignment = Alignment("flow", matrix, 0, float(valid.mean()), "", requested, facts,
                          reverse_view(left, right, fitted))
    return AlignedPair(warped, valid, alignment)


def improvement(left: np.ndarray, right: np.ndarray, warped: np.ndarray, valid: np.ndarray) -> float | None:
    """Mean grey-level difference after the warp over the same before it, on the overlap: a real camera motion
    registered brings it well under 1; a warp bent around the changes themselves leaves it near 1. None when
    the warp left no overlap to compare."""
    step = max(1, int(np.sqrt(left.shape[0] * left.shape[1] / 65536)))
    lg, rg, wg = (cv2.cvtColor(np.ascontiguousarray(im[::step, ::step]), cv2.COLOR_RGB2GRAY).astype(np.int16)
                  for im in (left, right, warped))
    v = valid[::step, ::step]
    if not v.any():
        return None
    before = float(np.abs(lg - rg)[v].mean())
    return float(np.abs(lg - wg)[v].mean()) / before if before > 0 else 1.0


def align_pair(left: np.ndarray, right: np.ndarray, method: str) -> AlignedPair:
    """Register ``right`` onto ``left`` (same-size HxWx3 uint8) with ``method`` (one of ALIGN_METHODS)."""
    method = normalise_method(method)
    if method == "none":
        return AlignedPair(right, None, Alignment("none", np.eye(3), 0, 1.0, "not requested", method))
    if method in ("flow", "auto"):
        return _flow_alignment(left, right, method)
    alignment = replace(register(left, right), requested=method)
    if alignment.method == "none":
        return AlignedPair(right, None, alignment)
    warped, valid = warp_to_left(right, alignment)
    return AlignedPair(warped, valid, alignment)
