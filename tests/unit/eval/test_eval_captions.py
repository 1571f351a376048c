"""`imgdiff-rt eval-captions` up to the Java scorers: both Spot-the-Diff reference formats load alike,
predictions and COCO results load, bad inputs are one line and exit 2, a missing java is said, SPICE is found
from its files, and the help has an example."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from imgdiff_rt.caption_metrics import load_predictions, load_references, normalise_id, spice_status
from imgdiff_rt.cli.main import cli

from helpers import NO_SCORER, caption_files, result_line, score_captions, write_text

needs_scorer = pytest.mark.skipif(NO_SCORER is not None, reason=str(NO_SCORER))


# ---------------------------------------------------------------- loading (no Java)


def test_both_reference_formats_agree_on_spot_the_diff(spot):
    # harsh19 lists one entry per annotator (an id may repeat) with one sentence per difference; the COCO
    # file has one annotation per sentence. Both must give every id all of its sentences.
    coco, listed = load_references(spot["test"]), load_references(spot["harsh19"])
    assert coco == listed
    assert len(coco) == 1270 and sum(len(r) for r in coco.values()) == 2107
    assert coco["138"][:2] == ["there is something red at the top of the right image that is not in the left "
                               "image", "it s in the top left corner type area"]


@pytest.mark.parametrize("lines, field, expected, failed", [
    ([result_line("a.png", "the car is gone", "a red car")], "description", {"a": "the car is gone"}, ()),
    ([result_line("a", "the car is gone", "a red car")], "region", {"a": "a red car"}, ()),
    ([result_line("a", "summary")], "region", {"a": ""}, ()),  # no regions: an empty caption
    ([result_line("a", None)], "description", {"a": ""}, ()),
    ([json.dumps({"id": "a", "left": "l.png", "error": "unreadable"})], "description", {"a": ""}, ("a",)),
    ([json.dumps({"id": 7, "caption": "x"}), "", json.dumps({"id": "8", "caption": None})], "description",
     {"7": "x", "8": ""}, ()),
], ids=["result-description", "result-region", "no-regions", "null-description", "failed-pair", "id-caption"])
def test_load_predictions(tmp_path, lines, field, expected, failed):
    preds = load_predictions(write_text(tmp_path / "p.jsonl", "\n".join(lines) + "\n"), field)
    assert preds.captions == expected and preds.failed == failed


def test_load_coco_results_list_and_id_normalisation(tmp_path):
    p = write_text(tmp_path / "p.json", json.dumps([{"image_id": "12.PNG", "caption": "x"}]))
    assert load_predictions(p).captions == {"12": "x"}
    assert normalise_id(" 3.jpeg ") == "3" and normalise_id(3) == "3" and normalise_id("a.b") == "a.b"


# ---------------------------------------------------------------- CLI


@pytest.fixture
def files(tmp_path) -> dict[str, Path]:
    """The scorable pair of files, and one bad file per error the command names."""
    return {
        **caption_files(tmp_path),
        "dup": write_text(tmp_path / "dup.jsonl", f"{result_line('1', 'a')}\n{result_line('1.png', 'b')}\n"),
        "not_json": write_text(tmp_path / "bad.jsonl", "{not json\n"),
        "no_id": write_text(tmp_path / "noid.jsonl", json.dumps({"caption": "x"}) + "\n"),
        "other": write_text(tmp_path / "other.jsonl", json.dumps({"id": "1", "text": "x"}) + "\n"),
        "bad_caption": write_text(tmp_path / "badcap.jsonl", json.dumps({"id": "1", "caption": 3}) + "\n"),
        "empty": write_text(tmp_path / "empty.jsonl", "\n"),
        "refs_dict": write_text(tmp_path / "refs_dict.json", json.dumps({"images": []})),
        "refs_ann": write_text(tmp_path / "refs_ann.json", json.dumps({"annotations": [{"image_id": 1}]})),
        "refs_jsonl": write_text(tmp_path / "refs.jsonl", '{"img_id": "1"}\n{"img_id": "2"}\n'),
        "disjoint": write_text(tmp_path / "disjoint.jsonl", json.dumps({"id": "77", "caption": "x"}) + "\n"),
        "a_file": write_text(tmp_path / "a_file", "x"),
    }


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
    res = score_captions(files)
    assert res.exit_code == 1 and "java is not on PATH" in res.output


@needs_scorer
def test_spice_is_detected_from_files_without_downloading(files):
    ok, reason = spice_status()
    if ok:
        pytest.skip("SPICE's CoreNLP models are installed here")
    assert "stanford-corenlp-3.6.0" in reason
    res = score_captions(files, "--spice")
    assert res.exit_code == 2 and "CoreNLP models are not installed" in res.output


@pytest.mark.parametrize("args", [["eval-captions", "--help"], ["--help"]])
def test_help_has_an_example(args):
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0 and ("eval-captions" in res.output)
    if args[0] == "eval-captions":
        assert "Example:" in res.output and "--refs" in res.output
