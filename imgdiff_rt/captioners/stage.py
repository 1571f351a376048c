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
from typing import Any, Protocol

from imgdiff_rt.errors import UsageError
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


__all__ = ["CAPTIONERS", "Captioner", "build_captioner", "caption_regions"]
