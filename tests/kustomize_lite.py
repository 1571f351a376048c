"""Render a kustomization in Python, for CI machines without the kustomize binary.

Implements only the kustomize features deploy/ uses, and refuses any other, so a manifest change that needs
more fails here instead of rendering differently from `kubectl kustomize`: ``resources`` (files and folders),
``labels`` (with ``includeSelectors``), ``images`` (``newName``/``newTag``), and ``patches`` that are either
RFC 6902 operation lists (inline or ``path``) or a ``$patch: delete`` document.
"""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

SUPPORTED = {"apiVersion", "kind", "resources", "labels", "images", "patches"}
#: where kustomize puts selector labels for the kinds deploy/ holds
SELECTOR_PATHS = {"Deployment": [("spec", "selector", "matchLabels"), ("spec", "template", "metadata", "labels")],
                  "Service": [("spec", "selector")]}


class Unsupported(Exception):
    pass


def render(folder: Path) -> list[dict]:
    spec = yaml.safe_load((folder / "kustomization.yaml").read_text())
    unknown = set(spec) - SUPPORTED
    if unknown:
        raise Unsupported(f"{folder}: kustomization fields not supported here: {sorted(unknown)}")
    objects: list[dict] = []
    for res in spec.get("resources", []):
        path = (folder / res).resolve()
        objects += render(path) if path.is_dir() else [d for d in yaml.safe_load_all(path.read_text()) if d]
    for entry in spec.get("labels", []):
        _label(objects, entry["pairs"], entry.get("includeSelectors", False))
    for image in spec.get("images", []):
        _image(objects, image)
    for patch in spec.get("patches", []):
        objects = _patch(folder, objects, patch)
    return objects


def _label(objects: list[dict], pairs: dict, selectors: bool) -> None:
    for obj in objects:
        obj.setdefault("metadata", {}).setdefault("labels", {}).update(pairs)
        for path in SELECTOR_PATHS.get(obj["kind"], []) if selectors else []:
            node = obj
            for key in path:
                node = node.setdefault(key, {})
            node.update(pairs)


def _image(objects: list[dict], image: dict) -> None:
    for obj in objects:
        pod = obj.get("spec", {}).get("template", {}).get("spec", {})
        for c in pod.get("containers", []) + pod.get("initContainers", []):
            if c["image"].split(":")[0] == image["name"]:
                c["image"] = f"{image.get('newName', image['name'])}:{image.get('newTag', 'latest')}"


def _targets(objects: list[dict], target: dict) -> list[dict]:
    return [o for o in objects if o["kind"] == target.get("kind", o["kind"])
            and o["metadata"]["name"] == target.get("name", o["metadata"]["name"])]


def _patch(folder: Path, objects: list[dict], patch: dict) -> list[dict]:
    body = yaml.safe_load((folder / patch["path"]).read_text()) if "path" in patch else yaml.safe_load(patch["patch"])
    hits = _targets(objects, patch.get("target", {}))
    if not hits:
        raise Unsupported(f"patch target {patch.get('target')} matches nothing")
    if isinstance(body, dict) and body.get("$patch") == "delete":
        return [o for o in objects if not any(o is h for h in hits)]
    if not isinstance(body, list):
        raise Unsupported("only RFC 6902 operation lists and $patch: delete are supported")
    for obj in hits:
        for op in body:
            _apply(obj, op)
    return objects


def _apply(obj: dict, op: dict) -> None:
    keys = [k.replace("~1", "/").replace("~0", "~") for k in op["path"].lstrip("/").split("/")]
    parent = obj
    for k in keys[:-1]:
        parent = parent[int(k)] if isinstance(parent, list) else parent[k]
    last = keys[-1]
    if isinstance(parent, list):
        index = len(parent) if last == "-" else int(last)
        if op["op"] == "remove":
            del parent[index]
        elif op["op"] == "replace":
            parent[index] = copy.deepcopy(op["value"])
        elif op["op"] == "add":
            parent.insert(index, copy.deepcopy(op["value"]))
        else:
            raise Unsupported(f"op {op['op']!r}")
    elif op["op"] == "remove":
        del parent[last]
    elif op["op"] in ("add", "replace"):
        if op["op"] == "replace" and last not in parent:
            raise Unsupported(f"replace of a missing key {op['path']}")
        parent[last] = copy.deepcopy(op["value"])
    else:
        raise Unsupported(f"op {op['op']!r}")
