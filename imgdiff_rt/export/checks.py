"""The export-time checks, all on the runtime's runners and its one ``compare``: ONNX Runtime vs PyTorch
parity, an int8 graph's accuracy against its fp32 graph, and greedy-caption parity for captioners.

The same functions serve ``imgdiff-rt export`` and ``imgdiff-rt export --check``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable, Mapping

import numpy as np

from imgdiff_rt.models.specs import ModelSpec
from imgdiff_rt.runtime.backends.onnx_backend import OnnxSession, open_onnx_file
from imgdiff_rt.runtime.compare import compare, worst
from imgdiff_rt.runtime.device import Device

CPU = Device("cpu")


def torch_outputs(module, spec: ModelSpec, feeds: Mapping[str, np.ndarray],
                  device: Device = CPU) -> dict[str, np.ndarray]:
    """The PyTorch reference's outputs, named by the spec, computed on ``device``. A module (or callable with
    ``.to``) is moved there for the call and back to the CPU after: the export itself traces on the CPU."""
    import torch

    movable = device.kind != "cpu" and hasattr(module, "to")
    if movable:
        module.to(device.torch_device)
    try:
        with torch.no_grad():
            out = module(*[torch.from_numpy(np.ascontiguousarray(feeds[n])).to(device.torch_device)
                           for n in spec.input_names])
        out = out if isinstance(out, (tuple, list)) else (out,)
        return {n: o.detach().float().cpu().numpy() for n, o in zip(spec.output_names, out)}
    finally:
        if movable:
            module.to("cpu")


def check_parity(onnx_path: str | Path, reference: Callable | object, spec: ModelSpec, *, batch: int = 3,
                 seed: int | None = None, dims: Mapping[str, int] | None = None,
                 threads: int | None = None, device: Device = CPU) -> dict:
    """Run the ONNX graph and the PyTorch reference on fresh random inputs; returns the figures, raises
    ParityError (with them) when the spec's tolerance is missed.

    ``reference`` is the torch module (or any callable taking/returning spec-ordered tensors). ``batch``
    differs from the export's example batch on purpose: this also checks the batch axis really is dynamic.
    ``seed=None`` draws a new seed each time, so repeated checks see new inputs. ``device``: where both
    sides run (ONNX Runtime's providers for it, PyTorch's device).
    """
    seed = int.from_bytes(os.urandom(4), "little") if seed is None else seed
    feeds = spec.dummy_inputs(batch, rng=seed, **dict(dims or {}))
    with open_onnx_file(onnx_path, spec, threads, providers=device.ort_providers) as session:
        got = session.run(feeds)
    report = compare(spec, got, torch_outputs(reference, spec, feeds, device))
    return {"batch": batch, "seed": seed, "tolerance": spec.tolerance.as_dict(), "outputs": report, "ok": True,
            "device": str(device)}


def int8_accuracy(spec: ModelSpec, fp32_path: str | Path, int8_path: str | Path,
                  feeds: Iterable[Mapping[str, np.ndarray]], device: Device = CPU) -> dict[str, dict]:
    """Per output: the worst max/mean abs error and lowest cosine of the int8 graph against the fp32 one
    (a measured cost, not a pass/fail check: int8 has no tolerance), both sessions on ``device``."""
    providers = device.ort_providers
    with open_onnx_file(fp32_path, spec, providers=providers) as reference, \
            open_onnx_file(int8_path, spec, providers=providers) as test:
        return worst(compare(spec, test.run(feed), reference.run(feed), tolerance=None) for feed in feeds)


def encoder_of(session: OnnxSession) -> Callable[[np.ndarray], np.ndarray]:
    """An image encoder session as the ``pixel_values -> features`` function caption parity drives."""
    (name,), (out,) = session.spec.input_names, session.spec.output_names
    return lambda pixels: session.run({name: pixels})[out]


def caption_parity_of(loaded, spec: ModelSpec, onnx_path: str | Path, *, max_new_tokens: int = 12,
                      require_exact: bool = True, seed: int = 0, device: Device = CPU) -> dict:
    """Greedy captions with the exported encoder at ``onnx_path`` (its session on ``device``'s providers)
    against PyTorch's (``captioner_export.py``; generation itself stays where the loaded model is, the CPU)."""
    from imgdiff_rt.export.captioner_export import caption_parity

    with open_onnx_file(onnx_path, spec, providers=device.ort_providers) as session:
        return caption_parity(loaded, spec, encoder_of(session), max_new_tokens=max_new_tokens,
                              require_exact=require_exact, seed=seed)
