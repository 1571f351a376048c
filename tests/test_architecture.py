"""The layering docs/architecture.md describes, checked on the source: which package may import which, one ONNX
Runtime session builder, one output comparison, each graph's family declared once, and the size limits."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "imgdiff_rt"
#: package -> the packages (first part under imgdiff_rt) it must not import
FORBIDDEN = {
    "models": {"export", "runtime", "triton", "bench", "cli", "web", "pipeline", "batch"},
    "runtime": {"export", "triton", "bench", "cli", "web", "pipeline", "batch"},
    "export": {"triton", "bench", "cli", "web", "pipeline", "batch"},
    "triton": {"export", "bench", "cli", "web"},
    "bench": {"export", "cli", "web"},
    "cli": {"export"},
    # the words take object names as a function: no model, session or edge behind them
    "words": {"models", "export", "runtime", "triton", "bench", "cli", "web", "pipeline", "batch"},
}
#: the deliberate exceptions: the CLI's export command and the container entrypoint that builds engines where
#: they run; the served pipeline, an edge like web/, reading a request through the web API's whitelist over the
#: CLI's option table and building its Pipeline with the CLI's builder (so a request means what the flags mean)
ALLOWED = {("cli/export_cmd.py", "export"), ("triton/engines.py", "export"),
           ("triton/pipeline_model.py", "cli"), ("triton/pipeline_model.py", "web")}


def _imported_packages(path: Path) -> set[str]:
    """First component under imgdiff_rt of every module ``path`` imports (relative imports resolved)."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(parts[:len(parts) - node.level])
                target = base + (node.module.split(".") if node.module else [])
                if not node.module:  # "from .. import x": x may be a module
                    target = [*base, *(a.name for a in node.names[:1])]
            elif node.module and node.module.startswith("imgdiff_rt."):
                target = node.module.split(".")[1:]
            else:
                continue
            if target:
                found.add(target[0])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("imgdiff_rt.")}
    return found


def _sources(package: str) -> list[Path]:
    return sorted((PACKAGE / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_layer_imports_a_higher_one(package):
    wrong = []
    for path in _sources(package):
        rel = str(path.relative_to(PACKAGE))
        for target in _imported_packages(path) & FORBIDDEN[package]:
            if (rel, target) not in ALLOWED:
                wrong.append(f"{rel} imports imgdiff_rt.{target}")
    assert not wrong, wrong


def _calls(name: str) -> list[str]:
    hits = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
                if called == name:
                    hits.append(str(path.relative_to(PACKAGE)))
    return hits


def test_one_onnx_runtime_session_builder():
    assert _calls("InferenceSession") == ["runtime/backends/onnx_backend.py"]


def test_one_output_comparison_and_one_region_rule():
    defined = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef) and node.name in ("compare", "compare_outputs", "choose_regions",
                                                                   "select_different"):
                defined.setdefault(node.name, []).append(str(path.relative_to(PACKAGE)))
    assert defined.get("compare") == ["runtime/compare.py"] and "compare_outputs" not in defined
    assert defined.get("choose_regions") == ["runtime/clip_filter.py"]
    assert sorted(_calls("select_different")) == ["runtime/clip_filter.py"]  # only inside choose_regions


def test_each_graph_family_is_declared_once():
    from imgdiff_rt.models.specs import FAMILIES, SPECS, family_specs

    assert all(spec.family in FAMILIES for spec in SPECS.values())
    assert sorted(s for f in FAMILIES for s in family_specs(f)) == sorted(SPECS)


@pytest.mark.parametrize("package", ["models", "export", "runtime", "triton", "bench"])
def test_files_and_functions_stay_small(package):
    too_big = []
    for path in _sources(package):
        text = path.read_text(encoding="utf-8")
        if text.count("\n") > 400:
            too_big.append(f"{path.name}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                too_big.append(f"{path.name}:{node.name} {node.end_lineno - node.lineno + 1} lines")
    assert not too_big, too_big
