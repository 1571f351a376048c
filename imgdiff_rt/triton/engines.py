"""``python -m imgdiff_rt.triton.engines REPO``: build the TensorRT engines a ``--platform tensorrt``
repository lacks, for the GPU this runs on (the Docker entrypoint calls it before starting tritonserver).

A graph folder written for TensorRT holds ``model.onnx`` and ``spec.json`` (the bound spec sizes) beside its
``config.pbtxt``; its engine goes to ``1/model.plan``. Engines are GPU- and TensorRT-version-specific, which
is why they are built where they run instead of being shipped.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def missing_engines(repo: str | Path) -> list[Path]:
    return sorted(d for d in Path(repo).iterdir()
                  if (d / "spec.json").is_file() and (d / "model.onnx").is_file() and not (d / "1" / "model.plan").exists())


def build_missing(repo: str | Path, log=print) -> list[Path]:
    from imgdiff_rt.models.specs import DEFAULT_IMGSZ, get_spec
    from imgdiff_rt.export.tensorrt_engine import build_engine

    built = []
    for d in missing_engines(repo):
        info = json.loads((d / "spec.json").read_text())
        spec = get_spec(info["spec"]).bind(**info["sizes"])
        log(f"building TensorRT engine for {d.name} (first start on this GPU)")
        (d / "1").mkdir(exist_ok=True)
        build_engine(d / "model.onnx", spec, d / "1" / "model.plan", "fp16", d / "timing.cache",
                     imgsz=int(info["sizes"].get("imgsz", DEFAULT_IMGSZ)), max_batch=int(info["max_batch"]))
        built.append(d)
    return built


if __name__ == "__main__":
    build_missing(sys.argv[1] if len(sys.argv) > 1 else "/models",
                  log=lambda m: print(m, file=sys.stderr, flush=True))
