"""Descriptions without a model: a sentence per region built from measurements (where it is, how big, the kind
of change seen from both sides and the colours people would name), and a summary line for the pair in the same
words. What each sentence was built from is kept in the region's ``change`` block."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import cv2
import numpy as np

from imgdiff_rt.detectors.pixel.masks import decode as decode_mask
from imgdiff_rt.result import Region, Result
from imgdiff_rt.words.colours import ColourName
from imgdiff_rt.words.kinds import ChangeFacts, classify, ring_px
from imgdiff_rt.words.relations import Relation, relate

SIZE_WORDS = ((0.002, "tiny"), (0.01, "small"), (0.05, "medium"))  # share of the image below which each applies


def position_words(bbox: tuple[int, int, int, int], size: tuple[int, int]) -> str:
    w, h = size
    cx = (bbox[0] + bbox[2]) / 2 / w
    cy = (bbox[1] + bbox[3]) / 2 / h
    row = "top" if cy < 1 / 3 else ("bottom" if cy > 2 / 3 else "")
    col = "left" if cx < 1 / 3 else ("right" if cx > 2 / 3 else "")
    return " ".join(p for p in (row, col) if p) or "centre"


def size_words(area: int, size: tuple[int, int]) -> str:
    frac = area / float(size[0] * size[1])
    word = next((name for limit, name in SIZE_WORDS if frac < limit), "large")
    return f"{word}, {frac * 100:.1f}% of the image"


def _thing(colour: ColourName, noun: str = "object") -> str:
    return f"{colour.words} {noun}" if colour.term else noun


def _unnamed_note(facts: ChangeFacts) -> str:
    reasons = sorted({c.reason for c in (facts.colour_left, facts.colour_right) if c.term is None and c.reason})
    return f" ({' and '.join(reasons)} to name its colour)" if reasons else ""


@dataclass(frozen=True)
class Words:
    phrase: str  # the region's sentence after "Where (size): "
    short: str  # the form the pair's summary line uses


def words_for(facts: ChangeFacts, relation: Relation | None = None, size: tuple[int, int] = (1, 1),
              noun: str = "object") -> Words:
    """The sentence and the summary form of one region's change; ``noun`` is what the object is, when a real
    segmenter named it."""
    old, new = facts.colour_left, facts.colour_right
    kind = relation.kind if relation is not None else facts.kind
    note = _unnamed_note(facts)
    before, after = _thing(old, noun), _thing(new, noun)
    if kind == "moved":
        where = position_words(relation.other_bbox, size)
        if relation.role == "to":
            return Words(f"the {after} moved here from the {where}{note}", f"{after} moved here")
        return Words(f"the {before} moved from here to the {where}{note}", f"{before} moved away")
    if kind == "appeared":
        return Words(f"a {after} appears that is not in the left image{note}", f"{after} added")
    if kind == "copied":
        where = position_words(relation.other_bbox, size)
        return Words(f"a {after} appears, a copy of the one at the {where}{note}", f"{after} copied")
    if kind == "disappeared":
        return Words(f"the {before} in the left image is gone{note}", f"{before} removed")
    if kind == "recoloured":
        if old.term and new.term:
            return Words(f"the {old.words} {noun} turned {new.words}", f"{old.words} -> {new.words}")
        return Words(f"the {noun} changed colour{note}", "colour changed")
    surface = noun if noun != "object" else "surface"
    if kind in ("brighter", "darker"):
        return Words(f"the {_thing(old, surface)} is {kind} in the right image{note}", kind)
    return Words(f"the {_thing(old, surface)} changed in texture or detail{note}", "texture or detail changed")


def region_mask(region: Region, change_mask: np.ndarray) -> np.ndarray:
    """The region's own pixels when it carries its mask (neighbouring objects stay apart), else the change mask
    inside its box."""
    if region.mask is not None and tuple(region.mask.get("size", ())) == change_mask.shape:
        return decode_mask(region.mask)
    x0, y0, x1, y1 = region.bbox
    mask = np.zeros(change_mask.shape, bool)
    mask[y0:y1, x0:x1] = change_mask[y0:y1, x0:x1]
    return mask


def _window(mask: np.ndarray, bbox: tuple[int, int, int, int]) -> tuple[slice, slice]:
    """The region's pixels and the ring around them: all a description looks at. A region's pixels lie inside its
    box, so the box bounds them without a scan of the whole image."""
    x0, y0, x1, y1 = bbox
    m = ring_px(int(mask[y0:y1, x0:x1].sum())) + 1
    return slice(max(0, y0 - m), y1 + m), slice(max(0, x0 - m), x1 + m)


def _own_pixels(region: Region, change_mask: np.ndarray) -> np.ndarray:
    mask = region_mask(region, change_mask)
    x0, y0, x1, y1 = region.bbox
    if not mask[y0:y1, x0:x1].any():  # a model detector's box carries no changed pixels: the box stands for them
        mask[y0:y1, x0:x1] = True
    return mask


def _classify(region: Region, mask: np.ndarray, left: np.ndarray, right: np.ndarray) -> ChangeFacts:
    window = _window(mask, region.bbox)
    return classify(left[window], right[window], mask[window])


#: names the object of each region: (their pixels, kinds, left, right) -> {"name", "score", "side"} or None each
ObjectNames = Callable[[list, list, np.ndarray, np.ndarray], list]


def describe_regions(result: Result, left: np.ndarray, right: np.ndarray, change_mask: np.ndarray,
                     name_objects: ObjectNames | None = None) -> Result:
    """Fill ``description`` and ``change`` of each region and the pair's summary. ``right`` is already in the
    left frame. ``name_objects``: a real segmenter's class names for the regions (runtime.object_names)."""
    masks = [_own_pixels(r, change_mask) for r in result.regions]
    facts = [_classify(r, m, left, right) for r, m in zip(result.regions, masks)]
    relations = relate(result.regions, facts, masks, left, right)
    kinds = [relations[r.id].kind if r.id in relations else f.kind for r, f in zip(result.regions, facts)]
    objects = name_objects(masks, kinds, left, right) if name_objects is not None else [None] * len(masks)
    regions, parts = [], []
    for region, fact, thing in zip(result.regions, facts, objects):
        relation = relations.get(region.id)
        words = words_for(fact, relation, result.size, thing["name"] if thing else "object")
        where = position_words(region.bbox, result.size)
        sentence = f"{where[0].upper()}{where[1:]} ({size_words(region.area, result.size)}): {words.phrase}."
        change = {**fact.to_dict(), **(relation.to_dict() if relation is not None else {}),
                  **({"object": thing} if thing else {})}
        regions.append(replace(region, description=sentence, change=change))
        parts.append(f"{where} ({words.short})")
    return result.replace(regions=tuple(regions), description=summary_line(parts, result.warnings))


def summary_line(parts: list[str], warnings: tuple[str, ...] = ()) -> str:
    """The pair's line. With nothing found it says so, and when a warning holds, that the answer is unsure."""
    if not parts:
        return "No differences found, but see the warnings: the answer is unsure." if warnings \
            else "No differences found."
    noun = "difference" if len(parts) == 1 else "differences"
    return f"{len(parts)} {noun}: " + ", ".join(parts) + "."
