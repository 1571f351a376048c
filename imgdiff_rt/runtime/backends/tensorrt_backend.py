"""Native TensorRT backend: a bundle engine run through named I/O tensors (``execute_async_v3``).

Buffers are torch CUDA tensors (torch is already a dependency; no pycuda). An input shape outside the
engine's optimisation profile is a SpecLayoutError naming the profile. With ``cuda_graphs=True`` (default)
a shape seen a second time is captured into a CUDA graph and replayed afterwards: static shapes (the fixed
segmenter size, a fixed crop batch) then cost one graph launch per call.
"""

from __future__ import annotations

import numpy as np

from imgdiff_rt.errors import ModelError, SpecLayoutError
from imgdiff_rt.models.bundle import Bundle
from imgdiff_rt.models.manifest import Entry
from imgdiff_rt.models.specs import PRECISIONS
from imgdiff_rt.runtime.session_base import Session, entry_input_shapes, register_backend

#: engine search order: fp16 first (what the exporter builds), then the other precisions
ENGINE_PRECISIONS = ("fp16", *(p for p in PRECISIONS if p != "fp16"))


def find_engine(bundle: Bundle, spec_name: str, precision: str) -> tuple[str, Entry]:
    """The engine entry to use: the one asked for, else the bundle's (fp16 is what the exporter builds)."""
    for p in (precision, *ENGINE_PRECISIONS):
        entry = bundle.find(spec_name, "engine", p)
        if entry:
            return p, entry
    bundle.entry(spec_name, "engine", precision)  # raises ModelError listing what the bundle has
    raise AssertionError("unreachable")


class TensorRTSession(Session):
    backend = "tensorrt"

    def __init__(self, bundle: Bundle, spec_name: str, precision: str = "fp16", cuda_graphs: bool = True,
                 **_: object):
        import torch

        from imgdiff_rt.runtime.tensorrt_engines import import_tensorrt, load_engine

        precision, entry = find_engine(bundle, spec_name, precision)  # first: a bundle without engines
        trt = import_tensorrt()  # TensorRTUnavailableError when absent
        super().__init__(bundle.spec(spec_name, "engine", precision),
                         entry_input_shapes(bundle, spec_name, "engine", precision))
        path = bundle.path(spec_name, "engine", precision)
        self.engine = load_engine(path, {**(entry.engine or {}), "path": str(path)})
        self.context = self.engine.create_execution_context()
        self.names = bundle.tensor_names(spec_name, "engine", precision)
        self.trt, self.torch = trt, torch
        self.stream = torch.cuda.Stream()
        self.profiles = {n: tuple(tuple(s) for s in self.engine.get_tensor_profile_shape(self.names[n], 0))
                         for n in self.spec.input_names}
        self.cuda_graphs = cuda_graphs
        self._static: dict[tuple, dict] = {}  # shape signature -> {"inputs", "outputs", "graph", "seen"}

    def _check_profile(self, feeds: dict[str, np.ndarray]) -> None:
        problems = []
        for name, array in feeds.items():
            low, _opt, high = self.profiles[name]
            if any(not (lo <= d <= hi) for lo, d, hi in zip(low, array.shape, high)):
                problems.append(f"{name} shape {tuple(array.shape)} is outside the engine profile "
                                f"min {low} .. max {high}")
        if problems:
            raise SpecLayoutError(f"tensorrt session for {self.spec.name!r}: " + "; ".join(problems) +
                                  " (rebuild the engine with a wider profile, or use the onnx backend)")

    def _buffers(self, feeds: dict[str, np.ndarray]) -> dict:
        torch = self.torch
        key = tuple((n, a.shape) for n, a in sorted(feeds.items()))
        slot = self._static.get(key)
        if slot is not None:
            return slot
        inputs = {n: torch.empty(a.shape, dtype=getattr(torch, str(a.dtype)), device="cuda")
                  for n, a in feeds.items()}
        for n, t in inputs.items():
            self.context.set_input_shape(self.names[n], tuple(t.shape))
            self.context.set_tensor_address(self.names[n], t.data_ptr())
        outputs = {}
        for t in self.spec.outputs:
            shape = tuple(self.context.get_tensor_shape(self.names[t.name]))
            outputs[t.name] = torch.empty(shape, dtype=getattr(torch, t.dtype), device="cuda")
            self.context.set_tensor_address(self.names[t.name], outputs[t.name].data_ptr())
        slot = {"inputs": inputs, "outputs": outputs, "graph": None, "seen": 0}
        self._static = {key: slot}  # one live binding at a time: addresses are set on the context
        return slot

    def _execute(self) -> None:
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise ModelError(f"TensorRT execution of {self.spec.name} failed (see the TensorRT log)")

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self.torch
        self._check_profile(feeds)
        slot = self._buffers(feeds)
        with torch.cuda.stream(self.stream):
            for n, a in feeds.items():
                slot["inputs"][n].copy_(torch.from_numpy(a), non_blocking=False)
            if slot["graph"] is not None:
                slot["graph"].replay()
            elif self.cuda_graphs and slot["seen"] >= 1:  # warmed up once: capture, then replay from now on
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph, stream=self.stream):
                    self._execute()
                slot["graph"] = graph
                graph.replay()
            else:
                self._execute()
            slot["seen"] += 1
        self.stream.synchronize()
        return {n: t.cpu().numpy() for n, t in slot["outputs"].items()}

    def _close(self) -> None:
        self._static.clear()
        self.context = self.engine = None


@register_backend("tensorrt")
def open_tensorrt(bundle: Bundle, spec_name: str, precision: str = "fp16", **opts) -> TensorRTSession:
    # the runtime's default precision is fp32; engines are fp16 builds of the fp32 graph, so map it
    return TensorRTSession(bundle, spec_name, "fp16" if precision == "fp32" else precision, **opts)
