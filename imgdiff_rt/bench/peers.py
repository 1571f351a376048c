"""The classical cell: imgdiff-rt's pixel detector against the image-diff tools people use, odiff (``odiff-bin``)
and pixelmatch (npm), each a whole process per pair (decode, compare, write its output), rounds alternated.

Per pair and tool: median wall ms, the paired ratio to imgdiff-rt's time in the same round, peak RSS (the
process's own, from ``wait4``), and where truth exists box F1 (IoU >= 0.5; a peer's boxes are the connected
components of its differing pixels) and pixel F1 (its differing pixels, or imgdiff-rt's region masks, against
the truth boxes' pixels). The peers are an optional install (``scripts/install_peers.sh``: node and npm into
the ignored ``.peers/``); a tool whose node or package is missing is skipped with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from imgdiff_rt.bench.cli_latency import cli_argv

#: where scripts/install_peers.sh installs the npm packages (overridden by IMGDIFF_RT_PEERS)
PEERS_DIR = Path(__file__).resolve().parents[2] / ".peers"
TOOLS = ("imgdiff-rt", "odiff", "pixelmatch")
MAX_PIXELS = 40_000_000  # the 8K pair (33 MP) is over run's default cap; raised for every size alike
TIMEOUT_S = 600


def peers_dir() -> Path:
    return Path(os.environ.get("IMGDIFF_RT_PEERS") or PEERS_DIR)


def peer_argv(tool: str, left: Path, right: Path, out: Path) -> list[str] | str:
    """The command of ``tool`` on a pair, or why it cannot run here."""
    if tool == "imgdiff-rt":
        return cli_argv() + ["run", str(left), str(right), "--json", str(out / "result.json"),
                             "--max-pixels", str(MAX_PIXELS)]
    modules = peers_dir() / "node_modules"
    if tool == "odiff":  # the native binary the package's node wrapper starts: no wrapper in the figures
        native = modules / "@odiff" / "linux-x64" / "odiff"
        if not native.is_file():
            return f"odiff-bin is not installed in {modules} (scripts/install_peers.sh)"
        return [str(native), str(left), str(right), str(out / "diff.png"), "--diff-mask"]
    node = shutil.which("node")
    script = modules / "pixelmatch" / "bin" / "pixelmatch"
    if node is None:
        return "node is not installed (pixelmatch runs on node; scripts/install_peers.sh)"
    if not script.is_file():
        return f"pixelmatch is not installed in {modules} (scripts/install_peers.sh)"
    return [node, str(script), str(left), str(right), str(out / "diff.png")]


def timed_process(argv: list[str], env: dict) -> tuple[float, int | None, int]:
    """(wall ms, peak RSS bytes of the process or None, exit code). The peak comes from GNU time, whose small
    process starts the command: a child forked from this interpreter would count this interpreter's pages."""
    gnu_time = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").is_file() else None)
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        full = [gnu_time, "-f", "%M", "-o", rss.name, *argv] if gnu_time else argv
        t0 = time.perf_counter()
        proc = subprocess.run(full, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=TIMEOUT_S)
        elapsed = (time.perf_counter() - t0) * 1e3
        lines = [ln for ln in Path(rss.name).read_text().splitlines() if ln.strip().isdigit()]
    return elapsed, (int(lines[-1]) * 1024 if lines else None), proc.returncode


def differing_pixels(tool: str, out: Path, size: tuple[int, int]) -> np.ndarray:
    """The tool's differing pixels (H x W bool) from what it wrote."""
    import cv2

    from imgdiff_rt.detectors.pixel.masks import decode

    w, h = size
    if tool == "imgdiff-rt":
        mask = np.zeros((h, w), bool)
        for region in json.loads((out / "result.json").read_text())["regions"]:
            mask |= decode(region["mask"])
        return mask
    image = cv2.imread(str(out / "diff.png"), cv2.IMREAD_UNCHANGED)
    if image is None:
        return np.zeros((h, w), bool)
    if tool == "odiff":  # --diff-mask: the changed pixels over a transparent background
        return image[..., 3] > 0 if image.ndim == 3 and image.shape[2] == 4 else image.any(axis=-1)
    b, g, r = image[..., 0], image[..., 1], image[..., 2]
    return (r == 255) & (g == 0) & (b == 0)  # pixelmatch's diff colour (anti-aliased pixels are yellow)


def boxes_of(tool: str, out: Path, mask: np.ndarray) -> list[tuple[int, int, int, int]]:
    """imgdiff-rt's region boxes; a peer's connected components of differing pixels."""
    import cv2

    if tool == "imgdiff-rt":
        return [tuple(r["bbox"]) for r in json.loads((out / "result.json").read_text())["regions"]]
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return [(int(x), int(y), int(x + bw), int(y + bh)) for x, y, bw, bh, _ in stats[1:count]]


def scores(tool: str, out: Path, size: tuple[int, int], truth: list[tuple] | None, pixel_exact: bool) -> dict:
    """Box F1 against the truth boxes (``eval``'s matching) and, where every truth pixel changed (the pixel-exact
    pairs), pixel F1; empty when the pair has no truth."""
    from imgdiff_rt.evaluation.evaluate import match

    if truth is None:
        return {}
    mask = differing_pixels(tool, out, size)
    boxes = boxes_of(tool, out, mask)
    matched = len(match([list(b) for b in boxes], [list(t) for t in truth]))
    found = {"boxes": len(boxes), "box_f1": _f1(matched, len(boxes), len(truth))}
    if pixel_exact:
        truth_mask = np.zeros_like(mask)
        for x0, y0, x1, y1 in truth:
            truth_mask[y0:y1, x0:x1] = True
        found["pixel_f1"] = _f1(int(np.count_nonzero(mask & truth_mask)), int(mask.sum()), int(truth_mask.sum()))
    return found


def _f1(tp: int, predicted: int, actual: int) -> float:
    return round(2 * tp / (predicted + actual), 4) if predicted + actual else 1.0


# ---- the cell ---------------------------------------------------------------------------------------------
def gather_pairs(scratch: Path, data: Path, example: tuple[Path, Path], sizes: dict | None = None) -> list[dict]:
    """The cell's pairs: pixel-exact at each size, the bundled example, two synth pairs, one CLEVR-Change
    semantic pair (no truth boxes); {"name", "left", "right", "size", "truth", "pixel_exact"}."""
    from imgdiff_rt.evaluation.evaluate import load_truth
    from imgdiff_rt.imageio import write_png_atomic
    from imgdiff_rt.evaluation.synth import synthesize
    from imgdiff_rt.bench.exact_pairs import SIZES, write_pairs
    from imgdiff_rt.bench.real_pairs import SET_SOURCES, SYNTH_SEED, SetAbsent

    pairs = [{"name": f"exact-{p.name}", "left": p.left, "right": p.right, "truth": p.truth, "pixel_exact": True}
             for p in write_pairs(scratch / "exact", sizes or SIZES)]
    truth = example[0].parent / "truth.json"
    pairs.append({"name": "example", "left": example[0], "right": example[1],
                  "truth": load_truth(truth) if truth.is_file() else None, "pixel_exact": False})
    from skimage import data as samples

    for i in range(2):
        made = synthesize(samples.astronaut(), spots=3, seed=SYNTH_SEED + i)
        folder = scratch / f"synth-{i}"
        folder.mkdir(parents=True, exist_ok=True)
        write_png_atomic(folder / "left.png", made.left)
        write_png_atomic(folder / "right.png", made.right)
        pairs.append({"name": f"synth-seed{SYNTH_SEED + i}", "left": folder / "left.png",
                      "right": folder / "right.png", "truth": [tuple(c["bbox"]) for c in made.truth["changes"]],
                      "pixel_exact": False})
    try:
        (clevr,) = SET_SOURCES["clevr-semantic"](1, data, example, scratch)
        pairs.append({"name": f"clevr-semantic-{clevr.name}", "left": clevr.left, "right": clevr.right,
                      "truth": None, "pixel_exact": False})
    except SetAbsent:
        pass
    return pairs


def measure_classical(pairs: list[dict], runs: int = 5, say: Callable[[str], None] | None = None) -> dict:
    """Each pair: the tools alternated round by round (imgdiff-rt first in one round, last in the next ...)."""
    from imgdiff_rt.imageio import read_image
    from imgdiff_rt.bench.stats import paired_ratios, summarize

    say = say or (lambda m: None)
    section = {"runs": runs, "tools": {}, "skipped": {}, "pairs": []}
    with tempfile.TemporaryDirectory(prefix="imgdiff-rt-peers-") as home:
        env = {**os.environ, "IMGDIFF_RT_HOME": home}  # no bundle: run's pixel detector, as on a fresh install
        for pair in pairs:
            h, w = read_image(pair["left"], MAX_PIXELS).shape[:2]
            outs = {t: Path(home) / pair["name"] / t for t in TOOLS}
            argvs = {}
            for tool in TOOLS:
                outs[tool].mkdir(parents=True, exist_ok=True)
                argv = peer_argv(tool, Path(pair["left"]), Path(pair["right"]), outs[tool])
                if isinstance(argv, str):
                    section["skipped"][tool] = argv
                else:
                    argvs[tool] = argv
            rows = _rounds(argvs, env, runs)
            row = {"pair": pair["name"], "size": [w, h], "truth": pair["truth"] is not None, "tools": {}}
            for tool, (times, rss, code) in rows.items():
                peak = max((r for r in rss if r is not None), default=None)
                entry = {**summarize(times), "peak_rss_mb": None if peak is None else round(peak / 2**20, 1),
                         "exit_code": code,
                         **scores(tool, outs[tool], (w, h), pair["truth"], pair["pixel_exact"])}
                if tool != "imgdiff-rt" and "imgdiff-rt" in rows:
                    entry["imgdiff_rt_speedup"] = paired_ratios(times, rows["imgdiff-rt"][0])
                row["tools"][tool] = entry
            section["pairs"].append(row)
            say(f"  classical {pair['name']:24s} " + "  ".join(
                f"{t} {e['median_ms']:.0f} ms {e['peak_rss_mb']} MB" for t, e in row["tools"].items()))
    return section


def _rounds(argvs: dict[str, list[str]], env: dict, runs: int) -> dict[str, tuple[list, list, int]]:
    names = list(argvs)
    times = {n: [] for n in names}
    rss = {n: [] for n in names}
    codes = {}
    for n in names:  # warm-up: the OS file cache and Python's bytecode cache, as a second run would have
        timed_process(argvs[n], env)
    for r in range(runs):
        for n in names[r % len(names):] + names[:r % len(names)]:
            ms, peak, code = timed_process(argvs[n], env)
            times[n].append(ms)
            rss[n].append(peak)
            codes[n] = code
    return {n: (times[n], rss[n], codes[n]) for n in names}


# ---- the report --------------------------------------------------------------------------------------------
#: the issue's targets on the 8K pixel-exact pair: imgdiff-rt at least this fast relative to each peer
#: (peer time / imgdiff-rt time), and its peak RSS under this
TARGETS_8K = {"pixelmatch": 1.0, "odiff": 1 / 1.5}
TARGET_8K_RSS_MB = 1024


def targets(section: dict) -> list[str]:
    row = next((r for r in section.get("pairs", []) if r["pair"] == "exact-8k"), None)
    if row is None or "imgdiff-rt" not in row["tools"]:
        return []
    ours = row["tools"]["imgdiff-rt"]
    lines = []
    for peer, minimum in TARGETS_8K.items():
        entry = row["tools"].get(peer)
        if entry is None:
            lines.append(f"- 8K pixel-exact pair vs {peer}: not measured ({section['skipped'].get(peer, 'absent')})")
            continue
        ratio = entry["imgdiff_rt_speedup"]["median"]
        lines.append(f"- 8K pixel-exact pair, {peer} time / imgdiff-rt time >= {minimum:.2f}: measured {ratio:.2f} "
                     f"- **{'met' if ratio >= minimum else 'missed'}**")
    rss = ours["peak_rss_mb"]
    lines.append(f"- 8K pixel-exact pair, imgdiff-rt peak RSS < {TARGET_8K_RSS_MB} MB: measured {rss:.0f} MB - "
                 f"**{'met' if rss < TARGET_8K_RSS_MB else 'missed'}**")
    lines += [f"- {r['pair']}: imgdiff-rt box F1 {r['tools']['imgdiff-rt'].get('box_f1')} vs "
              + ", ".join(f"{t} {e.get('box_f1')}" for t, e in r["tools"].items() if t != "imgdiff-rt")
              for r in section["pairs"] if r["truth"] and "imgdiff-rt" in r["tools"]]
    return lines


def render_classical(section: dict | None) -> list[str]:
    if not section:
        return []
    lines = ["", f"#### Classical mode vs odiff and pixelmatch (whole processes, median of {section['runs']} "
             "alternated rounds; speed-up = the tool's time / imgdiff-rt's, paired by round)", "",
             "| pair | size | tool | median ms | imgdiff-rt speed-up [p10-p90] | peak RSS MB | boxes | box F1 "
             "| pixel F1 |", "|---|---|---|---:|---|---:|---:|---:|---:|"]
    for row in section["pairs"]:
        for tool, e in row["tools"].items():
            s = e.get("imgdiff_rt_speedup")
            speed = f"**{s['median']:.2f}x** [{s['p10']:.2f}-{s['p90']:.2f}]" if s else "(imgdiff-rt)"
            lines.append(f"| {row['pair']} | {row['size'][0]}x{row['size'][1]} | {tool} | {e['median_ms']:,.0f} "
                         f"| {speed} | {e['peak_rss_mb'] or '-'} | {e.get('boxes', '-')} | {e.get('box_f1', '-')} "
                         f"| {e.get('pixel_f1', '-')} |")
    lines += ["", "imgdiff-rt: `run L R --json FILE --max-pixels 40000000` (pixel detector, no bundle); odiff: its "
              "native binary with `--diff-mask`; pixelmatch: its CLI on node (diff PNG). A peer's boxes are the "
              "connected components of its differing pixels; pixel F1 only where every truth pixel changed.", ""]
    lines += targets(section)
    lines += [f"- {tool} skipped: {why}" for tool, why in section.get("skipped", {}).items()]
    return lines + [""]
