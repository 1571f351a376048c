"""What a bundle entry's export checks recorded, in the shortest form: the export's summary table and the
benchmark report (beside each speed-up) both show it from the manifest, neither compares anything again."""

from __future__ import annotations


def parity_cell(entry: dict) -> str:
    """The parity (fp32) or accuracy-vs-fp32 (int8) figure of an entry, shortest form."""
    if "accuracy" in entry:
        rows = (entry["accuracy"].get("vs_fp32") or {}).values()
        cosines = [r["min_cosine"] for r in rows if "min_cosine" in r]
        return f"int8 cos>={min(cosines):.4f}" if cosines else "measured"
    parity = entry.get("parity") or {}
    if entry.get("dequantized_from") and "detections" in parity:
        cosine = min(r["min_cosine"] for r in parity["outputs"].values())
        found = parity["detections"]
        return f"fp32 rebuild vs int8: cos>={cosine:.4f}, detections {found['matched']}/{found['reference_detections']}"
    if "skipped" in parity:
        return "skipped: " + str(parity["skipped"]).split(":")[0]
    rows = [r for r in (parity.get("outputs") or {}).values() if isinstance(r, dict)]
    worst = max((r.get("max_abs", 0.0) for r in rows), default=None)
    text = "ok" if worst is None else f"ok max|d|={worst:.1e}"
    if "generation" in parity:
        text += ", captions equal" if parity["generation"].get("exact") else ", captions differ"
    return text
