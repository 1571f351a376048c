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
               ("pairs", "detectors"), ("config", "pipeline"), ("pipeline", "config"),
               ("config", "weights_report"), ("batch", "writers"),
               ("batch", "evaluation"), ("bench", "triton"), ("doctor", "triton"), ("writers", "captioners"), ("cli", "web"),
               ("weights_report", "extras")}
_BASE = {"errors", "limits", "files", "imageio", "result", "annotate", "extras", "stages", "__init__"}
_FLOOR_OF = {name: i for i, floor in enumerate(FLOORS) for name in floor}
#: the deliberate exceptions: the CLI's export command and the container entrypoint that builds engines where
#: they run; export reads which detectors need a bundle from weights_report
ALLOWED = {("cli/export_cmd.py", "export"), ("triton/engines.py", "export"), ("export/summary.py", "weights_report")}


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


def test_the_stage_graph_is_pure_data():
    """Every floor reads the stage list (the pipeline and the model detector execute it, the repository
    generates the ensemble from it), so it imports nothing from the package."""
    assert not _imported_packages(PACKAGE / "stages.py")


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


# ---- the module import graph: no circles, no private names across modules ----------------------------------------
def _module_name(path: Path, package: Path) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _from_source(importer: str, is_package: bool, node: ast.ImportFrom) -> str | None:
    """The module ``from X import ...`` reads from, a relative X resolved against ``importer``."""
    if not node.level:
        return node.module
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    base = base[:len(base) - node.level + 1]
    return ".".join([*base, *([node.module] if node.module else [])])


def _imports(tree: ast.AST, name: str, is_package: bool, modules: set[str]) -> list[tuple]:
    """(module, name taken from it or None, line, local name bound to the module or None) for every import of a
    package module, at module level and inside functions; ``from pkg import mod`` where ``mod`` is a module is an
    import of ``pkg.mod``."""
    root = name.split(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, None, node.lineno, a.asname) for a in node.names if a.name in modules]
        elif isinstance(node, ast.ImportFrom):
            source = _from_source(name, is_package, node)
            if not source or not (source == root or source.startswith(root + ".")):
                continue
            for a in node.names:
                sub = f"{source}.{a.name}"
                found.append((sub, None, node.lineno, a.asname or a.name) if sub in modules
                             else (source, a.name, node.lineno, None))
    return found


def _private_reads(tree: ast.AST, name: str, found: list[tuple]) -> list[str]:
    """``from X import _y`` or ``from pkg import _mod`` from another module, and ``mod._y`` on an imported one."""
    out = []
    for target, taken, line, _ in found:
        owner, last = (target, taken) if taken else target.rsplit(".", 1)
        if target != name and last.startswith("_") and not last.startswith("__"):
            out.append(f"{name}:{line} imports {last} from {owner}")
    bound = {local: target for target, _, _, local in found if local}
    out += [f"{name}:{node.lineno} reads {node.value.id}.{node.attr} of {bound[node.value.id]}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in bound
            and node.attr.startswith("_") and not node.attr.startswith("__")]
    return out


def _import_graph(package: Path = PACKAGE) -> tuple[dict[str, dict[str, int]], list[str]]:
    """{module: {module it imports: first line}} and every private name one module takes from another."""
    paths = {_module_name(p, package): p for p in package.rglob("*.py") if "__pycache__" not in p.parts}
    graph: dict[str, dict[str, int]] = {}
    private = []
    for name, path in sorted(paths.items()):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found = _imports(tree, name, path.name == "__init__.py", set(paths))
        graph[name] = {}
        for target, _, line, _ in found:
            if target != name and target in paths:
                graph[name].setdefault(target, line)
        private += _private_reads(tree, name, found)
    return graph, private


def _reachable(graph: dict[str, dict[str, int]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph.get(todo.pop(), {}):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _cycles(graph: dict[str, dict[str, int]]) -> set[frozenset[str]]:
    """The groups of modules that import each other, directly or around a longer circle."""
    reach = {m: _reachable(graph, m) for m in graph}
    return {frozenset(w for w in reach[m] if m in reach[w]) for m in graph if m in reach[m]}


def _one_circle(graph: dict[str, dict[str, int]], group: frozenset[str]) -> str:
    """A shortest circle through the group's first module, each hop with its import's line: a:12 -> b:3 -> a."""
    start = min(group)
    paths, queue = {start: [start]}, [start]
    for module in queue:
        for nxt in sorted(set(graph[module]) & group):
            if nxt == start:
                hops = paths[module] + [start]
                return " -> ".join(f"{a}:{graph[a][b]}" for a, b in zip(hops, hops[1:])) + f" -> {start}"
            if nxt not in paths:
                paths[nxt] = paths[module] + [nxt]
                queue.append(nxt)
    raise AssertionError(f"{sorted(group)} is no circle")


def test_no_import_cycles_between_modules():
    graph, _ = _import_graph()
    found = _cycles(graph)
    assert not found, "modules that import each other:\n" + "\n".join(
        f"{sorted(g)}: {_one_circle(graph, g)}" for g in sorted(found, key=sorted))


def test_no_module_imports_a_private_name_of_another():
    _, private = _import_graph()
    assert not private, "private names taken across modules:\n" + "\n".join(private)


def test_the_import_graph_sees_every_kind_of_import(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    for rel, text in {"__init__.py": "", "sub/__init__.py": "", "base.py": "def _hidden(): pass\n",
                      "a.py": "def f():\n    from .sub import b\n",  # function level, relative, "import mod"
                      "sub/b.py": "import pkg.c\n",
                      "c.py": "from pkg import a\nfrom .base import _hidden\n",
                      "d.py": "from pkg import base as B\nB._hidden()\n"}.items():
        (package / rel).write_text(text, encoding="utf-8")
    graph, private = _import_graph(package)
    circle = frozenset({"pkg.a", "pkg.sub.b", "pkg.c"})
    assert _cycles(graph) == {circle}
    assert _one_circle(graph, circle) == "pkg.a:2 -> pkg.sub.b:1 -> pkg.c:1 -> pkg.a"
    assert private == ["pkg.c:2 imports _hidden from pkg.base", "pkg.d:2 reads B._hidden of pkg.base"]
