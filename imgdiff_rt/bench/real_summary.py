"""The real-pair cells' figures from their per-call records: per-stage medians and paired speed-ups, kept regions
compared pair by pair with the reference, and the report section (one table, the pairs, what bounds the ratio)."""

from __future__ import annotations

import numpy as np

from imgdiff_rt.bench.real_pairs import COLUMNS, STAGE_KEYS
from imgdiff_rt.bench.context import REFERENCE
from imgdiff_rt.bench.stages import REAL_STAGES
from imgdiff_rt.bench.stats import paired_ratios


def _stage_sums(calls: list[list[dict]]) -> dict[str, list[float]]:
    """{stage: [ms of that stage summed over the pairs of call i]} for the stages the calls recorded."""
    return {k: [float(sum(r.get(k) or 0.0 for r in call)) for call in calls]
            for k in STAGE_KEYS if any(r.get(k) is not None for call in calls for r in call)}


#: px: kept boxes whose every edge is within this of the reference's count as "within" (a segmenter rebuilt in
#: another precision moves box edges by a pixel or so; the strict figure stays the headline)
WITHIN_PX = 2


def _within(a: list, b: list, px: int) -> bool:
    return len(a) == len(b) and all(max(abs(u - v) for u, v in zip(x, y)) <= px for x, y in zip(a, b))


def same_regions(reference: list[dict], test: list[dict]) -> dict:
    """Pairs whose kept regions (boxes, in order) are identical to the reference's, the pairs that differ, and
    the pairs whose boxes are all within WITHIN_PX of the reference's."""
    differ = [t["pair"] for r, t in zip(reference, test) if r["regions"] != t["regions"]]
    within = sum(_within(r["regions"], t["regions"], WITHIN_PX) for r, t in zip(reference, test))
    return {"pairs_same": len(reference) - len(differ), "pairs": len(reference), "differ": differ,
            "pairs_within_px": within, "within_px": WITHIN_PX}


def summarise(row: dict, logs: dict[str, list[list[dict]]]) -> None:
    """Adds to each backend entry of a real-pair cell: ``stage_ms_median``, ``stage_speedup_vs_torch`` (paired by
    round, like the end-to-end figure), ``same_regions`` against the reference and ``pairs_detail`` (the last
    measured call, pair by pair). ``logs``: each backend's measured calls in round order."""
    ref_calls = logs.get(REFERENCE) or []
    ref_sums = _stage_sums(ref_calls)
    for name, entry in row["backends"].items():
        calls = logs.get(name) or []
        if not calls:
            continue
        sums = _stage_sums(calls)
        entry["stage_ms_median"] = {k: round(float(np.median(v)), 1) for k, v in sums.items()}
        entry["stage_ms_rounds"] = {k: [round(x, 1) for x in v] for k, v in sums.items()}
        entry["pairs_detail"] = calls[-1]
        if name == REFERENCE or not ref_calls:
            continue
        entry["stage_speedup_vs_torch"] = {k: paired_ratios(ref_sums[k], v) for k, v in sums.items()
                                           if k in ref_sums and min(v) > 0}
        entry["same_regions"] = same_regions(ref_calls[-1], calls[-1])


# ---- the report section ------------------------------------------------------------------------------------
def _pct(flops: float | None, ms: float | None, peak: dict | None) -> str:
    if not flops or not ms:
        return ""
    gflops = flops / ms / 1e6
    return f"{gflops:.0f} GFLOP/s" + (f", {100 * gflops / peak['gflops']:.0f}% peak" if peak else "")


def _stage_cell(entry: dict, stage: str, peak: dict | None) -> str:
    ms = (entry.get("stage_ms_median") or {}).get(stage)
    if ms is None:
        return "-"
    bits = [f"x{entry['stage_speedup_vs_torch'][stage]['median']:.2f}"] \
        if stage in (entry.get("stage_speedup_vs_torch") or {}) else []
    pct = _pct(((entry.get("work") or {}).get("flops_by_stage") or {}).get(stage), ms, peak)
    return f"{ms:,.0f}" + (f" ({'; '.join(bits + ([pct] if pct else []))})" if bits or pct else "")


def _row(cell: dict, name: str, e: dict, peak: dict | None) -> str:
    s = e.get("speedup_vs_torch")
    speed = f"**{s['median']:.2f}x** [{s['p10']:.2f}-{s['p90']:.2f}]" if s else "1.00x (reference)"
    same = e.get("same_regions")
    same_text = f"{same['pairs_same']}/{same['pairs']}" if same else "(reference)"
    if same and "pairs_within_px" in same and same["pairs_within_px"] != same["pairs_same"]:
        same_text += f" ({same['pairs_within_px']}/{same['pairs']} within {same['within_px']} px)"
    accuracy = "; ".join(f"{k}: {v}" for k, v in (e.get("accuracy") or {}).items())
    end = _pct((e.get("work") or {}).get("flops"), e["median_ms"], peak)
    return (f"| {cell['key']} | {name} | {e['median_ms']:,.0f} | {speed} | "
            + " | ".join(_stage_cell(e, k, peak) for k in STAGE_KEYS)
            + f" | {end or '-'} | {same_text} | {accuracy} |")


def _bound(cell: dict) -> list[str]:
    """The ceiling the shared segment stage puts on each column's end-to-end ratio."""
    ref = cell["backends"].get(REFERENCE)
    rows = []
    for name, e in cell["backends"].items():
        seg = (e.get("stage_ms_median") or {}).get("segment")
        if ref is None or name == REFERENCE or not seg:
            continue
        rows.append(f"{name} x{ref['median_ms'] / seg:.1f}")
    return [f"- {cell['key']}: with everything but segmentation free, reference time / this column's segment time "
            f"would be at most {', '.join(rows)}."] if rows else []


def render_real(r: dict) -> list[str]:
    cells = [c for c in r.get("cells", []) if c["stage"] in REAL_STAGES and c["backends"]]
    if not cells:
        return []
    peak = r.get("peak")
    lines = ["Real pairs: one call = every pair below; ms summed over the pairs (end to end: the call's time); "
             "per stage: median ms (paired speed-up vs torch; counted FLOPs / that time, % of peak); same kept "
             "regions: pairs whose kept boxes equal the reference's; accuracy: the bundle's export checks (fp32 "
             "parity vs PyTorch, int8 agreement vs fp32) of the graphs the column runs.", "",
             "| cell | column | median ms | speed-up vs torch | segment ms | clip ms | caption ms | end to end "
             "| same kept regions | accuracy (export checks) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for cell in cells:
        lines += [_row(cell, name, e, peak) for name, e in cell["backends"].items()]
    lines.append("")
    for cell in cells:
        seg = cell.get("segmenter") or {}
        skipped = "; ".join(f"{k} skipped: {v}" for k, v in (cell.get("skipped_sets") or {}).items())
        lines.append(f"- {cell['key']}: {len(cell.get('pairs', []))} pairs ({', '.join(cell.get('pairs', []))})"
                     f"{'; ' + skipped if skipped else ''}; segmenter {seg.get('weights')} on ONNX Runtime, "
                     f"the graph each column ran: "
                     + ", ".join(f"{n} {e.get('segmenter_precision') or seg.get('precision')}"
                                 for n, e in cell["backends"].items()) + ".")
        captioned = {n: sum(p.get("captioned_regions") or 0 for p in e.get("pairs_detail") or [])
                     for n, e in cell["backends"].items()}
        if any(p.get("captioned_regions") is not None for e in cell["backends"].values()
               for p in e.get("pairs_detail") or []):
            lines.append(f"- {cell['key']}: regions captioned per call (2 crops each; kept at the default CLIP "
                         f"threshold, random CLIP weights decide how many): "
                         f"{', '.join(f'{n} {k}' for n, k in captioned.items())}.")
        lines += _bound(cell)
    lines += [f"- {name}: {text}" for name, text in COLUMNS.items()
              if any(name in c["backends"] for c in cells)]
    return lines + [""]
