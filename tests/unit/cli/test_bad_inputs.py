"""Every bad input: a one-line error naming the file and the problem, exit code 2, no traceback, no output."""

import io
import json
import os

import pytest
from click.testing import CliRunner
from PIL import Image

from imgdiff_rt.cli.main import cli

from helpers import save, textured


@pytest.fixture()
def good(tmp_path):
    return save(tmp_path / "good.png", textured(120, 160))


def _png_bytes(arr):
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _jpeg_bytes(arr):
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def make_missing(tmp_path):
    return tmp_path / "nope.png"


def make_directory(tmp_path):
    (tmp_path / "adir.png").mkdir()
    return tmp_path / "adir.png"


def make_zero_byte(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    return tmp_path / "empty.jpg"


def make_text_as_jpg(tmp_path):
    (tmp_path / "notes.jpg").write_text("this is not an image\n")
    return tmp_path / "notes.jpg"


def make_truncated_jpeg(tmp_path):
    data = _jpeg_bytes(textured(120, 160))
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    return tmp_path / "cut.jpg"


def make_truncated_png(tmp_path):
    data = _png_bytes(textured(120, 160))
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    return tmp_path / "cut.png"


def make_one_pixel(tmp_path):
    return save(tmp_path / "dot.png", textured(1, 1))


def make_bomb(tmp_path):
    Image.new("L", (10_000, 9_000)).save(tmp_path / "bomb.png")  # 90 MP of zeros, a few KB on disk
    return tmp_path / "bomb.png"


BAD_IMAGES = [
    (make_missing, "file not found"),
    (make_directory, "is a folder, not an image file"),
    (make_zero_byte, "file is empty (0 bytes)"),
    (make_text_as_jpg, "not a recognised image format"),
    (make_truncated_jpeg, "truncated or corrupt"),
    (make_truncated_png, "truncated or corrupt"),
    (make_one_pixel, "image is 1x1; both sides must be at least 8 px"),
    (make_bomb, "over the 30 MP cap"),
]


def _assert_one_line_error(res, *needles):
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.stderr
    for needle in needles:
        assert needle in lines[0]


@pytest.mark.parametrize("make,problem", BAD_IMAGES, ids=[m.__name__[5:] for m, _ in BAD_IMAGES])
@pytest.mark.parametrize("side", ["left", "right"])
def test_bad_image(tmp_path, good, make, problem, side):
    bad = make(tmp_path)
    args = [str(bad), str(good)] if side == "left" else [str(good), str(bad)]
    out = tmp_path / "out"
    res = CliRunner().invoke(cli, ["run", *args, "--out", str(out), "--json", str(tmp_path / "r.json")])
    _assert_one_line_error(res, str(bad), problem)
    assert not out.exists() and not (tmp_path / "r.json").exists()  # no partial output


def test_pixel_cap_flag(tmp_path, good):
    res = CliRunner().invoke(cli, ["run", str(good), str(good), "--max-pixels", "1000"])
    _assert_one_line_error(res, "good.png", "over the 0.001 MP cap", "--max-pixels")


def test_output_folder_is_a_file(tmp_path, good):
    (tmp_path / "taken").write_text("x")
    res = CliRunner().invoke(cli, ["run", str(good), str(good), "--out", str(tmp_path / "taken")])
    _assert_one_line_error(res, "taken", "not a folder")


def test_output_folder_cannot_be_created(tmp_path, good):
    (tmp_path / "file").write_text("x")
    res = CliRunner().invoke(cli, ["run", str(good), str(good), "--out", str(tmp_path / "file" / "sub")])
    _assert_one_line_error(res, "sub", "cannot be created")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through permission bits")
def test_output_folder_not_writable(tmp_path, good):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        res = CliRunner().invoke(cli, ["run", str(good), str(good), "--out", str(locked)])
        _assert_one_line_error(res, "locked", "not writable")
    finally:
        locked.chmod(0o700)


def test_malformed_jsonl_line_fails_alone(tmp_path, good):
    right = textured(120, 160)
    right[30:60, 40:90] = 0
    save(tmp_path / "changed.png", right)
    lines = [json.dumps({"id": "ok1", "left": "good.png", "right": "changed.png"}),
             "{this is not json",
             json.dumps({"id": "nor", "left": "good.png"}),
             json.dumps({"id": "ok2", "left": "good.png", "right": "good.png"})]
    (tmp_path / "pairs.jsonl").write_text("\n".join(lines) + "\n")
    res = CliRunner().invoke(cli, ["run", "--pairs", str(tmp_path / "pairs.jsonl"), "--out", str(tmp_path / "o")])
    assert res.exit_code == 1 and "4 pairs: 2 done, 0 already done, 2 failed" in res.stderr
    rows = [json.loads(x) for x in (tmp_path / "o" / "results.jsonl").read_text().splitlines()]
    by_id = {r["id"]: r for r in rows}
    assert len(by_id["ok1"]["regions"]) == 1 and by_id["ok2"]["regions"] == []
    assert "pairs.jsonl:2: malformed pairs line" in by_id["line-2"]["error"]
    assert "missing 'right'" in by_id["nor"]["error"]


def test_unknown_pairs_file(tmp_path):
    res = CliRunner().invoke(cli, ["run", "--pairs", str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "o")])
    _assert_one_line_error(res, "none.jsonl", "not found")
    assert not (tmp_path / "o").exists()
