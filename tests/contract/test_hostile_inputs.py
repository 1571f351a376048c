"""The hostile-input corpus for `imgdiff-rt run`, one table row per kind, every input built in tmp_path (devices
are private twins made with os.mknod, never the real /dev files). Each must give one `Error:` line, exit 2, no
traceback, nothing written, inputs untouched, and return quickly (a FIFO or a /dev/zero twin must not hang).

The bundle and JSON-file kinds are in test_hostile_files.py; CORPUS_KINDS there counts both tables.
"""

from __future__ import annotations

import io
import os
import socket
import stat
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from imgdiff_rt.cli.main import cli

from helpers import save, textured


def _encoded(fmt: str, size=(64, 48), **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(textured(size[1], size[0])).save(buf, format=fmt, **kw)
    return buf.getvalue()


def _png_header(w: int, h: int) -> bytes:
    """A PNG whose header claims w x h (one empty IDAT): a decompression bomb as far as the header goes."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def _bmp_header(w: int, h: int) -> bytes:
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + 40, 0, 0, 14 + 40) + info


def _write(data: bytes, name: str):
    def make(tmp: Path) -> Path:
        (tmp / name).write_bytes(data)
        return tmp / name
    return make


def _truncated(fmt: str, name: str):
    data = _encoded(fmt, (160, 120))
    return _write(data[: len(data) // 2], name)


def _image(h: int, w: int, name: str):
    return lambda tmp: save(tmp / name, textured(h, w))


def _special(kind: str):
    def make(tmp: Path) -> Path:
        p = tmp / f"{kind}.png"
        if kind == "fifo":
            os.mkfifo(p)
        elif kind == "socket":
            s = socket.socket(socket.AF_UNIX)
            s.bind(str(p))
            s.close()
        else:  # private twins of /dev/zero and /dev/null (major 1, minors 5 and 3)
            try:
                os.mknod(p, 0o600 | stat.S_IFCHR, os.makedev(1, {"zero": 5, "null": 3}[kind]))
            except PermissionError:
                pytest.skip("creating a device twin needs root (CAP_MKNOD)")
        return p
    return make


def _symlink(target: str, name: str):
    def make(tmp: Path) -> Path:
        (tmp / name).symlink_to(tmp / target)
        return tmp / name
    return make


def _loop(tmp: Path) -> Path:
    (tmp / "loop-a.png").symlink_to(tmp / "loop-b.png")
    (tmp / "loop-b.png").symlink_to(tmp / "loop-a.png")
    return tmp / "loop-a.png"


def _unreadable(tmp: Path) -> Path:
    if os.geteuid() == 0:
        pytest.skip("root reads through permission bits (the symlink loop stands in for an unreadable file)")
    p = save(tmp / "locked.png", textured(20, 20))
    p.chmod(0)
    return p


def _sparse(tmp: Path) -> Path:
    p = tmp / "huge.png"
    with open(p, "wb") as f:
        f.write(_png_header(100, 100)[:33])
        f.truncate(300 << 20)  # 300 MB on paper, nothing on disk
    return p


def _dir(tmp: Path) -> Path:
    (tmp / "folder.png").mkdir()
    return tmp / "folder.png"


NOT_FORMAT = "not a recognised image format"
NOT_REGULAR = "not a regular file"
# (kind, factory, what the one error line must say)
IMAGE_CORPUS = [
    ("missing", lambda tmp: tmp / "nope.png", "file not found"),
    ("folder", _dir, "is a folder"),
    ("zero_bytes", _write(b"", "empty.jpg"), "file is empty"),
    ("text_as_jpg", _write(b"this is not an image\n", "notes.jpg"), NOT_FORMAT),
    ("random_bytes", _write(np.random.default_rng(1).bytes(4096), "noise.png"), NOT_FORMAT),
    ("html", _write(b"<!doctype html><html><body>hi</body></html>", "page.png"), NOT_FORMAT),
    ("svg", _write(b'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>', "vec.svg"), NOT_FORMAT),
    ("pdf", _write(b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n", "doc.pdf"), NOT_FORMAT),
    ("eps_ghostscript", _write(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\nshowpage\n", "x.eps"),
     NOT_FORMAT),
    ("psd", _write(b"8BPS\x00\x01" + b"\x00" * 6 + b"\x00\x03\x00\x00\x00\x40\x00\x00\x00\x40\x00\x08\x00\x03"
                   + b"\x00" * 64, "x.psd"), NOT_FORMAT),
    ("gif_undocumented", _write(_encoded("GIF"), "anim.gif"), NOT_FORMAT),
    ("ico_undocumented", _write(_encoded("ICO", (32, 32)), "fav.ico"), NOT_FORMAT),
    ("tga_undocumented", _write(_encoded("TGA"), "x.tga"), NOT_FORMAT),
    ("pcx_undocumented", _write(_encoded("PCX"), "x.pcx"), NOT_FORMAT),
    ("png_signature_only", _write(b"\x89PNG\r\n\x1a\n", "sig.png"), NOT_FORMAT),
    ("jpeg_soi_only", _write(b"\xff\xd8", "soi.jpg"), NOT_FORMAT),
    ("truncated_jpeg", _truncated("JPEG", "cut.jpg"), "truncated or corrupt"),
    ("truncated_png", _truncated("PNG", "cut.png"), "truncated or corrupt"),
    ("truncated_webp", _truncated("WEBP", "cut.webp"), "cannot"),
    ("truncated_bmp", _truncated("BMP", "cut.bmp"), "truncated or corrupt"),
    ("truncated_tiff", _truncated("TIFF", "cut.tif"), "truncated or corrupt"),
    ("png_bad_crc", _write(_encoded("PNG")[:30] + b"\x00\x00\x00\x00" + _encoded("PNG")[34:], "crc.png"),
     NOT_FORMAT),
    ("png_bomb_header", _write(_png_header(8000, 6000), "bomb.png"), "over the 30 MP cap"),
    ("png_huge_dims", _write(_png_header(2**31 - 1, 2**31 - 1), "giant.png"), "over the 30 MP cap"),
    ("bmp_bomb_header", _write(_bmp_header(9000, 9000), "bomb.bmp"), "over the 30 MP cap"),
    ("png_zero_dims", _write(_png_header(0, 0), "zero.png"), NOT_FORMAT),
    ("one_pixel", _image(1, 1, "dot.png"), "both sides must be at least 8 px"),
    ("seven_px", _image(7, 7, "seven.png"), "both sides must be at least 8 px"),
    ("thin_strip", _image(2, 400, "strip.png"), "both sides must be at least 8 px"),
    ("fifo_hangs", _special("fifo"), NOT_REGULAR),
    ("dev_zero_twin", _special("zero"), NOT_REGULAR),
    ("dev_null_twin", _special("null"), NOT_REGULAR),
    ("unix_socket", _special("socket"), NOT_REGULAR),
    ("symlink_to_fifo", lambda tmp: _symlink("fifo.png", "to-fifo.png")(_special("fifo")(tmp).parent),
     NOT_REGULAR),
    ("symlink_loop", _loop, "cannot read"),
    ("unreadable_mode_000", _unreadable, "cannot read (Permission denied)"),
    ("dangling_symlink", _symlink("gone.png", "dangling.png"), "file not found"),
    ("sparse_300mb", _sparse, "over the 268.435 MB limit"),
    ("name_too_long", lambda tmp: tmp / ("n" * 300 + ".png"), "File name too long"),
    ("newline_in_name", lambda tmp: tmp / "two\nlines.png", "two\\nlines.png: file not found"),
    ("path_through_file", lambda tmp: _image(20, 20, "plain.png")(tmp) / "inner.png", "cannot read"),
]


def assert_one_line_error(res, *needles: str, code: int = 2) -> str:
    assert res.exit_code == code, (res.exit_code, res.output)
    assert "Traceback" not in res.output and res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture()
def good(tmp_path) -> Path:
    return save(tmp_path / "good.png", textured(120, 160))


@pytest.mark.parametrize("kind,make,problem", IMAGE_CORPUS, ids=[k for k, _, _ in IMAGE_CORPUS])
def test_hostile_image(tmp_path, good, kind, make, problem):
    bad = make(tmp_path)
    out, json_out = tmp_path / "out", tmp_path / "r.json"
    before = sorted(p.name for p in tmp_path.iterdir())
    res = CliRunner().invoke(cli, ["run", str(bad), str(good), "--out", str(out), "--json", str(json_out)])
    assert_one_line_error(res, problem)
    assert not out.exists() and not json_out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == before


# ---- output targets: checked before any work; an input is never overwritten --------------------------------
def _pair(tmp: Path) -> tuple[Path, Path]:
    left = save(tmp / "left.png", textured(120, 160))
    right = textured(120, 160)
    right[30:60, 40:90] = 0
    return left, save(tmp / "right.png", right)


def _json_is_folder(tmp, left, right):
    (tmp / "taken").mkdir()
    return [str(left), str(right), "--json", str(tmp / "taken"), "--out", str(tmp / "out")], "is a folder"


def _json_is_left(tmp, left, right):
    return [str(left), str(right), "--json", str(left)], "would overwrite the input"


def _json_is_right(tmp, left, right):
    return [str(left), str(right), "--json", str(right), "--out", str(tmp / "out")], "would overwrite the input"


def _out_holds_left(tmp, left, right):
    (tmp / "sub").mkdir()
    (tmp / "other").mkdir()
    a, b = tmp / "sub" / "x.png", tmp / "other" / "x.png"
    left.rename(a)
    right.rename(b)
    return [str(a), str(b), "--out", str(tmp / "sub")], "would overwrite the input"


def _out_holds_input_as_json(tmp, left, right):
    (tmp / "o").mkdir()
    fake = tmp / "o" / "x.json"
    fake.write_bytes(left.read_bytes())
    return [str(fake), str(right), "--id", "x", "--out", str(tmp / "o")], "would overwrite the input"


def _imgdiff_region_picture_is_input(tmp, left, right):
    a = tmp / "p-1.png"
    left.rename(a)
    return [str(a), str(right), "--id", "p", "--format", "img-diff", "--out", str(tmp)], "would overwrite"


def _json_name_too_long(tmp, left, right):
    return [str(left), str(right), "--out", str(tmp / "out"), "--json", str(tmp / ("j" * 300 + ".json"))], \
        "file name too long"


def _out_name_too_long(tmp, left, right):
    return [str(left), str(right), "--out", str(tmp / ("o" * 300)) + "/sub"], "ile name too long"


def _out_is_file(tmp, left, right):
    (tmp / "out").write_text("x")
    return [str(left), str(right), "--out", str(tmp / "out")], "not a folder"


def _json_under_file(tmp, left, right):
    (tmp / "f").write_text("x")
    return [str(left), str(right), "--json", str(tmp / "f" / "r.json")], "cannot be created"


OUTPUT_CORPUS = [_json_is_folder, _json_is_left, _json_is_right, _out_holds_left, _out_holds_input_as_json,
                 _imgdiff_region_picture_is_input, _json_name_too_long, _out_name_too_long, _out_is_file,
                 _json_under_file]


@pytest.mark.parametrize("case", OUTPUT_CORPUS, ids=[c.__name__[1:] for c in OUTPUT_CORPUS])
def test_hostile_output_target(tmp_path, case):
    left, right = _pair(tmp_path)
    args, problem = case(tmp_path, left, right)
    snapshot = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    folders = {p for p in tmp_path.rglob("*") if p.is_dir()}
    res = CliRunner().invoke(cli, ["run", *args])
    assert_one_line_error(res, problem)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == snapshot  # inputs intact
    assert {p for p in tmp_path.rglob("*") if p.is_dir()} == folders  # no empty out/ left behind


def test_json_to_a_device_writes_through_it_and_keeps_the_device(tmp_path):
    """`--json /dev/null` as root used to replace the device with a regular file (rename over it)."""
    left, right = _pair(tmp_path)
    null = _special("null")(tmp_path)
    res = CliRunner().invoke(cli, ["run", str(left), str(right), "--json", str(null)])
    assert res.exit_code == 0, res.output
    assert stat.S_ISCHR(os.stat(null).st_mode)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


# ---- numeric options: every range checked in the library config, one line naming the parameter --------------
NUMERIC_CORPUS = [  # the parameter is named as the library's (blur_sigma) or, by the CLI, as its flag (--blur)
    (["--blur", "nan"], "must be a finite number"),
    (["--blur", "inf"], "must be a finite number"),
    (["--blur", "1e9"], "must be in [0, 100]"),
    (["--blur", "-1"], "must be in [0, 100]"),
    (["--merge-gap", "nan"], "must be a finite number"),
    (["--merge-gap", "1"], "must be in [0, 1)"),
    (["--merge-gap", "-0.5"], "must be in [0, 1)"),
    (["--max-regions", "0"], "must be in [1, 10000]"),
    (["--max-regions", "1000000000"], "must be in [1, 10000]"),
    (["--min-area", "0"], "must be in [1, inf)"),
    (["--max-pixels", "0"], "max"),
    (["--threshold", "nan"], "threshold"),
    (["--threshold", "inf"], "threshold"),
    (["--threshold", "-3"], "threshold"),
    (["--threshold", "percentile:100"], "percentile"),
    (["--clip-threshold", "nan"], "must be a finite number"),
    (["--clip-threshold", "2"], "must be in [-1, 1]"),
    (["--max-proposals", "0"], "must be in [1, 10000]"),
    (["--pair-gate", "nan:1"], "pair"),
    (["--threads", "0"], "threads"),
    (["--threads", "1000000"], "must be in [1, 1024]"),
]


@pytest.mark.parametrize("option,problem", NUMERIC_CORPUS, ids=[" ".join(o) for o, _ in NUMERIC_CORPUS])
def test_hostile_numeric_option(tmp_path, option, problem):
    left, right = _pair(tmp_path)
    res = CliRunner().invoke(cli, ["run", str(left), str(right), *option])
    assert_one_line_error(res, problem)


# other commands' numbers: refused before any work (no environment build, no model load, no endless loop)
OTHER_NUMERIC_CORPUS = [
    (["synth", "{left}", "--out", "{tmp}/s", "--seed", "-1"], "must be in [0, inf)"),
    (["synth", "{left}", "--out", "{tmp}/s", "--count", "0"], "count"),
    (["export", "--tiny", "--random-init", "--imgsz", "0", "--out", "{tmp}/b"], "must be in [32, 4096]"),
    (["export", "--tiny", "--random-init", "--imgsz", "33", "--out", "{tmp}/b"], "multiple of 32"),
    (["triton-repo", "--no-weights", "--instances", "1000000000", "--out", "{tmp}/r"], "must be in [1, 64]"),
    (["serve", "--repo", "{tmp}", "--http-port", "0", "--env-dir", "{tmp}/env"], "must be in [1, 65535]"),
    (["serve", "--repo", "{tmp}", "--grpc-port", "70000", "--env-dir", "{tmp}/env"], "must be in [1, 65535]"),
    (["serve", "--repo", "{tmp}", "--timeout", "nan", "--env-dir", "{tmp}/env"], "must be a finite number"),
    (["serve", "--repo", "{tmp}/no-such-repo", "--env-dir", "{tmp}/env"], "does not exist"),
]


@pytest.mark.parametrize("args,problem", OTHER_NUMERIC_CORPUS, ids=[" ".join(a[:1] + a[-4:-2]) for a, _ in
                                                                    OTHER_NUMERIC_CORPUS])
def test_hostile_option_of_other_commands(tmp_path, args, problem):
    left, _ = _pair(tmp_path)
    before = sorted(tmp_path.iterdir())
    res = CliRunner().invoke(cli, [a.format(left=left, tmp=tmp_path) for a in args])
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    lines = res.stderr.strip().splitlines()
    assert lines[-1].startswith("Error: ") and problem in lines[-1], res.stderr
    assert sorted(tmp_path.iterdir()) == before  # nothing made: no environment, bundle or repository


CORPUS_KINDS = len(IMAGE_CORPUS) + len(OUTPUT_CORPUS) + 1 + len(NUMERIC_CORPUS) + len(OTHER_NUMERIC_CORPUS)
