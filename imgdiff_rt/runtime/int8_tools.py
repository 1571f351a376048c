"""The int8 study's tools (docs/int8-and-tensorrt.md): measurements behind the choice of int8 recipes, not
part of an export.

* ``dequantize_conv_integer`` rebuilds fp32 from an ORT dynamic-int8 conv graph (e.g. the shared
  yolov8n-seg-int8.onnx), so a foreign ConvInteger segmenter's real weights can be measured and re-quantised;
* ``benchmark_cpu`` times graphs interleaved round-robin so background load hits all alike;
* ``detection_agreement`` counts the reference detections a quantised graph keeps.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from imgdiff_rt.errors import QuantizationError
from imgdiff_rt.models.onnx_file import op_counts
from imgdiff_rt.runtime.backends.onnx_backend import ort_session
from imgdiff_rt.runtime.segment_decode import box_iou, nms


# ---- rebuilding fp32 from an ORT dynamic-int8 conv graph -----------------------------------------
def _dequantized(w_q: np.ndarray, w_zp, w_scale) -> np.ndarray:
    """(w_q - zero point) * scale, the zero point and scale per output channel or scalar."""
    w_q = w_q.astype(np.float32)
    shape = (-1,) + (1,) * (w_q.ndim - 1)

    def per_channel(v):
        return np.reshape(np.asarray(v, np.float32), shape if np.ndim(v) else ())

    return (w_q - per_channel(w_zp)) * per_channel(w_scale)


def dequantize_conv_integer(src_onnx: str | Path, dst_onnx: str | Path) -> dict:
    """Replace each ORT ``DynamicQuantizeLinear -> ConvInteger -> Cast -> Mul(scale) [-> Add(bias)]`` chain
    by an fp32 Conv with weight ``(w_q - w_zp) * w_scale``; the int8 rounding of the weights is kept."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(src_onnx))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)

    def array(name):
        if name not in inits:
            raise QuantizationError(f"{name} is not a constant: not an ORT dynamic-int8 conv graph")
        return numpy_helper.to_array(inits[name])

    def only_consumer(tensor, op_type):
        found = consumers.get(tensor, [])
        return found[0] if len(found) == 1 and found[0].op_type == op_type else None

    drop, new_convs = set(), []
    for conv in [n for n in graph.node if n.op_type == "ConvInteger"]:
        quant = producer.get(conv.input[0])
        cast = only_consumer(conv.output[0], "Cast")
        scaled = cast and only_consumer(cast.output[0], "Mul")
        scales = scaled and producer.get(scaled.input[1])
        if (quant is None or quant.op_type != "DynamicQuantizeLinear" or scales is None
                or scales.op_type != "Mul"):
            raise QuantizationError(f"{conv.name}: not the ORT dynamic-int8 pattern")
        w_zp = array(conv.input[3]) if len(conv.input) > 3 and conv.input[3] else 0.0
        weight = _dequantized(array(conv.input[1]), w_zp, array(scales.input[1]))
        inputs = [quant.input[0], conv.name + "_fp32_weight"]
        output, chain = scaled.output[0], [conv, cast, scaled, scales]
        add = only_consumer(scaled.output[0], "Add")
        bias_reshape = add and producer.get(add.input[1])
        if bias_reshape is not None and bias_reshape.op_type == "Reshape" and bias_reshape.input[0] in inits:
            inputs.append(conv.name + "_fp32_bias")
            bias = array(bias_reshape.input[0]).astype(np.float32)
            graph.initializer.append(numpy_helper.from_array(bias, inputs[2]))
            output, chain = add.output[0], chain + [add, bias_reshape]
        graph.initializer.append(numpy_helper.from_array(weight.astype(np.float32), inputs[1]))
        attrs = {a.name: helper.get_attribute_value(a) for a in conv.attribute}
        fp32_conv = helper.make_node("Conv", inputs, [output], name=conv.name.replace("_quant", ""), **attrs)
        new_convs.append((conv, fp32_conv))
        drop.update(id(n) for n in chain)
    if not new_convs:
        raise QuantizationError(f"{src_onnx} has no ConvInteger nodes to rebuild")
    replacement = {id(old): new for old, new in new_convs}
    kept = [replacement.get(id(n), n) for n in graph.node if id(n) not in drop or id(n) in replacement]
    del graph.node[:]
    graph.node.extend(kept)
    _drop_dead_nodes(graph)
    onnx.checker.check_model(model)
    onnx.save(model, str(dst_onnx))
    return {"path": str(dst_onnx), "convs_rebuilt": len(new_convs), "op_counts": op_counts(dst_onnx)}


def _drop_dead_nodes(graph) -> None:
    """Remove nodes (and initializers) nothing consumes, repeatedly."""
    outputs = {o.name for o in graph.output}
    while True:
        used = {i for n in graph.node for i in n.input} | outputs
        dead = [n for n in graph.node if not any(o in used for o in n.output)]
        if not dead:
            break
        for n in dead:
            graph.node.remove(n)
    used = {i for n in graph.node for i in n.input}
    for init in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(init)


# ---- speed and detection agreement --------------------------------------------------------------
def benchmark_cpu(paths: Sequence[str | Path], feed: Mapping[str, np.ndarray], *, runs: int = 9,
                  threads: int | None = None, optimization: str = "all") -> dict[str, float]:
    """Median latency (ms) of each graph on the same feed, in this process, runs interleaved round-robin so
    background load hits every graph alike."""
    sessions = {str(p): ort_session(p, threads, optimization=optimization) for p in paths}
    for session in sessions.values():
        session.run(None, dict(feed))  # warm-up: first run allocates and picks kernels
    times: dict[str, list[float]] = {p: [] for p in sessions}
    for _ in range(runs):
        for path, session in sessions.items():
            started = time.perf_counter()
            session.run(None, dict(feed))
            times[path].append((time.perf_counter() - started) * 1000.0)
    return {p: round(float(np.median(t)), 2) for p, t in times.items()}


def top_detections(preds: np.ndarray, num_classes: int, conf: float = 0.25, iou: float = 0.5) -> list:
    """[(class, score, box_xyxy)] after per-class NMS (the runtime's NMS), from one image's ``preds``
    (4 + nc + 32, anchors), best score first."""
    scores = preds[4:4 + num_classes]
    cls, best = scores.argmax(0), scores.max(0)
    keep = np.nonzero(best >= conf)[0]
    cx, cy, w, h = preds[:4, keep]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
    chosen = []
    for c in np.unique(cls[keep]):
        members = np.nonzero(cls[keep] == c)[0]
        chosen += [(int(c), float(best[keep[members[i]]]), boxes[members[i]])
                   for i in nms(boxes[members], best[keep[members]], iou)]
    return sorted(chosen, key=lambda d: -d[1])


def detection_agreement(reference_preds: np.ndarray, test_preds: np.ndarray, num_classes: int,
                        conf: float = 0.25, iou: float = 0.5) -> dict:
    """Reference detections (per image, after NMS) the test graph reproduces: same class, IoU >= iou."""
    matched = total = extra = 0
    for ref, test in zip(reference_preds, test_preds):
        want, got = top_detections(ref, num_classes, conf), top_detections(test, num_classes, conf)
        total += len(want)
        hits = sum(any(c == k and box_iou(b[None], gb[None])[0, 0] >= iou for k, _, gb in got) for c, _, b in want)
        matched += hits
        extra += max(0, len(got) - hits)
    return {"reference_detections": total, "matched": matched, "unmatched_test_detections": extra,
            "recall": round(matched / total, 4) if total else 1.0}
