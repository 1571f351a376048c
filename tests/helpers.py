"""Small image factories, builders of fake inputs and the folders shared by the tests (no fixtures here: plain
functions and constants, importable anywhere as ``from helpers import ...``: pyproject's pytest settings put
tests/ on sys.path). Anything heavy (torch, the CLI, the models) is imported inside the function that needs
it, so that importing this module stays cheap for every test."""

from __future__ import annotations

import importlib.util
import io
import json
import os
from pathlib import Path

import numpy as np
from PIL import Image

#: tests/, wherever a test file sits below it (tests/data, the helper modules the Ray driver script imports)
TESTS_DIR = Path(__file__).resolve().parent
#: the checkout's root (README.md, examples/, deploy/, the package)
ROOT = TESTS_DIR.parent
#: the ../shared data folder beside the checkout (models, data sets), or where IMGDIFF_RT_SHARED names it
SHARED = Path(os.environ.get("IMGDIFF_RT_SHARED", ROOT.parent / "shared"))
#: the example pair of the README and `imgdiff-rt web`: left.png, right.png and truth.json (its three changes)
EXAMPLE = ROOT / "examples"
#: the example pair's two pictures, as paths (a test that wants their bytes reads them itself)
LEFT, RIGHT = EXAMPLE / "left.png", EXAMPLE / "right.png"


def textured(h: int = 240, w: int = 320, seed: int = 0) -> np.ndarray:
    """A smooth, non-uniform RGB scene (gradients + soft blobs): realistic enough for alignment features."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32)
    img[..., 0] = 90 + 60 * xx / w
    img[..., 1] = 100 + 50 * yy / h
    img[..., 2] = 120
    for _ in range(25):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(6, 22)
        colour = rng.uniform(20, 235, 3)
        blob = np.exp(-(((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r)))[..., None]
        img = img * (1 - blob) + colour * blob
    return np.clip(img, 0, 255).astype(np.uint8)


def flat(h: int = 200, w: int = 300, colour=(128, 128, 128)) -> np.ndarray:
    return np.full((h, w, 3), colour, np.uint8)


def save(path: Path, arr: np.ndarray, **kw) -> Path:
    Image.fromarray(arr).save(path, **kw)
    return path


def png(arr: np.ndarray) -> bytes:
    """``arr`` encoded as PNG bytes, as an upload carries them."""
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def make_folder(root: Path, n: int = 4, names=None) -> Path:
    """A batch folder: ``root/left`` and ``root/right`` with ``n`` textured pairs (or one per name), each with one
    magenta patch moved 5 px further down per pair."""
    (root / "left").mkdir(parents=True)
    (root / "right").mkdir()
    for k, name in enumerate(names or [f"p{k}" for k in range(n)]):
        left = textured(120, 160, seed=k)
        right = left.copy()
        right[20 + 5 * k:60 + 5 * k, 30:80] = (255, 0, 255)
        save(root / "left" / f"{name}.png", left)
        save(root / "right" / f"{name}.png", right)
    return root


def one_patch_pair(folder: Path, h: int = 160, w: int = 240, seed: int = 1) -> tuple[Path, Path]:
    """l.png and r.png in ``folder``: a textured image and a copy with one blue patch pasted at (60, 40)."""
    left = textured(h, w, seed=seed)
    right = left.copy()
    right[40:80, 60:110] = (20, 40, 220)
    return save(folder / "l.png", left), save(folder / "r.png", right)


# ---- the CLI on the example pair


def run_example(*args):
    """`imgdiff-rt run` on the example pair with ``args`` after the two pictures (each made a string), in
    click's test runner."""
    from click.testing import CliRunner

    from imgdiff_rt.cli.main import cli

    return CliRunner().invoke(cli, ["run", str(LEFT), str(RIGHT), *[str(a) for a in args]])


# ---- the web API through FastAPI's test client


def post(client, left: bytes, right: bytes, data=None, names=("left.png", "right.png"), **kw):
    """POST one pair to /v1/diff as multipart uploads, with ``data`` as the form's other fields."""
    files = {"left": (names[0], left, "image/png"), "right": (names[1], right, "image/png")}
    return client.post("/v1/diff", files=files, data=data or {}, **kw)


def error_of(resp, status: int) -> str:
    """The one-line message of an error answer, once its status is checked and its body is only {"error"}."""
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert list(body) == ["error"] and "Traceback" not in body["error"] and "\n" not in body["error"]
    return body["error"]


# ---- `imgdiff-rt eval-captions`: prediction records and reference files

#: why the caption scorers cannot run, or None where pycocoevalcap is installed
NO_SCORER = ("pycocoevalcap is not installed (it is in the dev extra)"
             if importlib.util.find_spec("pycocoevalcap") is None else None)


def write_text(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def result_line(pair_id: str, description: str | None, region: str | None = None, **extra) -> str:
    """One line of `run`'s JSONL results: a pair's description and at most one region's."""
    regions = [] if region is None else [{"description": region, "caption_left": None, "caption_right": None}]
    return json.dumps({"schema": "imgdiff-rt/result/v1", "id": pair_id, "description": description,
                       "regions": regions, **extra})


def caption_files(folder: Path) -> dict[str, Path]:
    """refs.json (COCO captions for 1.png to 4.png) and results.jsonl, whose ids cover every case the scorer
    counts: 1 matches, 2 is blank, 3 failed, 4 has no prediction and 9 no reference."""
    refs = {"images": [{"id": f"{i}.png"} for i in range(1, 5)],
            "annotations": [{"image_id": "1.png", "caption": "the red car is gone"},
                            {"image_id": "1.png", "caption": "a person walked away"},
                            {"image_id": "2.png", "caption": "a white truck has appeared"},
                            {"image_id": "3.png", "caption": "there is no difference"},
                            {"image_id": "4.png", "caption": "the bicycle moved to the left"}]}
    return {
        "refs": write_text(folder / "refs.json", json.dumps(refs)),
        "pred": write_text(folder / "results.jsonl", "\n".join([
            result_line("1", "The red car is gone.", "a red car"),
            result_line("2", "   "),
            json.dumps({"schema": "imgdiff-rt/result/v1", "id": "3", "error": "cannot read 3.png"}),
            result_line("9", "a dog"),
        ]) + "\n"),
    }


def score_captions(files: dict[str, Path], *extra: str):
    """`imgdiff-rt eval-captions` on ``files["pred"]`` against ``files["refs"]``, in click's test runner."""
    from click.testing import CliRunner

    from imgdiff_rt.cli.main import cli

    args = ["eval-captions", "--pred", str(files["pred"]), "--refs", str(files["refs"]), *extra]
    return CliRunner().invoke(cli, args)


# ---- export: one tiny module per registered spec, for the parity checks


def tiny_hf(family: str, spec_name: str):
    """(spec, module, parity dims) for one graph of a tiny random-init CLIP, BLIP or LLaVA model."""
    from imgdiff_rt.torch_models import hf as hf_models

    loaded = {"clip": hf_models.load_clip, "blip": hf_models.load_blip, "llava": hf_models.load_llava}[family](
        tiny=True)
    spec, module = next((s, m) for s, m in hf_models.graphs_for(loaded) if s.name == spec_name)
    return spec, module, {}


def tiny_segmenter(spec_name: str):
    """(spec, module, parity dims) of the tiny FastSAM-s segmenter."""
    from imgdiff_rt.export.segmenter import build_segmenter, segmenter_spec

    module = build_segmenter("FastSAM-s.pt", tiny=True)
    # a non-square size different from the export example checks dynamic height/width too
    return segmenter_spec(module.info, 64), module, {"height": 96, "width": 64}


#: One row per registered spec: how to build its tiny module. A spec without a row fails the coverage test.
PARITY_CASES = {
    "segmenter": lambda: tiny_segmenter("segmenter"),
    "clip_image": lambda: tiny_hf("clip", "clip_image"),
    "clip_text": lambda: tiny_hf("clip", "clip_text"),
    "blip_vision": lambda: tiny_hf("blip", "blip_vision"),
    "llava_vision": lambda: tiny_hf("llava", "llava_vision"),
}


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


#: TensorRT tests run only where the tensorrt package and a CUDA GPU both exist.
HAVE_TENSORRT = importlib.util.find_spec("tensorrt") is not None and _has_cuda()


def no_triton_env(monkeypatch) -> None:
    """Unset the variables that name a Triton server and its protocol, for an autouse fixture of a test file
    whose protocol and URL must come from its own arguments, never from the developer's shell."""
    monkeypatch.delenv("IMGDIFF_RT_TRITON_PROTOCOL", raising=False)
    monkeypatch.delenv("IMGDIFF_RT_TRITON_URL", raising=False)


def triton_server_env():
    """The local Triton server's side environment (built on first use), or a skip where it cannot be built (no
    package index), except under CI=true where that is a failure."""
    import os

    import pytest

    from imgdiff_rt.errors import ServerEnvError
    from imgdiff_rt.triton.server import ensure_server_env

    try:
        return ensure_server_env()
    except ServerEnvError as e:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no Triton server environment: {e}")


def headless_chromium():
    """Debian's chromium driven by Playwright (never `playwright install`), for a module-scoped fixture to
    ``yield from``; a skip where either is absent."""
    import shutil

    import pytest

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install -y chromium; .ci/run installs it)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"]
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=args)
        yield b
        b.close()


def compare_example(page, server) -> None:
    """Open the page of a running ``server``, load its example pair and compare it; returns once the result's
    regions are listed (waited for by a selector, not a script: the page's CSP forbids eval)."""
    page.goto(server.base + "/")
    page.wait_for_selector("#use-example:not([hidden])")
    page.click("#use-example")
    page.wait_for_selector("#compare:not([disabled])")
    page.click("#compare")
    page.wait_for_selector("#result:not([hidden]) #regions li", timeout=60_000)
