"""The captioning stage: exported vision encoder through a Session, text generation in PyTorch.

API the pipeline wires (``--captioner none|blip|llava``, ``--beams``, ``--max-new-tokens``, ``--backend``,
``--precision``)::

    captioner = build_captioner("blip", bundle_dir, backend="onnx", precision="fp32",
                                beams=1, max_new_tokens=None, device=None)   # None for "none"
    result = caption_regions(result, images, captioner)   # after detect (and after describe: it replaces
                                                          # the pixel descriptions); result: Result,
                                                          # images: pipeline.PairImages
    captioner.close()

* ``BlipCaptioner.from_bundle(bundle, backend="onnx", precision="fp32", *, beams=1, max_new_tokens=20,
  device=None, dtype=None, threshold=0.85, text_similarity="auto", session_factory=open_session,
  **session_opts)`` captions the left and right crop of every region (all crops in ONE encoder call and
  ONE ``generate`` call per pair), drops regions whose two captions say the same thing (CLIP text cosine
  >= ``threshold`` via the bundle's ``clip_text`` graph, else exact normalised-string equality) and writes
  ``caption_left``, ``caption_right``, ``description`` per region and a summary for the pair.
* ``LlavaCaptioner.from_bundle(bundle, backend="onnx", precision="fp32", *, beams=1, max_new_tokens=64,
  device=None, dtype=None, session_factory=open_session, **session_opts)`` answers Img-Diff's ``QUESTION``
  about the red box on the side-by-side picture of each region: one answer per region -> ``description``.

Both take an encoder Session (anything with ``.run({name: array}) -> {name: array}`` and a bound ``.spec``);
tensor names come from that spec. ``device=None`` picks CUDA when present (bf16, else fp16 weights for the
decoder) and the CPU otherwise (fp32). Generation runs under ``torch.inference_mode`` with the KV cache on.
Errors: ``CaptionerUnavailableError`` (bundle lacks the captioner; names the export flag), ``UsageError``
(bad options).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Protocol

from imgdiff_rt.errors import CaptionerUnavailableError, UsageError
from imgdiff_rt.limits import MAX_BEAMS, MAX_NEW_TOKENS, check_count
from imgdiff_rt.models.bundle import Bundle, require_bundle
from imgdiff_rt.models.specs import CAPTIONER_FAMILIES
from imgdiff_rt.result import Result

CAPTIONERS = ("none", *CAPTIONER_FAMILIES)  # "none": measured descriptions, no model


class Captioner(Protocol):
    name: str

    def caption(self, result: Result, images: Any) -> Result: ...

    def settings(self) -> dict: ...

    def close(self) -> None: ...


def caption_regions(result: Result, images: Any, captioner: Captioner | None) -> Result:
    """The pipeline stage: ``captioner.caption`` plus its settings and a ``caption`` timing (ms)."""
    if captioner is None:
        return result
    t0 = time.perf_counter()
    out = captioner.caption(result, images)
    return out.with_settings(captioning=captioner.settings()).with_timing(
        "caption", (time.perf_counter() - t0) * 1e3)


def build_captioner(kind: str, bundle: Bundle | str | Path | None, backend: str = "onnx",
                    precision: str = "fp32", beams: int = 1, max_new_tokens: int | None = None,
                    device: str | None = None, **opts: Any) -> Captioner | None:
    """The captioner the CLI options ask for (None for "none"); ``opts`` go to ``from_bundle``."""
    kind = (kind or "none").lower()
    if kind not in CAPTIONERS:
        raise UsageError(f"captioner {kind!r} is not available; choose one of {', '.join(CAPTIONERS)}",
                         parameter="captioner")
    if kind == "none":
        return None
    bundle = require_bundle(bundle, f"captioner {kind!r}") if not isinstance(bundle, Bundle) else bundle
    if max_new_tokens is not None:
        opts["max_new_tokens"] = max_new_tokens
    if kind == "blip":
        from imgdiff_rt.captioners.blip import BlipCaptioner

        return BlipCaptioner.from_bundle(bundle, backend, precision, beams=beams, device=device, **opts)
    from imgdiff_rt.captioners.llava import LlavaCaptioner

    return LlavaCaptioner.from_bundle(bundle, backend, precision, beams=beams, device=device, **opts)


# ---- shared by the BLIP and LLaVA captioners -------------------------------------------------------
def load_bundle(bundle: Bundle | str | Path) -> Bundle:
    return bundle if isinstance(bundle, Bundle) else Bundle.load(bundle)


def require_captioner(bundle: Bundle, family: str, spec_name: str) -> Path:
    """The generation folder of ``family``; CaptionerUnavailableError naming the export flag when absent."""
    folder = bundle.generation_dir(family)
    has_graph = bundle.has_graph(spec_name)
    if folder is None or not has_graph:
        what = "generation files" if has_graph else f"{spec_name} graph"
        raise CaptionerUnavailableError(
            f"bundle {bundle.root} has no {family.upper()} captioner (no {what}); re-export it with "
            f"`imgdiff-rt export --captioner {family} --out {bundle.root}` (add --tiny --random-init for a "
            f"test bundle), or run with --captioner none")
    return folder


def check_options(beams: int, max_new_tokens: int) -> None:
    check_count("beams", beams, 1, MAX_BEAMS)
    check_count("max_new_tokens", max_new_tokens, 1, MAX_NEW_TOKENS)


def pick_device(device: str | None, dtype: str | None):
    """(torch.device, torch.dtype) of the decoder: CUDA with bf16 (else fp16), or the CPU with fp32."""
    import torch

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if isinstance(dtype, torch.dtype):
        chosen = dtype
    elif dtype is None:
        if dev.type == "cuda":
            chosen = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        else:
            chosen = torch.float32
    else:
        names = {"fp32": torch.float32, "float32": torch.float32, "fp16": torch.float16,
                 "float16": torch.float16, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16}
        if dtype not in names:
            raise UsageError(f"dtype {dtype!r}: use fp32, fp16 or bf16")
        chosen = names[dtype]
    return dev, chosen


def default_session_factory() -> Callable[..., Any]:
    from imgdiff_rt.runtime.session import open_session

    return open_session


def batch_cap(backend: str, spec) -> int | None:
    """ONNX Runtime and torch take any batch; an engine's profile and a served model's max_batch_size stop at
    ``spec.max_batch``."""
    return None if backend in ("onnx", "torch") else spec.max_batch


def run_encoder(encoder: Any, pixel_values, max_batch: int | None = None):
    """The encoder's single output for all images: one call, or chunks of ``max_batch`` where the backend caps
    the batch (TensorRT profiles stop at ``spec.max_batch``; ONNX Runtime and torch take any batch)."""
    import numpy as np

    spec = encoder.spec
    step = max_batch or len(pixel_values)
    name_in, name_out = spec.input_names[0], spec.output_names[0]
    parts = [encoder.run({name_in: pixel_values[i:i + step]})[name_out]
             for i in range(0, len(pixel_values), step)]
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


__all__ = ["CAPTIONERS", "Captioner", "build_captioner", "caption_regions", "require_captioner"]
