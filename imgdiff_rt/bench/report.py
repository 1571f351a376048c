"""results.json, report.md (tables that paste into the README as they are) and PNG plots."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from imgdiff_rt.errors import OutputError
from imgdiff_rt.bench.cli_latency import render_cli_latency
from imgdiff_rt.bench.peers import render_classical
from imgdiff_rt.bench.real_summary import render_real

MB = 2**20


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def write_outputs(results: dict, out: Path, plots: bool = True) -> dict:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{out}: cannot create the results folder: {e}") from None
    written = {"json": str(out / "results.json"), "report": str(out / "report.md")}
    if plots:
        written.update(make_plots(results, out))
    results["outputs"] = written
    _atomic_write(out / "results.json", (json.dumps(results, indent=1, default=str) + "\n").encode())
    _atomic_write(out / "report.md", render_markdown(results).encode())
    return written


def _fmt(x, digits: int = 1) -> str:
    if x is None:
        return "-"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}"


def _machine_line(r: dict) -> str:
    m = r["machine"]
    gpu = m["gpu"]["name"] if m.get("gpu") else "no GPU"
    libs = m.get("libraries", {})
    versions = ", ".join(f"{k} {libs[k]}" for k in ("torch", "onnxruntime", "transformers", "tensorrt")
                         if k in libs)
    return (f"{m['cpu']} ({m.get('usable_cores')} usable cores, {m.get('memory_gib')} GiB), {gpu}; "
            f"{versions}; {r['threads']} threads; device {r.get('device', {}).get('device', 'not recorded')}")


def render_markdown(r: dict) -> str:
    lines = [f"### Benchmark: {r['created'][:10]}",
             "",
             f"Machine: {_machine_line(r)}. Load average at start: "
             f"{', '.join(f'{x:.1f}' for x in (r['machine'].get('load_average') or []))}.",
             f"Weights: {', '.join(f'{k} {v}' for k, v in r['bundle']['weights'].items())} "
             "(random-init = real-size architecture with random weights: same compute, meaningless content, timing "
             "only; registered-onnx = a pretrained ONNX file registered as is).",
             f"Each cell: {r['config']['warmup']} warm-up call(s) per backend excluded, then "
             f"{r['config']['runs']} rounds (fewer where a cell would exceed {r['config']['max_cell_seconds']:.0f} s) "
             "with the backends alternated in one process; speed-up = median over rounds of "
             "torch time / backend time, [p10-p90] across rounds.", ""]
    peak = r.get("peak")
    if peak:
        lines += [f"Peak: {peak['gflops']:.0f} GFLOP/s fp32, measured ({peak['method']}; "
                  f"{', '.join(f'{k} {v}' for k, v in peak['by_library'].items())}). % peak = counted FLOPs / "
                  "median time / this peak.", ""]
    lines += ["| stage | backend | median ms | p95 | p99 | min | throughput | speed-up vs torch | GFLOP/s (% peak) "
              "| peak RSS MB |", "|---|---|---|---|---|---|---|---|---|---|"]
    for cell in r["cells"]:
        for name, e in cell["backends"].items():
            flops = (e.get("work") or {}).get("flops") or (cell.get("work") or {}).get("flops")  # own count first
            s = e.get("speedup_vs_torch")
            speed = f"**{s['median']:.2f}x** [{s['p10']:.2f}-{s['p90']:.2f}]" if s else \
                ("1.00x (reference)" if name == "torch" else "-")
            gflops = flops / e["median_ms"] / 1e6 if flops else None
            eff = f"{_fmt(gflops)} ({100 * gflops / peak['gflops']:.0f}%)" if gflops and peak else _fmt(gflops)
            rss = e.get("peak_rss_bytes")
            lines.append(f"| {cell['key']} | {name} | {_fmt(e['median_ms'])} | {_fmt(e['p95_ms'])} | "
                         f"{_fmt(e['p99_ms'])} | {_fmt(e['min_ms'])} | {e['throughput_per_s']:.2f} {e['unit']}/s | "
                         f"{speed} | {eff} | {_fmt(rss / MB if rss else None, 0)} |")
    lines += ["", *render_real(r), *_targets(r), *render_cli_latency(r.get("cli_latency")),
              *render_classical(r.get("classical")), *_skipped(r), *_work(r), *_profiles(r), *_concurrency(r),
              *_served(r), *_plots(r)]
    return "\n".join(lines) + "\n"


def _targets(r: dict) -> list[str]:
    rows = ["Targets (median speed-up over PyTorch eager, same models, same run):", ""]
    for t in r.get("targets", []):
        got = "not measured" if t["measured"] is None else f"{t['measured']:.2f}x"
        same = f", same kept regions on {t['same_regions']} pairs" if t.get("same_regions") else ""
        rows.append(f"- {t['stage']} with {t['backend']}: target >= {t['target']}x, measured {got}{same} "
                    f"- **{t['status']}**")
    return rows + [""]


def _skipped(r: dict) -> list[str]:
    """One line per (backend, reason): "all cells" when a backend was skipped everywhere for one reason."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for cell in r["cells"]:
        for name, why in cell["skipped"].items():
            grouped.setdefault((name, why), []).append(cell["key"])
    for name, why in (r.get("concurrency") or {}).get("skipped", {}).items():
        grouped.setdefault((name, why), []).append("concurrency")
    served = (r.get("served") or {}).get("skipped")
    if served:
        grouped.setdefault(("served pipeline", served), []).append("served cell")
    rows = []
    for (name, why), cells in grouped.items():
        where = "all cells" if r["cells"] and cells == [c["key"] for c in r["cells"]] else ", ".join(cells)
        rows.append(f"- {name} ({where}): {why}")
    return (["Skipped (never measured, no number shown):", "", *rows, ""]) if rows else []


def _work(r: dict) -> list[str]:
    rows = ["Work per call (counted on the fp32 graphs, or a graph held in int8 only, from the calls the onnx backend "
            "made; the real-pair cells count each column's own calls; multiply-add = 2 FLOPs; "
            "generation FLOPs counted by torch's FlopCounterMode):", "",
            "| stage | GFLOP | of which outside graphs | weights MB | activations MB | graph calls |", "|---|---|---|---|---|---|"]
    any_row = False
    for cell in r["cells"]:
        counted = [(cell["key"], cell.get("work") or {})] + [(f"{cell['key']} ({name})", e["work"])
                                                              for name, e in cell["backends"].items() if e.get("work")]
        for key, w in counted:
            if "flops" not in w:
                continue
            any_row = True
            calls = ", ".join(f"{k} x{v['calls']} ({v['items']} items)" for k, v in w.get("sessions", {}).items())
            outside = w.get("torch_flops_outside_graphs", w.get("generation_flops", 0))
            rows.append(f"| {key} | {w['flops'] / 1e9:.2f} | {outside / 1e9:.2f} | "
                        f"{_fmt(w['weight_bytes'] / MB if 'weight_bytes' in w else None, 0)} | "
                        f"{_fmt(w['activation_bytes'] / MB if 'activation_bytes' in w else None, 0)} | {calls} |")
    return rows + [""] if any_row else []


def _profiles(r: dict) -> list[str]:
    rows = []
    for cell in r["cells"]:
        for name, e in cell["backends"].items():
            parts = e.get("stage_ms_median")
            prof = e.get("profile") or e.get("work")  # the real-pair cells' counted call records its sessions
            if not parts and not prof:
                continue
            bits = [f"{k} {v:.0f}" for k, v in (parts or {}).items()]
            if prof:
                bits += [f"{k} {v['ms']:.0f} ms/{v['calls']} calls/{v['items']} items"
                         for k, v in prof["sessions"].items()]
                if "outside_sessions_ms" in prof:
                    bits.append(f"outside sessions {prof['outside_sessions_ms']:.0f}")
            if e.get("tokens_per_call_median") is not None:
                bits.append(f"tokens {e['tokens_per_call_median']:.0f}")
            rows.append(f"| {cell['key']} | {name} | {'; '.join(bits)} |")
    if not rows:
        return []
    return ["Where the time goes (medians of the measured calls in ms; session lines from one profiled call):", "",
            "| stage | backend | profile |", "|---|---|---|", *rows, ""]


def _concurrency(r: dict) -> list[str]:
    c = r.get("concurrency") or {}
    if not c.get("backends"):
        return []
    rows = [f"Concurrency ({c['request']} per request):", "",
            "| backend | clients | throughput req/s | median ms | p95 ms | p99 ms |", "|---|---|---|---|---|---|"]
    for name, levels in c["backends"].items():
        rows += [f"| {name} | {x['clients']} | {x['throughput_per_s']:.2f} | {_fmt(x['median_ms'])} | "
                 f"{_fmt(x['p95_ms'])} | {_fmt(x['p99_ms'])} |" for x in levels]
    return rows + [""]


def _served(r: dict) -> list[str]:
    if not (r.get("served") or {}).get("rows"):
        return []
    from imgdiff_rt.bench.served import render_served  # imports the pipeline: only for a report that has the cell

    return render_served(r["served"])


def _plots(r: dict) -> list[str]:
    outs = r.get("outputs") or {}
    return [f"![{k}]({Path(v).name})" for k, v in outs.items() if str(v).endswith(".png")]


def make_plots(r: dict, out: Path) -> dict:
    """latency.png (median per cell per backend, p95 whiskers, log scale) and concurrency.png."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return {}
    written = {}
    cells = [c for c in r["cells"] if c["backends"]]
    if cells:
        names = [n for n in ("torch", "onnx", "onnx-int8", "tensorrt", "triton")
                 if any(n in c["backends"] for c in cells)]
        fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(cells)), 4))
        width = 0.8 / max(1, len(names))
        for j, name in enumerate(names):
            xs = [i + j * width for i, c in enumerate(cells) if name in c["backends"]]
            med = [c["backends"][name]["median_ms"] for c in cells if name in c["backends"]]
            p95 = [c["backends"][name]["p95_ms"] for c in cells if name in c["backends"]]
            ax.bar(xs, med, width, label=name, yerr=[[0] * len(med), [b - a for a, b in zip(med, p95)]], capsize=2)
        ax.set_xticks([i + width * (len(names) - 1) / 2 for i in range(len(cells))])
        ax.set_xticklabels([c["key"] for c in cells], rotation=30, ha="right", fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel("median latency, ms (bar: median, whisker: p95)")
        ax.set_title(f"imgdiff-rt latency per stage ({r['created'][:10]})")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "latency.png", dpi=110)
        plt.close(fig)
        written["latency_plot"] = str(out / "latency.png")
    conc = (r.get("concurrency") or {}).get("backends") or {}
    if conc:
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.6))
        for name, levels in conc.items():
            xs = [x["clients"] for x in levels]
            a1.plot(xs, [x["throughput_per_s"] for x in levels], marker="o", label=name)
            a2.plot(xs, [x["median_ms"] for x in levels], marker="o", label=f"{name} median")
            a2.plot(xs, [x["p95_ms"] for x in levels], marker="x", linestyle="--", label=f"{name} p95")
        for ax, label in ((a1, "throughput, requests/s"), (a2, "latency, ms")):
            ax.set_xscale("log", base=2)
            ax.set_xlabel("concurrent clients")
            ax.set_ylabel(label)
            ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "concurrency.png", dpi=110)
        plt.close(fig)
        written["concurrency_plot"] = str(out / "concurrency.png")
    return written
