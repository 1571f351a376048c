"""What a bundle entry's export checks recorded, in the shortest form: the export's summary table and the
benchmark report (beside each speed-up) both show it from the manifest, neither compares anything again."""

from __future__ import annotations

from imgdiff_rt.models.manifest import Entry


def parity_cell(entry: Entry) -> str:
    """The parity (fp32) or accuracy-vs-fp32 (int8) figure of an entry, shortest form."""
    if entry.accuracy is not None:
        cosines = [r.min_cosine for r in entry.accuracy.vs_fp32.values() if r.min_cosine is not None]
        return f"int8 cos>={min(cosines):.4f}" if cosines else "measured"
    parity = entry.parity
    if parity is None:
        return "ok"
    if entry.dequantized_from and parity.detections is not None:
        cosine = min((r.min_cosine for r in parity.outputs.values() if r.min_cosine is not None), default=float("nan"))
        found = parity.detections
        return f"fp32 rebuild vs int8: cos>={cosine:.4f}, detections {found.matched}/{found.reference_detections}"
    if parity.skipped is not None:
        return "skipped: " + parity.skipped.split(":")[0]
    worst = max((r.max_abs or 0.0 for r in parity.outputs.values()), default=None)
    text = "ok" if worst is None else f"ok max|d|={worst:.1e}"
    if parity.generation is not None:
        text += ", captions equal" if parity.generation.exact else ", captions differ"
    return text
