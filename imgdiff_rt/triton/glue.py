"""The Python-backend steps of the Triton detection ensemble as plain array functions, and their tensors.

The ensemble's steps are the ``served_by`` models of the model detector's stages (``stages.MODEL_STAGES``):
``preprocess -> segmenter -> proposals -> clip_image -> filter`` computes what ``ModelDetector`` computes for
the segment detector (segment, proposals, pixel gate, embed, filter; without its per-left-image cache) by
calling the same functions; the
``model.py`` files only move tensors in and out. The tensor lists below are the single source for the
generated ``config.pbtxt`` files, the Python models and the client (graph tensors come from ``SPECS``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Mapping

import numpy as np

from imgdiff_rt.errors import InputError
from imgdiff_rt.models.specs import CLIP_MEAN, CLIP_STD, DEFAULT_IMGSZ, TensorSpec, get_spec
from imgdiff_rt.imageio import DEFAULT_MAX_PIXELS, decode_image_bytes
from imgdiff_rt.imageio import right_at_left_size
from imgdiff_rt.pipeline import PairImages
from imgdiff_rt.detectors.model import clip_filter as F
from imgdiff_rt.detectors.model import gate as G
from imgdiff_rt.detectors.model.detector import SegmentConfig
from imgdiff_rt.limits import check_count
from imgdiff_rt.runtime.preprocess import Letterbox, clip_pixels, letterbox_batch
from imgdiff_rt.detectors.model.proposals import crop_pairs, gather_proposals
from imgdiff_rt.runtime.segment_decode import decode_batch

T = TensorSpec
# The glue tensors that feed or read a graph carry that graph's spec names (the ensemble wires them through).
_SEGMENTER, _CLIP_IMAGE = get_spec("segmenter"), get_spec("clip_image")
SEG_IN, (PREDS, PROTOS) = _SEGMENTER.input_names[0], _SEGMENTER.output_names
CLIP_IN, CLIP_OUT = _CLIP_IMAGE.input_names[0], _CLIP_IMAGE.output_names[0]
IMAGE_BYTES = "encoded image file (PNG, JPEG, ...) as a uint8 vector"

#: model name -> (inputs, outputs); dims are full shapes (these models do not batch: max_batch_size 0)
GLUE: dict[str, tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]] = {
    "preprocess": (
        (T("left_image", "uint8", ("bytes",), IMAGE_BYTES), T("right_image", "uint8", ("bytes",), IMAGE_BYTES)),
        (T(SEG_IN, "float32", (2, 3, "imgsz", "imgsz"), "segmenter input: both images letterboxed"),
         T("letterbox", "float32", (2, 5), "per image: ratio, left, top, width, height"),
         T("pair_rgb", "uint8", (2, "height", "width", 3), "left, and right at the left's size"))),
    "proposals": (
        (T(PREDS, "float32", (2, "num_outputs", "num_anchors")),
         T(PROTOS, "float32", (2, 32, "proto_h", "proto_w")),
         T("letterbox", "float32", (2, 5)), T("pair_rgb", "uint8", (2, "height", "width", 3))),
        (T(CLIP_IN, "float32", ("crops", 3, "image_size", "image_size"),
           "left crops then right crops (one padding row when there is no box)"),
         T("boxes", "int64", ("boxes", 4), "candidate boxes, xyxy left-image pixels"),
         T("box_scores", "float32", ("boxes",)),
         T("sent", "bool", ("boxes",), "whether the box's crops went to CLIP (the pixel gate)"))),
    "filter": (
        (T(CLIP_OUT, "float32", ("crops", "embed_dim")), T("boxes", "int64", ("boxes", 4)),
         T("box_scores", "float32", ("boxes",)), T("sent", "bool", ("boxes",))),
        (T("regions", "int64", ("regions", 4), "kept boxes, least similar first"),
         T("similarity", "float32", ("regions",), "CLIP cosine of the two crops"),
         T("region_scores", "float32", ("regions",), "1 - similarity, clipped to 0..1"))),
    "imgdiff_caption": (
        (T("left_image", "uint8", ("bytes",), IMAGE_BYTES), T("right_image", "uint8", ("bytes",), IMAGE_BYTES),
         T("regions", "int64", ("regions", 4))),
        (T("caption_ids", "int64", ("captions", "tokens"), "per region its left then right crop; -1 padding"),
         T("captions", "bytes", ("captions",), "decoded captions, same order"))),
    "imgdiff_pipeline": (
        (T("left_image", "bytes", (1,), "encoded image file (PNG, JPEG, ...)"),
         T("right_image", "bytes", (1,), "encoded image file"),
         T("options", "bytes", (1,), "optional JSON object: the options a request may set, and ignore boxes")),
        (T("result", "bytes", (1,), "the imgdiff-rt/result/v1 JSON `imgdiff-rt run` writes"),)),
}
#: the detection ensemble's own inputs and outputs
DETECT_INPUTS = GLUE["preprocess"][0]
DETECT_OUTPUTS = GLUE["filter"][1]


#: the model detector's settings the glue models read, by their SegmentConfig names
_SEGMENT_FIELDS = ("conf", "iou", "min_area_fraction", "dedup_iou", "max_candidates", "clip_threshold",
                   "max_proposals", "pixel_gate")
_NONE = "none"  # an optional setting left out (pixel_gate none: every box to CLIP)


@dataclass(frozen=True)
class GlueParams:
    """Settings the glue models read from their config ``parameters`` (strings there): the graphs' sizes and
    CLIP normalisation, and the model detector's settings as one validated ``SegmentConfig`` (the in-process
    detector's own), so the ensemble and ``ModelDetector`` cannot hold two versions of them."""

    imgsz: int = DEFAULT_IMGSZ
    num_classes: int = 1
    clip_image_size: int = 224
    clip_mean: tuple = CLIP_MEAN
    clip_std: tuple = CLIP_STD
    max_pixels: int = DEFAULT_MAX_PIXELS
    segment: SegmentConfig = field(default_factory=SegmentConfig)

    def __post_init__(self) -> None:
        check_count("imgsz", self.imgsz, 32, 4096)
        check_count("num_classes", self.num_classes, 1)
        check_count("clip_image_size", self.clip_image_size, 1)
        check_count("max_pixels", self.max_pixels, 1)

    def __getattr__(self, name: str):
        if name in _SEGMENT_FIELDS:  # p.conf, p.clip_threshold, ...: the segment settings' own values
            return getattr(self.segment, name)
        raise AttributeError(name)

    def as_strings(self) -> dict[str, str]:
        out = {}
        for f in fields(self):
            if f.name == "segment":
                out.update({n: _NONE if getattr(self.segment, n) is None else repr(getattr(self.segment, n))
                            for n in _SEGMENT_FIELDS})
                continue
            v = getattr(self, f.name)
            out[f.name] = ",".join(repr(float(x)) for x in v) if isinstance(v, tuple) else repr(v)
        return dict(sorted(out.items(), key=lambda kv: _ORDER.index(kv[0])))

    @classmethod
    def from_strings(cls, values: Mapping[str, str]) -> "GlueParams":
        kwargs, segment = {}, {}
        for name in _ORDER:
            if name not in values:
                continue
            text = values[name]
            default = getattr(SegmentConfig, name) if name in _SEGMENT_FIELDS else getattr(cls, name)
            if text == _NONE and name in _OPTIONAL:
                value = None
            elif isinstance(default, tuple):
                value = tuple(float(x) for x in text.split(","))
            else:
                value = type(default)(float(text) if isinstance(default, float) else int(text))
            (segment if name in _SEGMENT_FIELDS else kwargs)[name] = value
        return cls(**kwargs, segment=SegmentConfig(**segment))


#: the parameters' order in config.pbtxt (as the flat record had them)
_ORDER = ("imgsz", "num_classes", "conf", "iou", "min_area_fraction", "dedup_iou", "max_candidates", "clip_image_size",
          "clip_mean", "clip_std", "clip_threshold", "max_proposals", "max_pixels", "pixel_gate")
_OPTIONAL = ("pixel_gate",)


# ---- the steps ---------------------------------------------------------------------------------------------
def decode_pair(left: np.ndarray, right: np.ndarray, max_pixels: int = DEFAULT_MAX_PIXELS) -> PairImages:
    """Encoded bytes of both images -> (left RGB, right RGB at the left's size), as ``Pipeline`` loads them."""
    rgb = []
    for name, data in (("left_image", left), ("right_image", right)):
        data = np.asarray(data)
        if data.dtype != np.uint8 or data.ndim != 1:
            raise InputError(f"{name}: expected a uint8 vector of encoded image bytes, got {data.dtype} "
                             f"{tuple(data.shape)}")
        if data.size == 0:
            raise InputError(f"{name}: empty (0 bytes)")
        rgb.append(decode_image_bytes(data.tobytes(), name, max_pixels))
    right = right_at_left_size(rgb[0], rgb[1])
    return PairImages(left=rgb[0], right_unwarped=right, right=right)


def check_values(arrays: Mapping[str, np.ndarray]) -> None:
    """Float tensors must be finite: a NaN or infinity from a client would only come back as a made-up answer."""
    bad = [n for n, a in arrays.items() if a is not None and a.dtype.kind == "f" and not np.isfinite(a).all()]
    if bad:
        raise InputError(f"{', '.join(bad)}: not finite (NaN or infinity)")


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise InputError(message)


def preprocess_step(left: np.ndarray, right: np.ndarray, p: GlueParams) -> dict[str, np.ndarray]:
    images = decode_pair(left, right, p.max_pixels)
    batch, boxes = letterbox_batch([images.left, images.right], p.imgsz)
    lb = np.array([[b.ratio, b.left, b.top, b.width, b.height] for b in boxes], np.float32)
    return {SEG_IN: batch, "letterbox": lb, "pair_rgb": np.stack([images.left, images.right])}


def _letterboxes(rows: np.ndarray) -> list[Letterbox]:
    return [Letterbox(float(r[0]), int(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in np.asarray(rows)]


def proposals_step(preds, protos, letterbox, pair_rgb, p: GlueParams) -> dict[str, np.ndarray]:
    preds, protos, letterbox, pair_rgb = (np.asarray(a) for a in (preds, protos, letterbox, pair_rgb))
    check_values({PREDS: preds, PROTOS: protos, "letterbox": letterbox})
    _require(len(preds) == len(protos) == len(letterbox) == len(pair_rgb) == 2,
             f"{PREDS}, {PROTOS}, letterbox and pair_rgb must each hold the 2 images of the pair (got "
             f"{len(preds)}, {len(protos)}, {len(letterbox)}, {len(pair_rgb)})")
    _require(preds.shape[1] == 4 + p.num_classes + protos.shape[1],
             f"{PREDS}: {preds.shape[1]} rows per anchor, expected 4 + {p.num_classes} classes + "
             f"{protos.shape[1]} mask coefficients")
    _require(pair_rgb.shape[1] >= 2 and pair_rgb.shape[2] >= 2, f"pair_rgb: images of {pair_rgb.shape[1:3]} px")
    h, w = pair_rgb.shape[1:3]
    _require(bool((letterbox[:, 0] > 0).all() and (letterbox[:, 1:3] >= 0).all()
                  and (letterbox[:, 1:3] < p.imgsz).all() and (letterbox[:, 3] == w).all()
                  and (letterbox[:, 4] == h).all()),
             f"letterbox: each row must be ratio > 0, 0 <= left, top < {p.imgsz}, and the {w}x{h} pair's size")
    segs = decode_batch(np.asarray(preds), np.asarray(protos), p.num_classes, _letterboxes(letterbox),
                        conf=p.conf, iou=p.iou)
    left, right = pair_rgb[0], pair_rgb[1]
    h, w = left.shape[:2]
    boxes, scores = gather_proposals([s.boxes for s in segs], [s.scores for s in segs], w, h,
                                     min_area_fraction=p.min_area_fraction, iou=p.dedup_iou,
                                     limit=p.max_candidates)
    sent = np.ones(len(boxes), bool)
    if p.segment.pixel_gate is not None and len(boxes):  # the model detector's pixel_gate stage, the same rule
        sent = G.boxes_to_send(G.box_differences(G.difference_table(left, right), boxes), p.segment.pixel_gate)
    crops = crop_pairs(left, right, boxes[sent]) or [np.zeros((1, 1, 3), np.uint8)]
    return {CLIP_IN: clip_pixels(crops, p.clip_image_size, p.clip_mean, p.clip_std),
            "boxes": boxes.astype(np.int64).reshape(-1, 4), "box_scores": scores.astype(np.float32), "sent": sent}


def filter_step(image_embeds, boxes, box_scores, sent, p: GlueParams) -> dict[str, np.ndarray]:
    """Crop similarities -> kept regions; the model detector's filter stage (a box the pixel gate did not send
    counts as similarity 1.0, as in-process)."""
    boxes, embeds, box_scores = np.asarray(boxes, np.int64).reshape(-1, 4), np.asarray(image_embeds), \
        np.asarray(box_scores)
    sent = np.asarray(sent)
    n = len(boxes)
    check_values({CLIP_OUT: embeds, "box_scores": box_scores})
    _require(sent.dtype == np.bool_ and sent.shape == (n,), f"sent: expected {n} booleans, got {sent.dtype} "
             f"{tuple(sent.shape)}")
    k = int(sent.sum())
    # one padding crop stands for "no box sent" (proposals never sends an empty batch to CLIP)
    _require(len(box_scores) == n and len(embeds) == max(2 * k, 1),
             f"{n} boxes need {n} box_scores and {2 * k} {CLIP_OUT} rows (left crops then right of the {k} sent), "
             f"got {len(box_scores)} and {len(embeds)}")
    _require(bool((boxes[:, 2:] > boxes[:, :2]).all() and (boxes >= 0).all()),
             "boxes: each must be x0, y0, x1, y1 with x1 > x0 >= 0 and y1 > y0 >= 0")
    sims = np.ones(n, np.float32)
    if k:
        sims[sent] = F.split_pair_embeds(embeds[:2 * k])
    chosen = F.choose_regions(sims, boxes, p.clip_threshold, p.dedup_iou, p.max_proposals)
    kept = sims[chosen].astype(np.float32)
    return {"regions": boxes[chosen].reshape(-1, 4), "similarity": kept,
            "region_scores": np.clip(1.0 - kept, 0, 1).astype(np.float32)}
