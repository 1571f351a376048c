"""Table-driven CLI tests through Click's CliRunner on the pixel detector: help, version, run's outputs and
usage errors."""

import json

import pytest
from click.testing import CliRunner

from imgdiff_rt import __version__
from imgdiff_rt.cli.main import cli
from imgdiff_rt.writers.imgdiff_format import QUESTION

from helpers import save, textured


@pytest.fixture()
def pair(tmp_path):
    left = textured(200, 300, seed=1)
    right = left.copy()
    right[60:100, 100:150] = (20, 40, 220)
    right[150:185, 220:280] = (240, 240, 60)
    return save(tmp_path / "l.png", left), save(tmp_path / "r.png", right)


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.mark.parametrize("command", [[]] + [[name] for name in sorted(cli.commands)])
def test_help_has_an_example(command):
    """Every registered command, present and future, documents an example."""
    res = invoke(*command, "--help")
    assert res.exit_code == 0 and "Example" in res.output


def test_version():
    res = invoke("--version")
    assert res.exit_code == 0 and __version__ in res.output


RUN_CASES = [
    # (extra args, expected regions)
    ([], 2),
    (["--max-regions", "1"], 1),
    (["--min-area", "100000"], 0),
    (["--threshold", "otsu"], 2),
    (["--threshold", "percentile:95"], 2),
    (["--metric", "absdiff"], 2),
    (["--align"], 2),
]


@pytest.mark.parametrize("extra,n_regions", RUN_CASES)
def test_run_json_to_stdout(pair, extra, n_regions):
    res = invoke("run", *pair, *extra)
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["schema"] == "imgdiff-rt/result/v1" and d["size"] == [300, 200]
    assert len(d["regions"]) == n_regions
    assert set(d["timings_ms"]) == {"load", "detect", "describe", "total"}
    scores = [r["score"] for r in d["regions"]]
    assert scores == sorted(scores, reverse=True)


def test_run_writes_json_file_and_annotated_png(pair, tmp_path):
    out = tmp_path / "out"
    res = invoke("run", *pair, "--out", out, "--json", tmp_path / "res.json", "--id", "mine")
    assert res.exit_code == 0 and res.stdout == ""
    d = json.loads((tmp_path / "res.json").read_text())
    assert d["id"] == "mine" and json.loads((out / "mine.json").read_text()) == d
    from imgdiff_rt.imageio import read_image

    pic = read_image(out / "mine.png")
    assert pic.shape == (200, 2 * 300 + 20, 3)
    assert (pic[:, 300:320] == 0).all()  # the 20 px black bar
    x0, y0, x1, y1 = d["regions"][0]["bbox"]
    assert tuple(pic[y0 + 1, x0 + 5]) == (230, 25, 25)  # red box edge on the left side
    assert tuple(pic[y0 + 1, 320 + x0 + 5]) == (230, 25, 25)  # and on the right side


def test_run_img_diff_format(pair, tmp_path):
    res = invoke("run", *pair, "--format", "img-diff", "--out", tmp_path / "o")
    records = json.loads(res.stdout)
    assert len(records) == 2
    rec = records[0]
    assert rec["conversations"][0]["value"] == "<image>\n" + QUESTION
    assert rec["conversations"][1]["from"] == "gpt" and rec["conversations"][1]["value"]
    assert all(0 <= v <= 1 for v in rec["bbox"])
    assert {"captions1", "captions2", "image_left", "image_right"} <= set(rec)
    assert (tmp_path / "o" / rec["image"]).exists()


def test_identical_images_zero_regions(tmp_path):
    p = save(tmp_path / "a.png", textured())
    res = invoke("run", p, p)
    assert res.exit_code == 0 and json.loads(res.stdout)["regions"] == []


def test_right_image_of_another_size_is_resized(tmp_path):
    import cv2

    left = textured(200, 300)
    right = cv2.resize(left, (600, 400), interpolation=cv2.INTER_LINEAR)
    right[100:200, 300:400] = 0
    res = invoke("run", save(tmp_path / "a.png", left), save(tmp_path / "b.png", right))
    d = json.loads(res.stdout)
    assert d["settings"]["right_resized_from"] == [600, 400] and len(d["regions"]) == 1


USAGE_ERRORS = [
    (["run"], "give LEFT and RIGHT"),
    (["run", "--threshold", "bogus", "{l}", "{r}"], "threshold 'bogus'"),
    (["run", "--pairs", "{l}", "{l}", "{r}"], "not both"),
    (["run", "--pairs", "{l}"], "--pairs needs --out"),
    (["run", "--max-regions", "0", "{l}", "{r}"], "--max-regions"),  # the library names max_regions
    (["run", "--url", "127.0.0.1:1", "{l}", "{r}"], "--url and --protocol are for --backend triton"),
    (["run", "--detector", "segment", "--models", "{tmp}/none", "{l}", "{r}"], "no model bundle"),
    (["synth", "skimage:nonexistent", "--out", "{tmp}/s"], "no sample image"),
    (["synth", "{l}", "--out", "{tmp}/s", "--count", "0"], "count"),
]


@pytest.mark.parametrize("args,message", USAGE_ERRORS)
def test_usage_errors_are_one_line(pair, tmp_path, args, message):
    fill = {"l": pair[0], "r": pair[1], "tmp": tmp_path}
    res = CliRunner().invoke(cli, [a.format(**fill) for a in args])
    assert res.exit_code == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0]
    assert "Traceback" not in res.output
