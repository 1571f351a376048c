"""Reading an ONNX file without running it: the metadata imgdiff-rt writes, its I/O layout, its op census."""

from __future__ import annotations

from pathlib import Path

#: prefix of the metadata_props keys imgdiff-rt writes into every exported graph
META_PREFIX = "imgdiff_rt."
# ONNX TensorProto element type -> numpy dtype name (the ones specs use, plus a few for layout checks).
_ONNX_DTYPES = {1: "float32", 2: "uint8", 3: "int8", 6: "int32", 7: "int64", 9: "bool", 10: "float16",
                11: "float64", 16: "bfloat16"}


def op_counts(path: str | Path) -> dict[str, int]:
    """{op type: number of nodes} of the graph at ``path`` (external weights are not loaded)."""
    import onnx

    counts: dict[str, int] = {}
    for node in onnx.load(str(path), load_external_data=False).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def read_metadata(path: str | Path) -> dict[str, str]:
    """The imgdiff-rt metadata of a graph (spec, sizes, source, weights, ...), prefix stripped."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {p.key[len(META_PREFIX):]: p.value for p in model.metadata_props if p.key.startswith(META_PREFIX)}


def onnx_layout(path: str | Path) -> tuple[dict[str, tuple], dict[str, str]]:
    """({tensor: dims}, {tensor: dtype}) of a graph's inputs and outputs; dynamic dims are their names."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    shapes, dtypes = {}, {}
    for value in (*graph.input, *graph.output):
        t = value.type.tensor_type
        shapes[value.name] = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                                   for d in t.shape.dim)
        dtypes[value.name] = _ONNX_DTYPES.get(t.elem_type, str(t.elem_type))
    return shapes, dtypes
