"""Where `triton-repo` writes and `serve` serves by default, and whether a repository can be served at all.

The committed ``triton_models/`` holds configs and ``model.py`` files only (no weights): writing a repository
over it by default would replace the committed copy, and serving it would only end in a wall of server log.
So both commands default to a folder under the models home, and a repository whose graph models have no
weight files is refused with one line saying how to write one. The weights kind each served graph was
exported with is read back (the manifest's label `triton-repo` wrote beside it, else the ONNX file's metadata),
so `serve` can say when they are not trained, in the words `run` uses.
"""

from __future__ import annotations

import json
from pathlib import Path

from imgdiff_rt.errors import UsageError
from imgdiff_rt.models.bundle import default_bundle_dir
from imgdiff_rt.models.specs import SPECS

REPO_DIR_NAME = "triton-repo"
WEIGHT_FILES = ("1/model.onnx", "1/model.plan", "model.onnx")
#: beside each graph's config: the weights kind the bundle's manifest gives it, as `run` reports it
WEIGHTS_LABEL_FILE = "weights.json"


def default_repo_dir() -> Path:
    """``$IMGDIFF_RT_HOME/triton-repo``, else ``~/.cache/imgdiff-rt/triton-repo`` (beside the default bundle)."""
    return default_bundle_dir().parent / REPO_DIR_NAME


def graph_models(repo: Path) -> list[Path]:
    """The repository's graph model folders (a spec's name with a config.pbtxt)."""
    return [repo / name for name in SPECS if (repo / name / "config.pbtxt").is_file()]


def check_servable(repo: str | Path) -> Path:
    """``repo`` when it is a repository with weights; UsageError (one line, with the command that writes one)
    when it is missing, not a repository, or configs only."""
    repo = Path(repo).expanduser()
    if not repo.is_dir():
        raise UsageError(f"repo: {repo} does not exist (no Triton model repository there); write one with "
                         f"`imgdiff-rt triton-repo --bundle DIR --platform python --out {repo}`", parameter="repo")
    # an existing folder is never named as --out: triton-repo replaces its target whole (the committed
    # triton_models/ included), so the advice writes to the default folder instead
    write = (f"write one with `imgdiff-rt triton-repo --bundle DIR --platform python` (to {default_repo_dir()}) "
             "and serve it with `imgdiff-rt serve`")
    if not any(repo.glob("*/config.pbtxt")):
        raise UsageError(f"repo: {repo} is not a Triton model repository (no <model>/config.pbtxt); {write}",
                         parameter="repo")
    graphs = graph_models(repo)  # glue-only repositories (Python models) need no weights
    if graphs and not any((g / f).is_file() for g in graphs for f in WEIGHT_FILES):
        raise UsageError(f"repo: {repo} holds no model weights (configs only, like the committed triton_models/); "
                         f"{write}", parameter="repo")
    return repo


def _written_label(path: Path) -> str | None:
    try:
        label = json.loads(path.read_text()).get("weights")
    except (OSError, ValueError, AttributeError):
        return None
    return label if isinstance(label, str) else None


def served_weights(repo: str | Path) -> dict[str, str]:
    """{graph: weights kind}: what `triton-repo` recorded from the bundle's manifest, else the metadata of each
    graph's ONNX file ("unknown" when it carries none, e.g. a registered foreign ONNX)."""
    from imgdiff_rt.models.onnx_file import read_metadata

    found = {}
    for graph in graph_models(Path(repo).expanduser()):
        label = _written_label(graph / WEIGHTS_LABEL_FILE)
        if label is not None:
            found[graph.name] = label
            continue
        onnx_file = next((graph / f for f in ("1/model.onnx", "model.onnx") if (graph / f).is_file()), None)
        if onnx_file is None:
            continue
        try:
            meta = read_metadata(onnx_file)
        except Exception:  # noqa: BLE001 - not an ONNX file onnx can parse: its kind is unknown, said as such
            meta = {}
        if "weights" in meta:
            found[graph.name] = meta["weights"]
        elif "random_init" in meta:
            found[graph.name] = "random-init" if meta["random_init"] == "True" else "pretrained"
        else:
            found[graph.name] = "unknown"
    return found
