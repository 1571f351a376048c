"""The Img-Diff visual-instruction record: one per region, asking about the red box in a side-by-side image."""

from __future__ import annotations

from imgdiff_rt.captioners.prompts import QUESTION
from imgdiff_rt.result import Result


def region_image_name(stem: str, region_id: int) -> str:
    return f"{stem}-{region_id}.png"


def imgdiff_records(result: Result, stem: str) -> list[dict]:
    records = []
    for r in result.regions:
        records.append({
            "id": f"{result.id}-{r.id}",
            "image": region_image_name(stem, r.id),
            "image_left": result.left,
            "image_right": result.right,
            "conversations": [
                {"from": "human", "value": "<image>\n" + QUESTION},
                {"from": "gpt", "value": r.description or ""},
            ],
            "bbox": r.bbox_norm(result.size),
            "captions1": r.caption_left,
            "captions2": r.caption_right,
            "change": r.change,  # the kind and colours the answer was built from (words.kinds)
            "warnings": list(result.warnings),  # the pair's: an answer from an unsure comparison says so
        })
    return records
