"""The layering docs/architecture.md describes, checked on the source: which package may import which, one ONNX
Runtime session builder, one output comparison, each graph's family declared once, and the size limits."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from helpers import ROOT

PACKAGE = ROOT / "imgdiff_rt"

#: the floors, lowest first; a floor imports only floors below it (and the root's base modules: errors, limits,
#: files, imageio, result, annotate, extras). Packages on one floor may import each other only where FLOOR_PEERS says.
FLOORS: tuple[tuple[str, ...], ...] = (
    ("models",),                                        # the contract: specs, bundle, manifest
    ("torch_models",),                                  # the PyTorch modules graphs are exported from
    ("runtime",),                                       # sessions, backends, devices, preprocessing, decoding
    ("export",),                                        # building bundles, checked through the runtime
    ("detectors", "words", "captioners", "weights_report"),  # the domain
    ("pipeline", "pairs", "config"),                    # one pair end to end, its configuration
    ("writers", "evaluation", "caption_metrics", "batch"),  # around the pipeline
    ("triton", "bench", "doctor"),                      # serving, measuring, checking the machine
    ("cli", "web"),                                     # the edges
)
#: same-floor arrows that are part of the design
FLOOR_PEERS = {("words", "detectors"), ("captioners", "detectors"), ("captioners", "words"),
               ("pairs", "detectors"), ("config", "pipeline"), ("pipeline", "config"), ("batch", "writers"),
               ("batch", "evaluation"), ("bench", "triton"), ("doctor", "triton"), ("writers", "captioners"), ("cli", "web"),
               ("weights_report", "extras")}
_BASE = {"errors", "limits", "files", "imageio", "result", "annotate", "extras", "__init__"}
_FLOOR_OF = {name: i for i, floor in enumerate(FLOORS) for name in floor}
#: the deliberate exceptions: the CLI's export command and the container entrypoint that builds engines where
#: they run; export reads which detectors need a bundle from weights_report; the served pipeline, an edge like
#: web/, reading a request through the web API's whitelist over the CLI's option table
ALLOWED = {("cli/export_cmd.py", "export"), ("triton/engines.py", "export"), ("export/summary.py", "weights_report"),
           ("triton/pipeline_model.py", "cli"), ("triton/pipeline_model.py", "web")}


def _top(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


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
    if (PACKAGE / f"{package}.py").is_file():
        return [PACKAGE / f"{package}.py"]
    return sorted((PACKAGE / package).rglob("*.py"))


def test_every_module_has_a_floor():
    tops = {_top(p) for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts}
    assert not tops - set(_FLOOR_OF) - _BASE, sorted(tops - set(_FLOOR_OF) - _BASE)


@pytest.mark.parametrize("package", [name for floor in FLOORS for name in floor])
def test_no_layer_imports_a_higher_one(package):
    wrong = []
    for path in _sources(package):
        rel = str(path.relative_to(PACKAGE))
        for target in _imported_packages(path) - _BASE - {package}:
            above = _FLOOR_OF.get(target, -1) > _FLOOR_OF[package]
            peer = _FLOOR_OF.get(target) == _FLOOR_OF[package] and (package, target) not in FLOOR_PEERS
            if (above or peer) and (rel, target) not in ALLOWED:
                wrong.append(f"{rel} imports imgdiff_rt.{target}")
    assert not wrong, wrong


def _string_imports(path: Path) -> list[str]:
    """Modules named by a string to importlib.import_module / __import__ (arrows the import graph hides)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if called in ("import_module", "__import__") and node.args:
                arg = node.args[0]
                names.append(arg.value if isinstance(arg, ast.Constant) else ast.unparse(arg))
    return names


#: string imports that stay: the package's lazy top-level names and the CLI's lazily loaded commands (both
#: names within their own package)
STRING_IMPORTS = {"__init__.py", "cli/lazy_group.py"}


def test_no_string_imports_outside_the_lazy_loaders():
    found = {str(p.relative_to(PACKAGE)): _string_imports(p) for p in PACKAGE.rglob("*.py")}
    assert {rel for rel, names in found.items() if names} <= STRING_IMPORTS, \
        {rel: names for rel, names in found.items() if names and rel not in STRING_IMPORTS}


def test_the_contract_never_imports_torch():
    heavy = [str(p.relative_to(PACKAGE)) for p in _sources("models")
             if {"torch", "transformers", "ultralytics"} & _third_party(p)]
    assert not heavy, heavy


def _third_party(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module.split(".")[0])
    return found


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
    assert defined.get("choose_regions") == ["detectors/model/clip_filter.py"]
    assert sorted(_calls("select_different")) == ["detectors/model/clip_filter.py"]  # only inside choose_regions


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
