#!/usr/bin/env python
"""BLIP caption generation on the CPU: fp32 vs dynamic int8 linear layers (and, with --static-cache, a static
KV cache), greedy, one batched ``generate`` for all crops of a pair (5 regions x 2 crops by default).

Measures, for the tiny and the real-size (random-init) BLIP: median wall ms per batched generate over
alternated rounds (the benchmark harness), and token agreement of each variant with fp32 (share of caption
tokens matched before the first divergence; share of captions identical). Crops are cut from the bundled
example pair, encoded once by the model's own vision tower (the encoder is not what is studied here).

    python benchmarks/generation_study.py --out benchmarks/results/generation/generation_study.json

Random weights: the timings hold for the real models (same shapes); the agreement figures say how int8 moves
near-tied logits of an untrained decoder and are a floor, not the agreement of the pretrained model.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from imgdiff_rt.bench.harness import Workload, measure_alternated  # noqa: E402
from imgdiff_rt.captioners.generation import quantize_linear_int8, token_agreement  # noqa: E402


def crops(n: int, size: int) -> np.ndarray:
    """n crops of the example pair (left/right of n/2 boxes) resized to size, scaled to [-1, 1]."""
    import cv2

    from imgdiff_rt.imageio import read_image

    left, right = read_image(ROOT / "examples/left.png"), read_image(ROOT / "examples/right.png")
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        image = left if i % 2 == 0 else right
        if i % 2 == 0:
            x0, y0 = rng.integers(0, image.shape[1] // 2), rng.integers(0, image.shape[0] // 2)
            w, h = rng.integers(48, image.shape[1] // 2), rng.integers(48, image.shape[0] // 2)
        crop = cv2.resize(image[y0:y0 + h, x0:x0 + w], (size, size), interpolation=cv2.INTER_AREA)
        out.append(crop.astype(np.float32) / 127.5 - 1.0)
    return np.stack(out).transpose(0, 3, 1, 2).copy()


def study(tiny: bool, batch: int, max_new_tokens: int, runs: int, static_cache: bool,
          compile_decoder: bool = False) -> dict:
    import torch

    from imgdiff_rt.torch_models.hf import load_blip

    blip = load_blip(random_init=True, tiny=tiny).model.eval()
    tc = blip.config.text_config
    size = blip.config.vision_config.image_size
    with torch.inference_mode():
        states = blip.vision_model(pixel_values=torch.from_numpy(crops(batch, size))).last_hidden_state
    decoders = {"fp32": blip.text_decoder.eval(), "int8-dynamic": quantize_linear_int8(copy.deepcopy(
        blip.text_decoder)).eval()}
    extra = {name: {} for name in decoders}
    outputs: dict[str, list] = {}

    def make(name):
        def run():
            with torch.inference_mode():
                ids = decoders[name].generate(
                    input_ids=torch.full((batch, 1), tc.bos_token_id, dtype=torch.long), encoder_hidden_states=states,
                    encoder_attention_mask=torch.ones(states.shape[:-1], dtype=torch.long),
                    eos_token_id=tc.sep_token_id, pad_token_id=tc.pad_token_id, max_new_tokens=max_new_tokens,
                    num_beams=1, do_sample=False, **extra[name])
            outputs[name] = ids[:, 1:].tolist()
        return run

    unsupported = {}
    if static_cache:
        decoders["fp32-static-cache"] = decoders["fp32"]
        extra["fp32-static-cache"] = {"cache_implementation": "static"}
        try:
            make("fp32-static-cache")()
        except Exception as e:  # noqa: BLE001 - a variant transformers cannot run is a finding, not a crash
            unsupported["fp32-static-cache"] = f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"
            del decoders["fp32-static-cache"]

    if compile_decoder:
        compiled = copy.deepcopy(decoders["fp32"])
        compiled.forward = torch.compile(compiled.forward, dynamic=True)  # generate() calls forward per step
        decoders["fp32-torch.compile"] = compiled
        extra["fp32-torch.compile"] = {}
        try:
            started = time.perf_counter()
            make("fp32-torch.compile")()  # compiles here, outside the timed rounds
            row_compile_s = round(time.perf_counter() - started, 1)
        except Exception as e:  # noqa: BLE001 - a variant that cannot run is a finding, not a crash
            unsupported["fp32-torch.compile"] = f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"
            del decoders["fp32-torch.compile"]
            row_compile_s = None

    workloads = [Workload(name, make(name), items=batch, unit="caption") for name in decoders]
    measured = measure_alternated(workloads, runs)
    row = {"model": "BLIP tiny" if tiny else "BLIP base (random-init)", "batch": batch,
           "max_new_tokens": max_new_tokens, "threads": torch.get_num_threads(), "variants": {},
           "unsupported": unsupported,
           **({"compile_seconds": row_compile_s} if compile_decoder else {})}
    for name in decoders:
        m = measured[name]
        agreement = token_agreement(outputs["fp32"], outputs[name], tc.sep_token_id)
        row["variants"][name] = {"median_ms": m["median_ms"], "min_ms": m["min_ms"], "runs": m["runs"],
                                 "speedup_vs_fp32": round(measured["fp32"]["median_ms"] / m["median_ms"], 3),
                                 **agreement}
    return row


def render(rows: list[dict]) -> str:
    lines = ["| model | variant | batch | median ms | speed-up vs fp32 | token agreement | identical captions |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        for name, v in r["variants"].items():
            lines.append(f"| {r['model']} | {name} | {r['batch']} | {v['median_ms']:.0f} | x{v['speedup_vs_fp32']:.2f} "
                         f"| {v['mean_prefix_agreement']:.3f} | {v['exact_sequences']:.2f} |")
        for name, why in r.get("unsupported", {}).items():
            lines.append(f"| {r['model']} | {name} | {r['batch']} | not run: {why} | | | |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=10)
    ap.add_argument("--max-new-tokens", type=int, default=20)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--sizes", default="tiny,base", help="tiny and/or base")
    ap.add_argument("--static-cache", action="store_true", help="also time a static KV cache (fp32)")
    ap.add_argument("--compile", action="store_true", help="also time the fp32 decoder under torch.compile")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    rows = [study(size == "tiny", args.batch, args.max_new_tokens, args.runs, args.static_cache, args.compile)
            for size in args.sizes.split(",")]
    print(render(rows))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
