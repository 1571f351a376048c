"""What the BLIP and LLaVA captioners share: the bundle check naming the export flag, the options' bounds, the
decoder's device and dtype, the default session factory, and the encoder call (chunked where the backend caps the
batch). ``stage`` picks a captioner by name; both captioners build on these.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from imgdiff_rt.errors import CaptionerUnavailableError, UsageError
from imgdiff_rt.limits import MAX_BEAMS, MAX_NEW_TOKENS, check_count
from imgdiff_rt.models.bundle import Bundle


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
