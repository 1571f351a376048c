"""Generation helpers shared by the BLIP and LLaVA captioners: caption each distinct crop once, dynamic int8
quantisation of a decoder's linear layers on the CPU, and the token agreement that decides whether int8 may
be used (``benchmarks`` measure it; the option is off by default).
"""

from __future__ import annotations

import hashlib
from typing import Any, Sequence

import numpy as np

#: decoder precisions a captioner accepts: fp32/fp16/bf16 as the device allows, or int8 (CPU, dynamic)
DECODER_INT8 = "int8"


def distinct_images(images: Sequence[np.ndarray]) -> tuple[list[np.ndarray], list[int]]:
    """(the distinct images in first-seen order, index of each input in them): identical crops (an unchanged
    region cut from both images, the same box proposed twice) are encoded and captioned once."""
    seen: dict[str, int] = {}
    distinct: list[np.ndarray] = []
    inverse: list[int] = []
    for image in images:
        arr = np.ascontiguousarray(image)
        key = hashlib.sha1(arr.view(np.uint8).data).hexdigest() + str(arr.shape) + str(arr.dtype)
        if key not in seen:
            seen[key] = len(distinct)
            distinct.append(image)
        inverse.append(seen[key])
    return distinct, inverse


def quantize_linear_int8(module: Any) -> Any:
    """The module with every ``nn.Linear`` replaced by a dynamically quantised int8 one (weights int8 per
    tensor, activations quantised on the fly): CPU only, fp32 modules only."""
    import torch

    return torch.ao.quantization.quantize_dynamic(module, {torch.nn.Linear}, dtype=torch.qint8)


def check_int8_device(device: Any, dtype: Any) -> None:
    from imgdiff_rt.errors import UsageError

    if getattr(device, "type", str(device)) != "cpu" or str(dtype) != "torch.float32":
        raise UsageError(f"decoder_precision int8 is dynamic quantisation for the CPU (fp32 model); this "
                         f"captioner runs on {device} in {str(dtype).replace('torch.', '')}",
                         parameter="decoder_precision")


def until_eos(ids: Sequence[int], eos: int) -> list[int]:
    """Tokens up to and including the first ``eos`` (what the caption is made of)."""
    out = []
    for t in ids:
        out.append(int(t))
        if t == eos:
            break
    return out


def token_agreement(reference: Sequence[Sequence[int]], test: Sequence[Sequence[int]], eos: int) -> dict:
    """How far int8 generation follows fp32: per sequence, the share of reference tokens (to eos) matched
    position by position before the first divergence, and the share of sequences identical to eos."""
    prefix, exact = [], []
    for ref, got in zip(reference, test):
        r, g = until_eos(ref, eos), until_eos(got, eos)
        same = next((i for i, (a, b) in enumerate(zip(r, g)) if a != b), min(len(r), len(g)))
        prefix.append(same / max(len(r), 1))
        exact.append(r == g)
    return {"sequences": len(prefix), "mean_prefix_agreement": float(np.mean(prefix)) if prefix else None,
            "exact_sequences": float(np.mean(exact)) if exact else None}
