"""The work a stage must do: FLOPs counted from the ONNX graphs, bytes of weights and activations, and a
recorder that sees which graphs a whole pipeline call runs (with which shapes), so detect / pipeline work
is the sum of what actually ran rather than a guess.

Counting rules (multiply-accumulate = 2 FLOPs; int8 graphs do the same multiply-accumulates in int8, so the
fp32 graph is counted for every backend):

* Conv / ConvInteger / QLinearConv: ``2 * out_elements * (C_in / group) * prod(kernel)``
* MatMul / MatMulInteger / QLinearMatMul / Gemm: ``2 * out_elements * K``
* everything else (activations, norms, softmax) is counted as 0 FLOPs but its output bytes are counted as
  activation traffic: these ops are memory-bound, and that is where the bytes figure matters.

Shapes come from ONNX shape inference with every input made concrete; a node whose shapes stay unknown is
listed under ``uncounted`` (never silently 0).
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections import Counter
from pathlib import Path
from typing import Iterator

import numpy as np

_MATMUL = {"MatMul", "MatMulInteger", "QLinearMatMul", "Gemm", "FusedMatMul"}
_CONV = {"Conv", "ConvInteger", "QLinearConv"}
_ELEM_BYTES = {1: 4, 2: 1, 3: 1, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 16: 2}  # ONNX TensorProto dtypes


def _shape_table(model) -> dict[str, tuple[list, int]]:
    table = {}
    for vi in (*model.graph.value_info, *model.graph.input, *model.graph.output):
        tt = vi.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
        table[vi.name] = (dims, tt.elem_type)
    for init in model.graph.initializer:
        table[init.name] = (list(init.dims), init.data_type)
    return table


def _known(dims) -> bool:
    return dims is not None and all(isinstance(d, int) and d > 0 for d in dims)


@functools.lru_cache(maxsize=32)
def graph_work(onnx_path: str, input_shapes: tuple[tuple[str, tuple[int, ...]], ...]) -> dict:
    """FLOPs / weight bytes / activation bytes of one call of an ONNX graph with the given input shapes."""
    import onnx
    from onnx import shape_inference

    model = onnx.load(onnx_path)
    shapes = dict(input_shapes)
    for inp in model.graph.input:
        if inp.name in shapes:
            for d, v in zip(inp.type.tensor_type.shape.dim, shapes[inp.name]):
                d.ClearField("dim_param")
                d.dim_value = int(v)
    model = shape_inference.infer_shapes(model, data_prop=True)
    table = _shape_table(model)
    weights = {i.name for i in model.graph.initializer}
    flops_by_op: Counter = Counter()
    uncounted: Counter = Counter()
    activation_bytes = 0
    for node in model.graph.node:
        out = table.get(node.output[0]) if node.output else None
        if out and _known(out[0]) and node.output[0] not in weights:
            activation_bytes += int(np.prod(out[0])) * _ELEM_BYTES.get(out[1], 4)
        if node.op_type not in _MATMUL | _CONV:
            continue
        a_name = node.input[3] if node.op_type.startswith("QLinear") else node.input[0]
        w_name = node.input[3] if node.op_type.startswith("QLinear") else node.input[1]
        a, w = table.get(a_name), table.get(w_name)
        if not (out and _known(out[0]) and a and _known(a[0]) and w and _known(w[0])):
            uncounted[node.op_type] += 1
            continue
        out_elems = int(np.prod(out[0]))
        if node.op_type in _CONV:
            per_out = int(np.prod(w[0][1:]))  # C_in/group * kH * kW
        elif node.op_type == "Gemm":
            trans_a = next((at.i for at in node.attribute if at.name == "transA"), 0)
            per_out = a[0][0] if trans_a else a[0][-1]
        else:
            per_out = a[0][-1]
        flops_by_op[node.op_type] += 2 * out_elems * per_out
    weight_bytes = sum(int(np.prod(i.dims)) * _ELEM_BYTES.get(i.data_type, 4) for i in model.graph.initializer)
    return {"flops": int(sum(flops_by_op.values())), "flops_by_op": dict(flops_by_op),
            "weight_bytes": int(weight_bytes), "activation_bytes": int(activation_bytes),
            "uncounted": dict(uncounted)}


def graph_work_batched(onnx_path: str | Path, feeds_shapes: dict[str, tuple[int, ...]]) -> dict:
    """graph_work for any batch: counted at batch 1 and scaled (every graph here is linear in the batch;
    weights are read once per call, so weight bytes do not scale)."""
    batch = next(iter(feeds_shapes.values()))[0]
    one = tuple((n, (1, *s[1:])) for n, s in sorted(feeds_shapes.items()))
    w = graph_work(str(onnx_path), one)
    return {**w, "flops": w["flops"] * batch, "activation_bytes": w["activation_bytes"] * batch,
            "flops_by_op": {k: v * batch for k, v in w["flops_by_op"].items()}, "batch": batch}


class SessionRecorder:
    """Records every ``Session.run`` made while active: spec name, input shapes, wall time.

    Patches the ``Session.run`` class attribute for the duration of a ``with`` block in this process only
    (the runtime module is not edited): one profiled call of a whole pipeline then shows which graphs ran,
    how often, on which shapes, and how long each took - the per-stage profile of the report.
    """

    def __init__(self):
        self.calls: list[dict] = []

    @contextlib.contextmanager
    def active(self) -> Iterator["SessionRecorder"]:
        from imgdiff_rt.runtime.session import Session

        original = Session.run
        recorder = self

        def run(session, feeds):
            t0 = time.perf_counter()
            out = original(session, feeds)
            recorder.calls.append({"spec": session.spec.name, "backend": getattr(session, "backend", "?"),
                                   "shapes": {k: tuple(np.shape(v)) for k, v in feeds.items()},
                                   "ms": (time.perf_counter() - t0) * 1e3})
            return out

        Session.run = run
        try:
            yield self
        finally:
            Session.run = original

    def by_spec(self) -> dict[str, dict]:
        """{spec: {"calls", "ms", "items"}} (items = sum of batch sizes)."""
        rows: dict[str, dict] = {}
        for c in self.calls:
            row = rows.setdefault(c["spec"], {"calls": 0, "ms": 0.0, "items": 0})
            row["calls"] += 1
            row["ms"] += c["ms"]
            row["items"] += next(iter(c["shapes"].values()))[0] if c["shapes"] else 0
        return {k: {**v, "ms": round(v["ms"], 2)} for k, v in rows.items()}


def recorded_work(recorder: SessionRecorder, bundle) -> dict:
    """Sum of graph_work over the recorded calls, counted on the bundle's fp32 graphs (a graph the bundle holds
    in one other precision only, e.g. a registered int8 segmenter, on that one: its multiply-adds are the same)."""
    total = {"flops": 0, "activation_bytes": 0, "weight_bytes": 0, "by_spec": {}, "uncounted": {}}
    seen_weights = set()
    for c in recorder.calls:
        try:
            path = bundle.path(c["spec"], "onnx", bundle.precision_for(c["spec"], "fp32") or "fp32")
        except Exception:  # noqa: BLE001 - a graph without an fp32 ONNX cannot be counted; say so
            total["uncounted"][c["spec"]] = total["uncounted"].get(c["spec"], 0) + 1
            continue
        w = graph_work_batched(path, c["shapes"])
        total["flops"] += w["flops"]
        total["activation_bytes"] += w["activation_bytes"]
        if c["spec"] not in seen_weights:
            total["weight_bytes"] += w["weight_bytes"]
            seen_weights.add(c["spec"])
        total["by_spec"][c["spec"]] = total["by_spec"].get(c["spec"], 0) + w["flops"]
    return total


def torch_flops(fn) -> tuple[int, object]:
    """FLOPs of the PyTorch ops ``fn`` runs (torch's FlopCounterMode: matmuls, convs, attention), and its
    result. Used for what has no ONNX graph: BLIP's text decoder during generation."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        out = fn()
    return int(counter.get_total_flops()), out


def profile_calls(fn) -> dict:
    """One extra call of ``fn`` with every Session.run recorded: which graphs ran, how often, how long."""
    recorder = SessionRecorder()
    t0 = time.perf_counter()
    with recorder.active():
        fn()
    total = (time.perf_counter() - t0) * 1e3
    by_spec = recorder.by_spec()
    return {"total_ms": round(total, 2), "sessions": by_spec,
            "outside_sessions_ms": round(total - sum(r["ms"] for r in by_spec.values()), 2)}
