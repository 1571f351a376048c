"""`imgdiff-rt eval-captions` up to the Java scorers: both Spot-the-Diff reference formats load alike,
predictions and COCO results load, bad inputs are one line and exit 2, a missing java is said, SPICE is found
from its files, and the help has an example."""

from __future__ import annotations

import json
from importlib.util import find_spec
from pathlib import Path

import pytest
from click.testing import CliRunner

from imgdiff_rt.caption_metrics import load_predictions, load_references, normalise_id, spice_status
from imgdiff_rt.cli.main import cli

NO_SCORER = ("pycocoevalcap is not installed (it is in the dev extra)" if find_spec("pycocoevalcap") is None
             else None)
needs_scorer = pytest.mark.skipif(NO_SCORER is not None, reason=str(NO_SCORER))


def _result_line(pair_id: str, description: str | None, region: str | None = None, **extra) -> str:
    regions = [] if region is None else [{"description": region, "caption_left": None, "caption_right": None}]
    return json.dumps({"schema": "imgdiff-rt/result/v1", "id": pair_id, "description": description,
                       "regions": regions, **extra})


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------- loading (no Java)


@pytest.fixture(scope="module")
def spot(shared_data: Path) -> dict[str, Path]:
    d = shared_data / "spot-the-diff-captions"
    return {"harsh19": d / "harsh19_test.json", "test": d / "spot_test_change_captions_reformat.json"}


def test_both_reference_formats_agree_on_spot_the_diff(spot):
    # harsh19 lists one entry per annotator (an id may repeat) with one sentence per difference; the COCO
    # file has one annotation per sentence. Both must give every id all of its sentences.
    coco, listed = load_references(spot["test"]), load_references(spot["harsh19"])
    assert coco == listed
    assert len(coco) == 1270 and sum(len(r) for r in coco.values()) == 2107
    assert coco["138"][:2] == ["there is something red at the top of the right image that is not in the left "
                               "image", "it s in the top left corner type area"]


@pytest.mark.parametrize("lines, field, expected, failed", [
    ([_result_line("a.png", "the car is gone", "a red car")], "description", {"a": "the car is gone"}, ()),
    ([_result_line("a", "the car is gone", "a red car")], "region", {"a": "a red car"}, ()),
    ([_result_line("a", "summary")], "region", {"a": ""}, ()),  # no regions: an empty caption
    ([_result_line("a", None)], "description", {"a": ""}, ()),
    ([json.dumps({"id": "a", "left": "l.png", "error": "unreadable"})], "description", {"a": ""}, ("a",)),
    ([json.dumps({"id": 7, "caption": "x"}), "", json.dumps({"id": "8", "caption": None})], "description",
     {"7": "x", "8": ""}, ()),
], ids=["result-description", "result-region", "no-regions", "null-description", "failed-pair", "id-caption"])
def test_load_predictions(tmp_path, lines, field, expected, failed):
    preds = load_predictions(_write(tmp_path / "p.jsonl", "\n".join(lines) + "\n"), field)
    assert preds.captions == expected and preds.failed == failed


def test_load_coco_results_list_and_id_normalisation(tmp_path):
    p = _write(tmp_path / "p.json", json.dumps([{"image_id": "12.PNG", "caption": "x"}]))
    assert load_predictions(p).captions == {"12": "x"}
    assert normalise_id(" 3.jpeg ") == "3" and normalise_id(3) == "3" and normalise_id("a.b") == "a.b"


# ---------------------------------------------------------------- CLI


@pytest.fixture
def files(tmp_path) -> dict[str, Path]:
    refs = {"images": [{"id": f"{i}.png"} for i in range(1, 5)],
            "annotations": [{"image_id": "1.png", "caption": "the red car is gone"},
                            {"image_id": "1.png", "caption": "a person walked away"},
                            {"image_id": "2.png", "caption": "a white truck has appeared"},
                            {"image_id": "3.png", "caption": "there is no difference"},
                            {"image_id": "4.png", "caption": "the bicycle moved to the left"}]}
    return {
        "refs": _write(tmp_path / "refs.json", json.dumps(refs)),
        "pred": _write(tmp_path / "results.jsonl", "\n".join([
            _result_line("1", "The red car is gone.", "a red car"),
            _result_line("2", "   "),
            json.dumps({"schema": "imgdiff-rt/result/v1", "id": "3", "error": "cannot read 3.png"}),
            _result_line("9", "a dog"),
        ]) + "\n"),
        "dup": _write(tmp_path / "dup.jsonl", f"{_result_line('1', 'a')}\n{_result_line('1.png', 'b')}\n"),
        "not_json": _write(tmp_path / "bad.jsonl", "{not json\n"),
        "no_id": _write(tmp_path / "noid.jsonl", json.dumps({"caption": "x"}) + "\n"),
        "other": _write(tmp_path / "other.jsonl", json.dumps({"id": "1", "text": "x"}) + "\n"),
        "bad_caption": _write(tmp_path / "badcap.jsonl", json.dumps({"id": "1", "caption": 3}) + "\n"),
        "empty": _write(tmp_path / "empty.jsonl", "\n"),
        "refs_dict": _write(tmp_path / "refs_dict.json", json.dumps({"images": []})),
        "refs_ann": _write(tmp_path / "refs_ann.json", json.dumps({"annotations": [{"image_id": 1}]})),
        "refs_jsonl": _write(tmp_path / "refs.jsonl", '{"img_id": "1"}\n{"img_id": "2"}\n'),
        "disjoint": _write(tmp_path / "disjoint.jsonl", json.dumps({"id": "77", "caption": "x"}) + "\n"),
        "a_file": _write(tmp_path / "a_file", "x"),
    }


def _score(files: dict[str, Path], *extra: str):
    args = ["eval-captions", "--pred", str(files["pred"]), "--refs", str(files["refs"]), *extra]
    return CliRunner().invoke(cli, args)


@pytest.mark.parametrize("pred, refs, extra, message", [
    ("missing.jsonl", "refs", [], "prediction file not found"),
    ("not_json", "refs", [], "not valid JSON"),
    ("no_id", "refs", [], "has no 'id'"),
    ("other", "refs", [], "neither a result record"),
    ("bad_caption", "refs", [], "caption must be a string"),
    ("dup", "refs", [], "duplicate id '1'"),
    ("empty", "refs", [], "no prediction records"),
    ("pred", "missing.json", [], "reference file not found"),
    ("pred", "refs_dict", [], "not a COCO caption file"),
    ("pred", "refs_ann", [], "lacks 'image_id' or 'caption'"),
    ("pred", "refs_jsonl", [], "not valid JSON"),
    ("disjoint", "refs", [], "no id is present in both"),
    ("pred", "refs", ["--out", "a_file"], "not a folder"),
])
def test_bad_inputs_give_one_line_and_exit_2(files, tmp_path, pred, refs, extra, message):
    extra = [str(files[a]) if a in files else a for a in extra]
    args = ["eval-captions", "--pred", str(files.get(pred, tmp_path / pred)),
            "--refs", str(files.get(refs, tmp_path / refs)), *extra]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], res.output


@needs_scorer
def test_without_java_the_error_says_so(files, monkeypatch):
    monkeypatch.setenv("PATH", str(files["refs"].parent / "no-bin-here"))
    res = _score(files)
    assert res.exit_code == 1 and "java is not on PATH" in res.output


@needs_scorer
def test_spice_is_detected_from_files_without_downloading(files):
    ok, reason = spice_status()
    if ok:
        pytest.skip("SPICE's CoreNLP models are installed here")
    assert "stanford-corenlp-3.6.0" in reason
    res = _score(files, "--spice")
    assert res.exit_code == 2 and "CoreNLP models are not installed" in res.output


@pytest.mark.parametrize("args", [["eval-captions", "--help"], ["--help"]])
def test_help_has_an_example(args):
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0 and ("eval-captions" in res.output)
    if args[0] == "eval-captions":
        assert "Example:" in res.output and "--refs" in res.output
