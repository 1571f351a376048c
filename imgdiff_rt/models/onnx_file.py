"""Reading an ONNX file's structure without running it (op census), for int8 summaries and engine checks."""

from __future__ import annotations

from pathlib import Path


def op_counts(path: str | Path) -> dict[str, int]:
    """{op type: number of nodes} of the graph at ``path`` (external weights are not loaded)."""
    import onnx

    counts: dict[str, int] = {}
    for node in onnx.load(str(path), load_external_data=False).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts
