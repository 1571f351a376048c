"""Object names for described regions, from the bundle's registered real segmenter (a COCO-trained YOLOv8-seg,
say): the class of the segment that covers a changed region, on the side where the object is, with its score.
Only a registered graph with real weights and its own class names names anything: the classes of a random or
tiny segmenter mean nothing, and a graph without names has none to give."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from imgdiff_rt.errors import BundleNotFoundError
from imgdiff_rt.models.bundle import Bundle
from imgdiff_rt.models.specs import DEFAULT_IMGSZ
from imgdiff_rt.runtime.preprocess import letterbox_batch
from imgdiff_rt.runtime.segment_decode import Segments, decode_image
from imgdiff_rt.runtime.session import open_session

MIN_SCORE = 0.5  # a class named from at least this confidence
MIN_COVER = 0.5  # the segment covers at least this share of the region's pixels...
MIN_PURITY = 0.3  # ...and the region at least this share of the segment's (the segment is about the region)
#: which side shows the object, by the kind of change (recolours and the rest: both, agreeing)
SIDE_OF_KIND = {"appeared": ("right",), "copied": ("right",), "disappeared": ("left",)}


def class_names(bundle: Bundle) -> dict[int, str] | None:
    """The registered segmenter's class names when its weights are real, else None."""
    for entry in bundle.graph_entries("segmenter"):
        registered = entry.registered
        if entry.weights != "registered-onnx" or registered is None or not registered.class_names:
            continue
        try:
            names = ast.literal_eval(registered.class_names)
        except (ValueError, SyntaxError):
            return None
        if isinstance(names, dict) and all(isinstance(v, str) for v in names.values()):
            return {int(k): v for k, v in names.items()}
    return None


def namer_for(models: str | Path | None, threads: int | None = None) -> "ObjectNamer | None":
    """An ObjectNamer when ``models`` holds a registered real segmenter with class names, else None."""
    if models is None:
        return None
    try:
        bundle = Bundle.load(models)
    except BundleNotFoundError:
        return None
    names = class_names(bundle)
    return ObjectNamer(bundle, names, threads) if names else None


class ObjectNamer:
    def __init__(self, bundle: Bundle, names: dict[int, str], threads: int | None = None) -> None:
        self.names = names
        self.precision = bundle.precision_for("segmenter", "fp32")
        self.source = str(bundle.path("segmenter", "onnx", self.precision))
        opts: dict[str, Any] = {"threads": threads} if threads else {}
        self.session = open_session(bundle, "segmenter", "onnx", self.precision, **opts)
        (self._input,), (self._preds, self._protos) = self.session.spec.input_names, self.session.spec.output_names
        self.imgsz = self.session.fixed_dim(self._input, 2) or int(self.session.spec.sizes.get("imgsz", DEFAULT_IMGSZ))
        self.num_classes = int(self.session.spec.sizes.get("num_classes", len(names)))

    def close(self) -> None:
        self.session.close()

    def settings(self) -> dict:
        return {"segmenter": self.source, "min_score": MIN_SCORE, "min_cover": MIN_COVER}

    def segments(self, images: Sequence[np.ndarray]) -> list[Segments]:
        batch, boxes = letterbox_batch(images, self.imgsz)
        out = []
        for i, box in enumerate(boxes):  # one by one: a registered graph may fix batch 1
            res = self.session.run({self._input: batch[i:i + 1]})
            out.append(decode_image(res[self._preds][0], res[self._protos][0], self.num_classes, box,
                                    with_masks=True))
        return out

    def name(self, masks: Sequence[np.ndarray], kinds: Sequence[str], left: np.ndarray,
             right: np.ndarray) -> list[dict | None]:
        """Per region (its pixels ``masks`` and change ``kinds``): {"name", "score", "side"} or None."""
        if not masks:
            return []
        sides = dict(zip(("left", "right"), self.segments([left, right])))
        out = []
        for mask, kind in zip(masks, kinds):
            looked = SIDE_OF_KIND.get(kind, ("left", "right"))
            found = [self._best(sides[side], mask) for side in looked]
            # where the object is on both sides (a recolour), both must see the same class: otherwise the
            # "object" may be two different things and naming either would mislead
            if any(f is None for f in found) or len({f[0] for f in found}) != 1:
                out.append(None)
                continue
            cls, score = found[0][0], min(f[1] for f in found)
            out.append({"name": self.names.get(cls, str(cls)), "score": round(score, 3),
                        "side": looked[0] if len(looked) == 1 else "both"})
        return out

    @staticmethod
    def _best(segments: Segments, mask: np.ndarray) -> tuple[int, float] | None:
        area = int(mask.sum())
        if segments.masks is None or area == 0:
            return None
        best = None
        for cls, score, seg in zip(segments.classes, segments.scores, segments.masks):
            if score < MIN_SCORE:
                continue
            inter = int((seg & mask).sum())
            if inter >= MIN_COVER * area and inter >= MIN_PURITY * max(int(seg.sum()), 1):
                if best is None or score > best[1]:
                    best = (int(cls), float(score))
        return best
