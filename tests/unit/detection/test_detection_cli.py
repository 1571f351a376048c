"""Re-shot detection and region masks through the CLI: --align methods, --photometric, region masks in the
JSON, the change-mask PNG of `run --out`, and pixel-level scores from `eval` on mask truth."""

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from imgdiff_rt.cli.main import cli
from imgdiff_rt.detectors.pixel.masks import decode

from helpers import one_patch_pair


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture()
def pair(tmp_path):
    return one_patch_pair(tmp_path)


@pytest.mark.parametrize("extra,method", [
    ([], "none"),  # default auto: a pixel-exact pair is already registered
    (["--align"], "none"),  # bare --align means auto
    (["--align", "flow"], "none"),
    (["--align", "homography"], "none"),
    (["--align", "none"], None),
])
def test_align_methods_are_recorded(pair, extra, method):
    res = invoke("run", *pair, *extra)
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert len(d["regions"]) == 1
    alignment = d["settings"].get("alignment")
    assert (alignment or {}).get("method") == method
    if alignment:
        assert alignment["requested"] == (extra[1] if len(extra) > 1 else "auto")


def test_unknown_align_method_is_exit_2(pair):
    res = invoke("run", *pair, "--align", "sift")
    assert res.exit_code == 2 and "sift" in res.output


@pytest.mark.parametrize("photometric", ["none", "global", "local"])
def test_photometric_option_reaches_the_detector(pair, photometric):
    d = json.loads(invoke("run", *pair, "--photometric", photometric).stdout)
    assert d["settings"]["pixel"]["photometric"] == photometric
    assert ("photometric" in d["settings"]) == (photometric != "none")


def test_regions_carry_their_mask_and_run_out_writes_the_change_mask(pair, tmp_path):
    out = tmp_path / "out"
    res = invoke("run", *pair, "--out", out)
    assert res.exit_code == 0, res.output
    record = json.loads(next(out.glob("*.json")).read_text())
    region = record["regions"][0]
    own = decode(region["mask"])
    assert own.shape == (160, 240) and own.sum() == region["area"]
    x0, y0, x1, y1 = region["bbox"]
    assert abs(x0 - 60) <= 2 and abs(y0 - 40) <= 2 and abs(x1 - 110) <= 2 and abs(y1 - 80) <= 2
    png = np.asarray(Image.open(next(out.glob("*_mask.png"))))
    assert png.shape == (160, 240) and set(np.unique(png)) <= {0, 255}
    assert ((png > 0) == own).all()


def test_eval_on_mask_truth_reports_pixel_scores_and_what_ran(shared_data, tmp_path):
    root = shared_data / "levir-cd"
    names = sorted(p.name for p in (root / "label").glob("*.png"))[:3]
    for part in ("A", "B", "label"):
        (tmp_path / "set" / part).mkdir(parents=True)
        for n in names:
            shutil.copy(root / part / n, tmp_path / "set" / part / n)
    lines = [json.dumps({"id": n[:-4], "left": f"set/A/{n}", "right": f"set/B/{n}", "truth": f"set/label/{n}"})
             for n in names]
    (tmp_path / "pairs.jsonl").write_text("\n".join(lines) + "\n")
    res = invoke("eval", "--pairs", tmp_path / "pairs.jsonl", "--out", tmp_path / "ev", "--quiet")
    assert res.exit_code == 0, res.output
    assert "pixels" in res.output and "F1" in res.output and "detector pixel" in res.output
    summary = json.loads((tmp_path / "ev" / "eval_summary.json").read_text())
    px = summary["pixels"]
    assert px["pairs"] == 3 and set(px) >= {"precision", "recall", "f1", "iou", "mean_per_image"}
    assert 0.0 <= px["iou"] <= px["f1"] <= 1.0
