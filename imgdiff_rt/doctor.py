"""``imgdiff-rt doctor``: what this machine and a model bundle offer, in one report to paste into a bug report.

Every probe is read-only and quick: package versions from their metadata, ONNX Runtime's providers, CUDA as
PyTorch sees it, whether TensorRT imports, Java (pycocoevalcap's METEOR and PTB tokenizer need it), the Triton
server's side environment and, when a bundle is given, its graphs with their precisions, weights kind and
whether each file's sha256 still matches the manifest. Nothing is downloaded, built or started.
"""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from imgdiff_rt import __version__
from imgdiff_rt.errors import ImgDiffError

#: the packages whose versions the report lists (absent ones are reported as absent)
PACKAGES = ("numpy", "opencv-python-headless", "onnx", "onnxruntime", "onnxruntime-gpu", "torch", "transformers",
            "ultralytics", "tensorrt", "tritonclient", "pycocoevalcap", "click")


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def ort_providers() -> list[str]:
    try:
        import onnxruntime as ort
    except ImportError:
        return []
    return list(ort.get_available_providers())


def cuda_status() -> dict:
    """CUDA as PyTorch sees it: available, device count and names."""
    try:
        import torch
    except ImportError:
        return {"available": False, "reason": "torch is not installed"}
    if not torch.cuda.is_available():
        return {"available": False, "reason": "no CUDA device visible to PyTorch", "torch_cuda": torch.version.cuda}
    names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {"available": True, "devices": names, "torch_cuda": torch.version.cuda}


def tensorrt_status() -> dict:
    try:
        import tensorrt
    except ImportError:
        return {"available": False, "reason": "the tensorrt package is not installed (pip install 'imgdiff-rt[tensorrt]')"}
    except Exception as e:  # a broken install (missing libnvinfer) must not stop the report
        return {"available": False, "reason": f"tensorrt does not import: {str(e).splitlines()[0]}"}
    return {"available": True, "version": tensorrt.__version__}


def java_status() -> dict:
    """Java for METEOR and the PTB tokenizer (``eval-captions``)."""
    java = shutil.which("java")
    if java is None:
        return {"available": False, "reason": "java is not on PATH (eval-captions' METEOR and tokenizer need it)"}
    try:
        done = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=20)
        first = (done.stderr or done.stdout).strip().splitlines()
        return {"available": done.returncode == 0, "path": java, "version": first[0] if first else "unknown"}
    except (OSError, subprocess.TimeoutExpired) as e:
        return {"available": False, "path": java, "reason": str(e)}


def triton_status() -> dict:
    """The client package and the side environment `imgdiff-rt serve` builds on first use."""
    from imgdiff_rt.triton.server import ServerEnv, default_env_dir

    env = ServerEnv(default_env_dir())
    built = env.tritonserver.is_file()
    return {"client": package_versions(("tritonclient",))["tritonclient"], "server_env": str(env.root),
            "server_env_built": built,
            **({} if built else {"note": "built on the first `imgdiff-rt serve` (pip, ~10-30 s)"})}


def bundle_summary(root: str | Path, verify: bool = True) -> dict:
    """Graphs (format, precision, weights kind, source, size, sha256 checked) of the bundle at ``root``."""
    from imgdiff_rt.models.bundle import Bundle, sha256_file

    try:
        bundle = Bundle.load(root)
    except ImgDiffError as e:
        return {"path": str(root), "ok": False, "error": str(e)}
    graphs = []
    for entry in bundle.entries.values():
        path = bundle.root / entry.file
        row = {"graph": entry.spec, "format": entry.format, "precision": entry.precision, "weights": entry.weights,
               "source": entry.source.name, "bytes": entry.bytes, "present": path.is_file()}
        if verify:
            row["sha256_ok"] = path.is_file() and sha256_file(path) == entry.sha256
        graphs.append(row)
    kinds = sorted({g["weights"] for g in graphs})
    ok = all(g["present"] and g.get("sha256_ok", True) for g in graphs)
    return {"path": str(bundle.root), "ok": ok, "schema": bundle.manifest.schema,
            "imgdiff_rt_version": bundle.manifest.imgdiff_rt_version, "weights": kinds,
            "captioners": sorted(bundle.manifest.generation), "graphs": graphs,
            "hashes_checked": verify}


def collect(models: str | Path | None, verify: bool = True) -> dict:
    """The whole report as a JSON-ready dict."""
    from imgdiff_rt.models.bundle import default_bundle_dir

    report = {"imgdiff_rt": __version__, "python": sys.version.split()[0],
              "platform": platform.platform(), "packages": package_versions(),
              "onnxruntime_providers": ort_providers(), "cuda": cuda_status(), "tensorrt": tensorrt_status(),
              "java": java_status(), "triton": triton_status()}
    root = Path(models).expanduser() if models is not None else default_bundle_dir()
    report["bundle"] = bundle_summary(root, verify)
    return report


def _status(section: dict) -> str:
    if section.get("available"):
        return ", ".join(str(v) for k, v in section.items() if k not in ("available",) and v) or "yes"
    return f"no ({section.get('reason', 'unavailable')})"


def format_report(report: dict) -> str:
    """The report as aligned text lines (what `imgdiff-rt doctor` prints)."""
    lines = [f"imgdiff-rt {report['imgdiff_rt']}  Python {report['python']}  {report['platform']}", "packages:"]
    lines += [f"  {name:<24} {version or '-'}" for name, version in report["packages"].items()]
    lines.append(f"ONNX Runtime providers: {', '.join(report['onnxruntime_providers']) or 'none'}")
    lines.append(f"CUDA: {_status(report['cuda'])}")
    lines.append(f"TensorRT: {_status(report['tensorrt'])}")
    lines.append(f"Java (METEOR): {_status(report['java'])}")
    triton = report["triton"]
    lines.append(f"Triton: client {triton['client'] or 'not installed'}; server environment {triton['server_env']} "
                 f"{'built' if triton['server_env_built'] else 'not built (' + triton['note'] + ')'}")
    lines += _bundle_lines(report["bundle"])
    return "\n".join(lines)


def _bundle_lines(bundle: dict) -> list[str]:
    if "error" in bundle:
        return [f"bundle: {bundle['error']}"]
    lines = [f"bundle: {bundle['path']} (weights: {', '.join(bundle['weights']) or 'none'}; captioners: "
             f"{', '.join(bundle['captioners']) or 'none'})"]
    for g in bundle["graphs"]:
        check = "" if "sha256_ok" not in g else "  sha256 ok" if g["sha256_ok"] else "  SHA256 MISMATCH"
        size = f"{g['bytes'] / 1e6:.1f} MB" if g.get("bytes") else "?"
        lines.append(f"  {g['graph']:<14} {g['format']:<6} {g['precision']:<5} {g['weights']:<16} {size:>9}"
                     f"{'' if g['present'] else '  FILE MISSING'}{check}")
    return lines
