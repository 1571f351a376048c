#!/usr/bin/env python
"""GPU readiness: the CUDA paths that need no TensorRT, timed side by side, one table.

For the segmenter (YOLOv8n-seg / FastSAM-s architecture), CLIP ViT-B/32's image tower, BLIP-base's vision
tower and BLIP's batched caption generation: PyTorch eager fp32, eager fp16 and bf16, and torch.compile (and,
for generation, a static KV cache). Random weights (no hub here): same compute as the real models, figures
valid for timing only. Each variant is checked against eager fp32 (cosine of the outputs; token agreement for
generation) so a fast variant that computes something else shows.

    python benchmarks/gpu_check.py                  # on an NVIDIA GPU machine, < 8 minutes
    python benchmarks/gpu_check.py --device cpu --tiny --iters 2 --no-compile   # what the tests run

A variant that fails (no bf16 on an old GPU, torch.compile without a compiler) becomes a row saying why; the
budget (--budget-s) stops starting new variants once spent, and the table says which were not run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

for _key, _value in (("HF_HUB_OFFLINE", "1"), ("YOLO_OFFLINE", "1"), ("YOLO_AUTOINSTALL", "false")):
    os.environ.setdefault(_key, _value)


@dataclass
class Row:
    model: str
    variant: str
    batch: int
    median_ms: float | None = None
    min_ms: float | None = None
    agreement: str = ""
    note: str = ""
    extra: dict = field(default_factory=dict)


class Budget:
    def __init__(self, seconds: float):
        self.deadline = time.monotonic() + seconds

    def left(self) -> float:
        return self.deadline - time.monotonic()


def _sync(torch, device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_call(torch, device, fn: Callable[[], Any], iters: int, warmup: int) -> tuple[float, float, Any]:
    out = None
    for _ in range(warmup):
        out = fn()
    _sync(torch, device)
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        out = fn()
        _sync(torch, device)
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return times[len(times) // 2], times[0], out


def _first_tensor(out):
    import torch

    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (list, tuple)):
        return _first_tensor(out[0])
    for key in ("image_embeds", "last_hidden_state", "pooler_output"):
        value = getattr(out, key, None)
        if value is not None:
            return value
    raise TypeError(f"no tensor in {type(out).__name__}")


def cosine(torch, a, b) -> float:
    a, b = _first_tensor(a).float().flatten(), _first_tensor(b).float().flatten()
    return float(torch.nn.functional.cosine_similarity(a, b, dim=0))


def dtypes(torch, device) -> list[tuple[str, Any]]:
    out = [("fp32", torch.float32)]
    if device.type == "cuda":
        out.append(("fp16", torch.float16))
        if torch.cuda.is_bf16_supported():
            out.append(("bf16", torch.bfloat16))
    else:
        out.append(("bf16", torch.bfloat16))  # CPU bf16 runs everywhere (slowly without AMX); it checks the path
    return out


def encoder_rows(torch, device, name: str, module, make_input: Callable, batch: int, args, budget: Budget) -> list[Row]:
    """eager in each dtype, then torch.compile of the fastest half-precision (or fp32) variant."""
    rows: list[Row] = []
    x32 = make_input(batch).to(device)
    base = module.to(device).eval()
    with torch.inference_mode():
        ref_ms, ref_min, ref_out = time_call(torch, device, lambda: base(x32), args.iters, args.warmup)
    rows.append(Row(name, "eager fp32", batch, ref_ms, ref_min, "reference"))
    best = ("fp32", torch.float32, ref_ms)
    for label, dt in dtypes(torch, device)[1:]:
        if budget.left() <= 0:
            rows.append(Row(name, f"eager {label}", batch, note="not run: time budget spent"))
            continue
        try:
            m = module.to(device=device, dtype=dt).eval()
            x = x32.to(dt)
            with torch.inference_mode():
                ms, mn, out = time_call(torch, device, lambda: m(x), args.iters, args.warmup)
            rows.append(Row(name, f"eager {label}", batch, ms, mn, f"cos {cosine(torch, ref_out, out):.4f}"))
            if ms < best[2]:
                best = (label, dt, ms)
        except Exception as e:  # noqa: BLE001 - a failing variant is a row, not the end of the check
            rows.append(Row(name, f"eager {label}", batch, note=f"failed: {type(e).__name__}: {str(e)[:80]}"))
    if args.no_compile or budget.left() <= 0:
        rows.append(Row(name, f"compile {best[0]}", batch,
                        note="not run: " + ("--no-compile" if args.no_compile else "time budget spent")))
        return rows
    try:
        m = module.to(device=device, dtype=best[1]).eval()
        compiled = torch.compile(m, mode=args.compile_mode)
        x = x32.to(best[1])
        t0 = time.perf_counter()
        with torch.inference_mode():
            compiled(x)
            _sync(torch, device)
            first = time.perf_counter() - t0
            ms, mn, out = time_call(torch, device, lambda: compiled(x), args.iters, args.warmup)
        rows.append(Row(name, f"compile {best[0]} ({args.compile_mode})", batch, ms, mn,
                        f"cos {cosine(torch, ref_out, out):.4f}", f"first call {first:.1f} s"))
    except Exception as e:  # noqa: BLE001
        rows.append(Row(name, f"compile {best[0]}", batch, note=f"failed: {type(e).__name__}: {str(e)[:80]}"))
    return rows


def segmenter_module(tiny: bool):
    from imgdiff_rt.torch_models.segmenter import build_segmenter

    return build_segmenter("yolov8n-seg.pt", random_init=True, tiny=tiny)


def clip_tower(tiny: bool):
    import torch

    from imgdiff_rt.torch_models.hf import load_clip

    clip = load_clip(random_init=True, tiny=tiny).model

    class Tower(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.vision, self.proj = clip.vision_model, clip.visual_projection

        def forward(self, x):
            return self.proj(self.vision(pixel_values=x).pooler_output)

    return Tower(), clip.config.vision_config.image_size


def blip_parts(tiny: bool):
    import torch

    from imgdiff_rt.torch_models.hf import load_blip

    blip = load_blip(random_init=True, tiny=tiny).model

    class Tower(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.vision = blip.vision_model

        def forward(self, x):
            return self.vision(pixel_values=x).last_hidden_state

    return Tower(), blip.text_decoder, blip.config, blip.config.vision_config.image_size


def generation_rows(torch, device, tower, decoder, config, size: int, batch: int, args, budget: Budget) -> list[Row]:
    """BLIP's batched greedy generation (all crops of a pair in one call): fp32, half precision, static cache."""
    from imgdiff_rt.captioners.generation import token_agreement

    tc = config.text_config
    pixels = torch.rand(batch, 3, size, size, device=device) * 2 - 1
    rows: list[Row] = []

    def run(dec, dt, extra: dict):
        with torch.inference_mode():
            states = tower.to(device=device, dtype=dt)(pixels.to(dt))
            ids = torch.full((batch, 1), tc.bos_token_id, dtype=torch.long, device=device)
            return dec.generate(input_ids=ids, encoder_hidden_states=states,
                                encoder_attention_mask=torch.ones(states.shape[:-1], dtype=torch.long, device=device),
                                eos_token_id=tc.sep_token_id, pad_token_id=tc.pad_token_id,
                                max_new_tokens=args.max_new_tokens, num_beams=1, do_sample=False, **extra)

    reference = None
    variants = [(f"generate {label}", dt, {}) for label, dt in dtypes(torch, device)]
    if not args.no_compile:
        half = dtypes(torch, device)[-1]
        variants.append((f"generate {half[0]} static cache", half[1], {"cache_implementation": "static"}))
    for label, dt, extra in variants:
        if budget.left() <= 0:
            rows.append(Row("BLIP generation", label, batch, note="not run: time budget spent"))
            continue
        try:
            dec = decoder.to(device=device, dtype=dt).eval()
            ms, mn, out = time_call(torch, device, lambda: run(dec, dt, extra), args.iters, args.warmup)
            tokens = out[:, 1:].tolist()
            if reference is None:
                reference, agreement = tokens, "reference"
            else:
                a = token_agreement(reference, tokens, tc.sep_token_id)
                agreement = f"tokens {a['mean_prefix_agreement']:.2f}, exact {a['exact_sequences']:.2f}"
            rows.append(Row("BLIP generation", label, batch, ms, mn, agreement,
                            f"{out.shape[1] - 1} tokens/caption max"))
        except Exception as e:  # noqa: BLE001
            rows.append(Row("BLIP generation", label, batch, note=f"failed: {type(e).__name__}: {str(e)[:80]}"))
    return rows


def run_checks(args) -> dict:
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA device visible to PyTorch (use --device cpu to check the script)")
    device = torch.device(args.device)
    torch.manual_seed(0)
    budget = Budget(args.budget_s)
    started = time.monotonic()
    rows: list[Row] = []
    seg = segmenter_module(args.tiny)
    seg_size = 64 if args.tiny else args.imgsz
    rows += encoder_rows(torch, device, f"segmenter {seg.info.architecture} @{seg_size}", seg,
                         lambda b: torch.rand(b, 3, seg_size, seg_size), 2, args, budget)
    clip, clip_size = clip_tower(args.tiny)
    rows += encoder_rows(torch, device, "CLIP image tower", clip, lambda b: torch.randn(b, 3, clip_size, clip_size),
                         args.crops, args, budget)
    tower, decoder, config, blip_size = blip_parts(args.tiny)
    rows += encoder_rows(torch, device, "BLIP vision tower", tower,
                         lambda b: torch.randn(b, 3, blip_size, blip_size), args.captions, args, budget)
    rows += generation_rows(torch, device, tower, decoder, config, blip_size, args.captions, args, budget)
    info = {"device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
            "torch": torch.__version__, "cuda": torch.version.cuda, "weights": "random (timing only)",
            "tiny": args.tiny, "iters": args.iters, "wall_s": round(time.monotonic() - started, 1)}
    return {"info": info, "rows": [r.__dict__ for r in rows]}


def render(result: dict) -> str:
    i = result["info"]
    lines = [f"GPU check on {i['device']} (torch {i['torch']}, CUDA {i['cuda']}; {i['weights']}; "
             f"median of {i['iters']}; {i['wall_s']} s)", "",
             "| model | variant | batch | median ms | min ms | vs eager fp32 | agreement | note |",
             "|---|---|---:|---:|---:|---:|---|---|"]
    base: dict[str, float] = {}
    for r in result["rows"]:
        if r["median_ms"] is not None and r["model"] not in base:
            base[r["model"]] = r["median_ms"]
        ratio = f"x{base[r['model']] / r['median_ms']:.2f}" if r["median_ms"] and r["model"] in base else ""
        ms = f"{r['median_ms']:.2f}" if r["median_ms"] is not None else "-"
        mn = f"{r['min_ms']:.2f}" if r["min_ms"] is not None else "-"
        lines.append(f"| {r['model']} | {r['variant']} | {r['batch']} | {ms} | {mn} | {ratio} | {r['agreement']} "
                     f"| {r['note']} |")
    return "\n".join(lines)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    ap.add_argument("--tiny", action="store_true", help="tiny configs (script checks, not figures)")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--imgsz", type=int, default=640, help="segmenter input size")
    ap.add_argument("--crops", type=int, default=32, help="CLIP batch: candidate crops of a pair")
    ap.add_argument("--captions", type=int, default=10, help="BLIP batch: 5 regions x 2 crops")
    ap.add_argument("--max-new-tokens", type=int, default=20)
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile and the static cache")
    ap.add_argument("--compile-mode", default="max-autotune-no-cudagraphs",
                    choices=("default", "reduce-overhead", "max-autotune-no-cudagraphs", "max-autotune"),
                    help="reduce-overhead / max-autotune use CUDA graphs")
    ap.add_argument("--budget-s", type=float, default=420.0, help="stop starting variants after this")
    ap.add_argument("--json", default=None, help="also write the rows here")
    return ap.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    result = run_checks(args)
    print(render(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
