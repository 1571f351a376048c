"""The Img-Diff detectors on sessions: ``segment`` (segment both images, crop every box from both, keep the
crops CLIP finds different) and ``hybrid`` (the pixel detector's regions through the same CLIP filter too).

The array work lives in preprocess / segment_decode / proposals / clip_filter (shared with Triton's Python
models); this module owns the sessions, runs the model stages of the graph (``stages.MODEL_STAGES``: segment,
proposals, pixel gate, embed, pair gate, filter) one method each, and keeps the per-left-image cache: when
one left image is compared with many right images, its segmentation, whole-image embedding and crop
embeddings are computed once.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from imgdiff_rt.errors import ModelError, UsageError
from imgdiff_rt.limits import MAX_REGIONS, check_count, check_fraction, check_number
from imgdiff_rt.models import auto_precision as AP
from imgdiff_rt.models.bundle import Bundle
from imgdiff_rt.models.specs import DEFAULT_IMGSZ
from imgdiff_rt.result import Region
from imgdiff_rt.stages import MODEL_STAGES
from imgdiff_rt.detectors.model import clip_filter as F
from imgdiff_rt.runtime.preprocess import clip_norm_from, clip_pixels, letterbox_batch
from imgdiff_rt.detectors.model.proposals import DEDUP_IOU, MIN_AREA_FRACTION, crop_pairs, gather_proposals
from imgdiff_rt.detectors.model import gate as G
from imgdiff_rt.runtime.segment_decode import DEFAULT_CONF, DEFAULT_IOU, Segments, decode_batch
from imgdiff_rt.runtime.session import Session, open_session

MAX_CANDIDATES = 64  # candidate boxes per pair sent to CLIP (2 crops each), best segmenter score first


@dataclass(frozen=True)
class SegmentConfig:
    """Img-Diff's published settings as defaults."""

    conf: float = DEFAULT_CONF
    iou: float = DEFAULT_IOU
    min_area_fraction: float = MIN_AREA_FRACTION
    dedup_iou: float = DEDUP_IOU
    clip_threshold: float = F.DEFAULT_THRESHOLD
    max_proposals: int = F.DEFAULT_MAX_REGIONS
    pair_gate: tuple[float, float] | None = None
    imgsz: int | None = None  # None: the bundle's segmenter size
    max_candidates: int = MAX_CANDIDATES
    pixel_gate: float | None = G.DEFAULT_PIXEL_GATE  # None: every candidate through CLIP (Img-Diff as published)

    def __post_init__(self) -> None:
        check_fraction("conf", self.conf, hi_open=True)
        check_fraction("iou", self.iou, lo_open=True)
        check_fraction("min_area_fraction", self.min_area_fraction, hi_open=True)
        check_fraction("dedup_iou", self.dedup_iou, lo_open=True)
        check_count("max_proposals", self.max_proposals, 1, MAX_REGIONS)
        check_count("max_candidates", self.max_candidates, 1)
        if self.pixel_gate is not None:
            check_number("pixel_gate", self.pixel_gate, 0.0, 255.0)  # a mean pixel difference
        check_number("clip_threshold", self.clip_threshold, -1.0, 1.0)  # a cosine
        if self.pair_gate is not None:
            for bound in self.pair_gate:
                check_number("pair_gate", bound, -1.0, 1.0)
        if self.imgsz is not None:
            check_count("imgsz", self.imgsz, 32, 4096)
            if self.imgsz % 32:
                raise UsageError(f"imgsz must be a multiple of 32, got {self.imgsz}", parameter="imgsz")

    def to_settings(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


@dataclass
class DetectionReport:
    """How one pair's regions were found: stage timings (ms, by stage name) apart from the facts the result's
    settings record (candidate count, per-image segment counts, left-image cache hit, pair gate)."""

    timings_ms: dict[str, float] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass
class _LeftCache:
    segments: Segments | None = None
    image_embed: np.ndarray | None = None
    crop_embeds: dict | None = None  # box tuple -> embedding of the left crop


@dataclass
class _Work:
    """One pair on its way through the model stages."""

    left: np.ndarray
    right: np.ndarray
    pixel_regions: tuple
    report: DetectionReport
    cache: _LeftCache | None = None
    cache_hit: bool = False
    segments: list | None = None
    boxes: np.ndarray | None = None
    scores: np.ndarray | None = None
    sources: list = field(default_factory=list)
    sent: np.ndarray | None = None
    similarity: np.ndarray | None = None
    pair_similarity: float | None = None
    regions: list = field(default_factory=list)


def content_key(image: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(image).view(np.uint8).data).hexdigest() + str(image.shape)


class ModelDetector:
    """Owns the segmenter and CLIP image sessions (opened once, reused for every pair)."""

    def __init__(self, bundle: Bundle | str | Path, backend: str = "onnx", precision: str = "fp32",
                 config: SegmentConfig | None = None, cache_size: int = 4, **session_opts: Any):
        self.bundle = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle)
        self.backend, self.precision, self.config = backend, precision, config or SegmentConfig()
        # A registered segmenter may exist in one precision only; settings record what really ran.
        seg_precision = AP.resolve(self.bundle, "segmenter", precision, backend, session_opts)
        seg_precision = seg_precision if backend == "tensorrt" else self.bundle.precision_for("segmenter",
                                                                                                seg_precision)
        if seg_precision is None:
            raise ModelError(f"bundle {self.bundle.root} has no segmenter graph; export one with `imgdiff-rt export`")
        self.segmenter_precision = seg_precision
        self.segmenter: Session = open_session(self.bundle, "segmenter", backend, seg_precision, **session_opts)
        try:
            self.clip: Session = open_session(self.bundle, "clip_image", backend, precision, **session_opts)
        except Exception:
            self.segmenter.close()
            raise
        self.num_classes = int(self.segmenter.spec.sizes.get("num_classes", 1))
        # tensor names from the specs, never restated here
        (self._seg_in,), (self._preds, self._protos) = self.segmenter.spec.input_names, \
            self.segmenter.spec.output_names
        self._clip_in, self._clip_out = self.clip.spec.input_names[0], self.clip.spec.output_names[0]
        self.imgsz = self.config.imgsz or self.segmenter.fixed_dim(self._seg_in, 2) or \
            int(self.segmenter.spec.sizes.get("imgsz", DEFAULT_IMGSZ))
        self.fixed_batch = self.segmenter.fixed_dim(self._seg_in, 0)
        self.clip_size = int(self.clip.spec.sizes["image_size"])
        self.clip_batch = int(self.clip.spec.max_batch)
        self.mean, self.std = clip_norm_from(self.bundle.root / "clip")
        self._cache: OrderedDict[str, _LeftCache] = OrderedDict()
        self._cache_size = cache_size

    def close(self) -> None:
        self.segmenter.close()
        self.clip.close()

    # -- model calls ----------------------------------------------------------------------------------
    def segment(self, images: Sequence[np.ndarray]) -> list[Segments]:
        """All images in one batch (or one by one when the artifact fixes batch 1)."""
        batch, boxes = letterbox_batch(images, self.imgsz)
        step = self.fixed_batch or len(images)
        preds, protos = [], []
        for i in range(0, len(images), step):
            out = self.segmenter.run({self._seg_in: batch[i:i + step]})
            preds.append(out[self._preds])
            protos.append(out[self._protos])
        return decode_batch(np.concatenate(preds), np.concatenate(protos), self.num_classes, boxes,
                            conf=self.config.conf, iou=self.config.iou)

    def embed(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        if not crops:
            return np.zeros((0, int(self.clip.spec.sizes.get("embed_dim", 1))), np.float32)
        pixels = clip_pixels(crops, self.clip_size, self.mean, self.std)
        return np.concatenate([self.clip.run({self._clip_in: pixels[i:i + self.clip_batch]})[self._clip_out]
                               for i in range(0, len(pixels), self.clip_batch)])

    def _left(self, left: np.ndarray) -> tuple[_LeftCache, bool]:
        key = content_key(left)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key], True
        entry = _LeftCache(crop_embeds={})
        self._cache[key] = entry
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return entry, False

    # -- the detector: the model stages of the graph (stages.MODEL_STAGES), in order --------------------------
    def detect(self, left: np.ndarray, right: np.ndarray,
               pixel_regions: Sequence[Region] = ()) -> tuple[list[Region], DetectionReport]:
        """Regions (ordered least similar first, ids 1..n) and the report of how they were found.

        ``pixel_regions``: the pixel detector's regions (hybrid), sent through the same CLIP filter; they keep
        their ``source``."""
        work = _Work(left, right, tuple(pixel_regions), DetectionReport())
        work.cache, work.cache_hit = self._left(left)
        for stage in MODEL_STAGES:
            t = time.perf_counter()
            go_on = getattr(self, f"stage_{stage.name}")(work)
            ms = (time.perf_counter() - t) * 1e3
            work.report.timings_ms[stage.timing] = work.report.timings_ms.get(stage.timing, 0.0) + ms
            if go_on is False:
                return [], work.report
        return work.regions, work.report

    def stage_segment(self, work: "_Work") -> None:
        if work.cache.segments is None:
            work.segments = self.segment([work.left, work.right])
            work.cache.segments = work.segments[0]
        else:
            work.segments = [work.cache.segments, *self.segment([work.right])]

    def stage_proposals(self, work: "_Work") -> None:
        cfg, (h, w), (seg_left, seg_right) = self.config, work.left.shape[:2], work.segments
        boxes, scores = gather_proposals([seg_left.boxes, seg_right.boxes], [seg_left.scores, seg_right.scores],
                                         w, h, min_area_fraction=cfg.min_area_fraction, iou=cfg.dedup_iou,
                                         limit=cfg.max_candidates)
        sources = ["segment"] * len(boxes)
        if work.pixel_regions:
            extra = work.pixel_regions
            boxes = np.concatenate([boxes, np.array([r.bbox for r in extra], np.int64).reshape(-1, 4)])
            scores = np.concatenate([scores, np.array([r.score for r in extra], np.float32)])
            sources += [r.source for r in extra]
        work.boxes, work.scores, work.sources = boxes, scores, sources
        work.report.facts.update(candidates=len(boxes), left_cached=work.cache_hit,
                                 segments=[len(seg_left), len(seg_right)])

    def stage_pixel_gate(self, work: "_Work") -> None:
        """Boxes whose crops differ beyond the gate go to CLIP; the others count as similarity 1.0 and the
        report lists them with the reason."""
        left, right, boxes = work.left, work.right, work.boxes
        gate = self.config.pixel_gate if left.shape == right.shape else None  # unaligned sizes: no gate
        work.sent = np.ones(len(boxes), bool)
        if gate is not None and len(boxes):
            differences = G.box_differences(G.difference_table(left, right), boxes)
            work.sent = G.boxes_to_send(differences, gate)
            work.report.facts["pixel_gate"] = {
                "gate": gate, "reason": G.SKIP_REASON, "similarity_recorded": 1.0,
                "skipped": [{"bbox": [int(v) for v in boxes[i]], "difference": round(float(differences[i]), 3)}
                            for i in np.nonzero(~work.sent)[0]]}

    def stage_embed(self, work: "_Work") -> None:
        """Each distinct sent box's crop cosine (left crops reused from the cache); with a pair gate, the whole
        images are embedded in the same batch."""
        distinct, inverse = G.unique_boxes(work.boxes[work.sent])
        work.report.facts["clip_boxes"] = len(distinct)
        work.similarity = np.ones(len(work.boxes), np.float32)
        sent, work.pair_similarity = self._similarities(work.left, work.right, distinct, work.cache)
        if len(distinct):
            work.similarity[work.sent] = sent[inverse]

    def stage_pair_gate(self, work: "_Work") -> bool:
        """Img-Diff's data-set filter: a pair whose whole images are too alike or too different keeps nothing."""
        if work.pair_similarity is None:
            return True
        passed = F.pair_gate(work.pair_similarity, *self.config.pair_gate)
        work.report.facts.update(pair_similarity=round(float(work.pair_similarity), 6), pair_gate_passed=passed)
        return passed

    def stage_filter(self, work: "_Work") -> None:
        cfg, sims, boxes = self.config, work.similarity, work.boxes
        chosen = F.choose_regions(sims, boxes, cfg.clip_threshold, cfg.dedup_iou, cfg.max_proposals)
        for k, i in enumerate(chosen):
            x0, y0, x1, y1 = (int(v) for v in boxes[i])
            work.regions.append(Region(id=k + 1, bbox=(x0, y0, x1, y1), score=float(np.clip(1.0 - sims[i], 0, 1)),
                                       area=(x1 - x0) * (y1 - y0), source=work.sources[i],
                                       similarity=float(sims[i])))

    def _similarities(self, left, right, boxes, cache: _LeftCache) -> tuple[np.ndarray, float | None]:
        """Per-box crop cosine (left crops reused from the cache) and, with a pair gate, the whole-image one."""
        keys = [tuple(int(v) for v in b) for b in boxes]
        need_left = [i for i, k in enumerate(keys) if k not in cache.crop_embeds]
        crops = crop_pairs(left, right, boxes)
        batch = [crops[i] for i in need_left] + crops[len(boxes):]
        gate = self.config.pair_gate is not None
        if gate:
            batch += ([left] if cache.image_embed is None else []) + [right]
        embeds = self.embed(batch)
        for j, i in enumerate(need_left):
            cache.crop_embeds[keys[i]] = embeds[j]
        n_left = len(need_left)
        right_embeds = embeds[n_left:n_left + len(boxes)]
        sims = np.zeros(0, np.float32)
        if len(boxes):
            sims = F.pair_similarity(np.stack([cache.crop_embeds[k] for k in keys]), right_embeds)
        gate_sim = None
        if gate:
            if cache.image_embed is None:
                cache.image_embed = embeds[-2]
            gate_sim = float(F.pair_similarity(cache.image_embed[None], embeds[-1:])[0])
        return sims, gate_sim
