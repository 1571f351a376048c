"""Prove that two commits of imgdiff-rt behave the same: run each commit's own CLI on a fixed list of pairs,
normalise the result JSONs (timings and checkout paths removed) and compare them.

    python scripts/check_behaviour.py --before REV [--after REV]   # --after: this checkout's working tree

A commit runs from a git worktree under /tmp/imgdiff-behaviour/<sha>/tree, with this venv's python and
PYTHONPATH=<worktree>; its normalised results go to /tmp/imgdiff-behaviour/<sha>/<role>/ (raw JSON and stderr
under raw/). Unless --no-self-check (or both sides are one commit), --before first runs twice and is compared
with itself, which shows the normalisation leaves no run-to-run noise. Exit 0: every case equal; 1: a difference
or a failed case; 2: setup failed (worktree, export, or the wrong imgdiff_rt imported).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORK = Path("/tmp/imgdiff-behaviour")
BUNDLE = WORK / "bundle"
DATA = Path("/work/shared/data")
ROOT_MARK = "<ROOT>"
REL_TOL = 1e-6
GROUPS = ("example", "levir", "clevr", "segment", "hybrid", "blip")

# Keys whose values are wall-clock measurements. Found by running one commit twice: only `timings_ms` moved;
# the wider pattern covers timing keys a refactor might add without changing what is computed.
TIMING_KEY = re.compile(r"(^|_)(ms|secs?|seconds|elapsed|timings?|durations?)(_|$)")

# `python -m imgdiff_rt.cli.main` would import the module and exit 0 without doing anything (it has no
# `if __name__ == "__main__"`), so the console script's entry point is called the way its wrapper does. The
# module's file is checked on every call: the venv holds an editable install of /work/main, and a wrong
# sys.path order would silently run /work/main's code for both sides.
LAUNCHER = """import importlib, sys
root, target = sys.argv[1], sys.argv[2]
del sys.argv[1:3]
sys.argv[0] = "imgdiff-rt"
mod_name, _, func = target.partition(":")
mod = importlib.import_module(mod_name)
if not mod.__file__.startswith(root + "/"):
    sys.exit(f"check_behaviour: imported {mod.__file__}, not from {root}")
sys.exit(getattr(mod, func)(prog_name="imgdiff-rt"))
"""


class SetupError(Exception):
    pass


def git(*args: str, cwd: Path = REPO) -> str:
    res = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if res.returncode != 0:
        raise SetupError(f"git {' '.join(args)}: {res.stderr.strip()}")
    return res.stdout.strip()


def checkout(rev: str | None) -> tuple[str, Path]:
    """(label, root) of a side: a commit in its own worktree, or None for this working tree."""
    if rev is None:
        return "working-tree", REPO
    sha = git("rev-parse", "--verify", f"{rev}^{{commit}}")
    # the worktree sits one level below <sha>/ so the results written beside it do not dirty its checkout
    tree = WORK / sha / "tree"
    if tree.exists():
        if git("rev-parse", "HEAD", cwd=tree) != sha:
            raise SetupError(f"{tree} exists but is not at {sha}; remove it with `git worktree remove`")
        return sha, tree
    git("worktree", "prune")  # a worktree deleted by hand stays registered and blocks `add`
    tree.parent.mkdir(parents=True, exist_ok=True)
    git("worktree", "add", "--detach", str(tree), sha)
    return sha, tree


def entry_point(root: Path) -> str:
    """`module:function` of the `imgdiff-rt` console script as that side's pyproject.toml declares it."""
    with open(root / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]["scripts"]["imgdiff-rt"]


def side_env(root: Path, scratch: Path) -> dict[str, str]:
    env = dict(os.environ)
    # the side's root first: ahead of the editable install's finder, which only answers after sys.path
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH", "")) if p)
    env.update(HF_HUB_OFFLINE="1", YOLO_OFFLINE="1", YOLO_AUTOINSTALL="false")
    env["YOLO_CONFIG_DIR"] = str(scratch / "yolo")
    # an empty models home: a bundle in ~/.cache would change the default detector of one side only
    env["IMGDIFF_RT_HOME"] = str(scratch / "home")
    return env


def imported_from(root: Path, env: dict[str, str]) -> str:
    """imgdiff_rt.__file__ as seen by a process started exactly like the CLI runs (cwd and env)."""
    code = "import imgdiff_rt; print(imgdiff_rt.__file__)"
    res = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True)
    path = res.stdout.strip()
    if res.returncode != 0 or not path.startswith(str(root) + "/"):
        raise SetupError(f"imgdiff_rt under {root} not imported first: {path or res.stderr.strip()}")
    return path


def cli(root: Path, env: dict[str, str], args: list[str]) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-c", LAUNCHER, str(root), entry_point(root), *args]
    return subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)


def pairs(sub_a: str, sub_b: str, dataset: str, n: int) -> list[tuple[str, Path, Path]]:
    names = sorted(p.name for p in (DATA / dataset / sub_a).glob("*.png"))[:n]
    return [(Path(x).stem, DATA / dataset / sub_a / x, DATA / dataset / sub_b / x) for x in names]


def cases(root: Path) -> list[tuple[str, str, Path, Path, list[str]]]:
    """(group, name, left, right, extra args). The example is each side's own copy (README's first command)."""
    example = [("example", root / "examples" / "left.png", root / "examples" / "right.png")]
    clevr = pairs("before", "semantic", "clevr-change", 10)
    out = [("example", *example[0], ["--detector", "pixel"])]
    out += [("levir", *p, ["--detector", "pixel"]) for p in pairs("A", "B", "levir-cd", 10)]
    out += [("clevr", *p, ["--detector", "pixel"]) for p in clevr]
    models = ["--models", str(BUNDLE)]
    # With the tiny random segmenter and CLIP, plain `--detector segment` keeps no region on any of these pairs
    # (the pixel gate or the 0.85 cosine drops every box); without the gate and with a threshold of 1 its boxes
    # reach the result, so CLIP similarities and segment-sourced descriptions are compared too. hybrid keeps
    # the defaults (gate included). blip keeps the default detector: on a tiny bundle it falls back to pixel.
    segment = ["--detector", "segment", "--pixel-gate", "none", "--clip-threshold", "1.0"]
    for group, extra in (("segment", segment), ("hybrid", ["--detector", "hybrid"]),
                         ("blip", ["--captioner", "blip"])):
        out += [(group, *p, models + extra) for p in example + clevr[:3]]
    return out


def export_bundle(sha: str, root: Path, env: dict[str, str]) -> None:
    """The tiny random-init bundle, exported once by the before commit and shared by both sides (random
    weights differ per export, so two exports could never compare equal)."""
    stamp = BUNDLE / "exported-by"
    if (BUNDLE / "manifest.json").exists() and stamp.exists() and stamp.read_text() == sha:
        print(f"bundle: reusing {BUNDLE} (exported by {sha[:10]})")
        return
    shutil.rmtree(BUNDLE, ignore_errors=True)
    res = cli(root, env, ["export", "--tiny", "--random-init", "--out", str(BUNDLE)])
    if res.returncode != 0:
        raise SetupError(f"export failed ({res.returncode}): {res.stderr.strip()[-2000:]}")
    stamp.write_text(sha)
    print(f"bundle: exported to {BUNDLE} by {sha[:10]}")


def normalise(value, root: str):
    """Timing keys dropped, the side's checkout root replaced by a placeholder; the rest untouched."""
    if isinstance(value, dict):
        return {k: normalise(v, root) for k, v in value.items() if not TIMING_KEY.search(k.lower())}
    if isinstance(value, list):
        return [normalise(v, root) for v in value]
    if isinstance(value, str):
        return value.replace(root, ROOT_MARK)
    return value


def run_side(label: str, root: Path, role: str, scratch: Path) -> tuple[dict, float]:
    """Every case with one side's CLI, one at a time; {(group, name): normalised JSON or error text}."""
    env = side_env(root, scratch)
    print(f"{role}: {label} imports {imported_from(root, env)}")
    out_dir = WORK / label / role
    shutil.rmtree(out_dir, ignore_errors=True)  # stale results must not pass for this run's
    results, start = {}, time.perf_counter()
    for group, name, left, right, extra in cases(root):
        raw = out_dir / "raw" / group / f"{name}.json"
        raw.parent.mkdir(parents=True, exist_ok=True)
        res = cli(root, env, ["run", str(left), str(right), "--json", str(raw), *extra])
        raw.with_suffix(".stderr").write_text(res.stderr)
        if res.returncode != 0 or not raw.exists():
            lines = res.stderr.strip().splitlines() or ["no output"]
            results[group, name] = f"exit {res.returncode}: {lines[-1]}"
            continue
        data = normalise(json.loads(raw.read_text()), str(root))
        norm = out_dir / group / f"{name}.json"
        norm.parent.mkdir(parents=True, exist_ok=True)
        norm.write_text(json.dumps(data, indent=1, sort_keys=True))
        results[group, name] = data
    elapsed = time.perf_counter() - start
    print(f"{role}: {len(results)} cases in {elapsed:.1f} s -> {out_dir}")
    return results, elapsed


def diff(a, b, path: str = "") -> list[str]:
    """Key paths where a and b differ: floats within REL_TOL relative, all else (types included) exactly."""
    if type(a) is not type(b):
        return [f"{path or '/'}: {type(a).__name__} vs {type(b).__name__}"]
    if isinstance(a, dict):
        out = [f"{path}/{k}: only on one side" for k in sorted(set(a) ^ set(b))]
        for k in sorted(set(a) & set(b)):
            out += diff(a[k], b[k], f"{path}/{k}")
        return out
    if isinstance(a, list):
        if len(a) != len(b):
            return [f"{path or '/'}: length {len(a)} vs {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in diff(x, y, f"{path}/{i}")]
    if isinstance(a, float):
        same = math.isclose(a, b, rel_tol=REL_TOL, abs_tol=0.0) or (math.isnan(a) and math.isnan(b))
        return [] if same else [f"{path}: {a!r} vs {b!r}"]
    if isinstance(a, str) and a != b:  # long descriptions: show where they part, not their shared start
        i = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        return [f"{path}: ...{a[max(0, i - 15):i + 40]!r} vs ...{b[max(0, i - 15):i + 40]!r}"]
    return [] if a == b else [f"{path}: {a!r} vs {b!r}"]


def compare(title: str, left: dict, right: dict, show: int = 5) -> bool:
    """Print the per-group table and the first differing key paths; True when every case is equal."""
    print(f"\n{title}\n{'group':<10}{'cases':>6}{'equal':>7}")
    failures = []
    for group in GROUPS:
        keys = [k for k in left if k[0] == group]
        equal = 0
        for key in keys:
            a, b = left[key], right.get(key, "missing")
            if isinstance(a, str) or isinstance(b, str):  # a failed run is never a match, even on both sides
                failures.append((key, [f"run failed: before {a if isinstance(a, str) else 'ok'}; "
                                       f"after {b if isinstance(b, str) else 'ok'}"]))
            elif found := diff(a, b):
                failures.append((key, found))
            else:
                equal += 1
        print(f"{group:<10}{len(keys):>6}{equal:>7}")
    total = len(left)
    print(f"{'total':<10}{total:>6}{total - len(failures):>7}")
    for (group, name), found in failures:
        print(f"  DIFF {group}/{name}: {len(found)} path(s)")
        for line in found[:show]:
            print(f"    {line}")
    return not failures


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", required=True, help="git revision of the reference side")
    ap.add_argument("--after", help="git revision to check [default: this checkout's working tree]")
    ap.add_argument("--no-self-check", action="store_true",
                    help="skip running --before twice to show the normalisation makes it equal to itself")
    args = ap.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="imgdiff-behaviour-"))
    try:
        before_label, before_root = checkout(args.before)
        after_label, after_root = checkout(args.after)
        export_bundle(before_label, before_root, side_env(before_root, scratch))
        before, t_before = run_side(before_label, before_root, "before", scratch)
        ok = True
        # a second run of one commit is the self-check already when both sides are that commit
        if not args.no_self_check and before_label != after_label:
            again, _ = run_side(before_label, before_root, "before-repeat", scratch)
            ok = compare(f"self-check: {before_label[:10]} run twice", before, again)
        after, t_after = run_side(after_label, after_root, "after", scratch)
        ok = compare(f"before {before_label[:10]} vs after {after_label[:10]}", before, after) and ok
    except SetupError as e:
        print(f"setup failed: {e}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"\ntime: before {t_before:.1f} s, after {t_after:.1f} s; {'EQUAL' if ok else 'DIFFERENT'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
