"""What an export ends with: one row per artifact (graph, format, precision, size, parity, weights) and the
command to run next on the bundle, both from the manifest that was written."""

from __future__ import annotations

from pathlib import Path

from imgdiff_rt.models.export_checks import parity_cell
from imgdiff_rt.models.manifest import Manifest
from imgdiff_rt.models.specs import CAPTIONER_FAMILIES
from imgdiff_rt.weights_report import DEFAULT_MODEL_DETECTOR, DETECTOR_GRAPHS

COLUMNS = ("graph", "format", "precision", "size", "parity", "weights")


def table_rows(manifest: Manifest) -> list[tuple[str, ...]]:
    rows = []
    for entry in manifest.entries.values():
        size = f"{(entry.bytes or 0) / 1e6:.1f} MB"
        rows.append((entry.spec, entry.format, entry.precision, size, parity_cell(entry), entry.weights))
    return rows


def format_table(manifest: Manifest) -> str:
    rows = [COLUMNS, *table_rows(manifest)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def next_command(manifest: Manifest, bundle_dir: str | Path) -> str:
    """The `imgdiff-rt run` that uses what the bundle holds (the detector graphs, a captioner)."""
    specs = {e.spec for e in manifest.entries.values()}
    args = ["imgdiff-rt run LEFT RIGHT", f"--models {bundle_dir}"]
    if set(DETECTOR_GRAPHS) <= specs:
        args.append(f"--detector {DEFAULT_MODEL_DETECTOR}")
    captioners = [f for f in CAPTIONER_FAMILIES if f in manifest.generation]
    if captioners:
        args.append(f"--captioner {captioners[0]}")
    if len(args) == 2:
        args.append("--detector pixel  # this bundle has neither the detector graphs nor a captioner")
    return " ".join(args)
