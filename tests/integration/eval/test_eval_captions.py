"""`imgdiff-rt eval-captions` and imgdiff_rt.caption_metrics: loading, the metrics on real Spot-the-Diff references
(self-vs-self, human leave-one-out, shuffled, empty predictions), and the CLI's errors and output.

The PTB tokenizer and METEOR are Java processes (METEOR alone takes ~10 s to start), so every metric check
reads from one module-scoped ``score_many`` call, and the CLI is run end to end once.
"""

from __future__ import annotations

import json
import shutil
from importlib.util import find_spec
from pathlib import Path

import pytest
from click.testing import CliRunner

from imgdiff_rt.caption_metrics import load_predictions, load_references, normalise_id, score_many, spice_status
from imgdiff_rt.cli.main import cli

NO_SCORER = ("pycocoevalcap is not installed (it is in the dev extra)" if find_spec("pycocoevalcap") is None
             else None)
NO_JAVA = NO_SCORER or ("java is not on PATH: the PTB tokenizer and METEOR need it (CI has it)"
                        if shutil.which("java") is None else None)
needs_scorer = pytest.mark.skipif(NO_SCORER is not None, reason=str(NO_SCORER))
needs_java = pytest.mark.skipif(NO_JAVA is not None, reason=str(NO_JAVA))

# Measured on Spot-the-Diff test (spot_test_change_captions_reformat.json): for each of the 531 images with
# two or more non-empty reference sentences, its first sentence scored against the remaining ones.
HUMAN_LOO_SPOT_TEST = {"BLEU-1": 0.4071, "BLEU-2": 0.2702, "BLEU-3": 0.1834, "BLEU-4": 0.1265,
                       "METEOR": 0.1630, "ROUGE-L": 0.3258, "CIDEr-D": 0.6887}
HUMAN_LOO_IMAGES = 531
BLANKS = ["", "   ", "\n\t", "..."]  # the last one is empty once punctuation is removed


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


# ---------------------------------------------------------------- metrics on Spot-the-Diff (one Java batch)


@pytest.fixture(scope="module")
def reports(spot):
    if NO_JAVA:
        pytest.skip(NO_JAVA)
    refs = load_references(spot["test"])
    usable = {i: [s for s in r if s.strip()] for i, r in refs.items()}
    multi = sorted(i for i, r in usable.items() if len(r) >= 2)
    loo_pred = {i: usable[i][0] for i in multi}
    loo_refs = {i: usable[i][1:] for i in multi}
    half = len(multi) // 2  # a derangement: every image gets the held-out sentence of another image
    shuffled = {multi[k]: loo_pred[multi[(k + half) % len(multi)]] for k in range(len(multi))}
    blanked = {**loo_pred, **dict(zip(multi[:len(BLANKS)], BLANKS, strict=True))}
    singles = {f"{i}#{k}": [s] for i, r in usable.items() for k, s in enumerate(r)}
    singles = dict(list(singles.items())[:400])  # METEOR checks one sentence at a time: keep the batch small
    odd = {"u": "A red\u2028car.", "f": "x\x0cy", "n": "one\r\ntwo"}  # Java splits lines at these
    jobs = {
        "self_first": ({i: r[0] for i, r in refs.items()}, refs),
        "self_single": ({k: r[0] for k, r in singles.items()}, singles),
        "loo": (loo_pred, loo_refs),
        "shuffled": (shuffled, loo_refs),
        "blanked": (blanked, loo_refs),
        "all_blank": ({"1": "", "2": " ", "3": " . "}, {"1": ["a car"], "2": ["a dog"], "3": ["a man"]}),
        "odd_chars": (odd, {"u": ["a red car"], "f": ["x y"], "n": ["one two"]}),
    }
    return score_many(jobs, spice=False), multi


@needs_java
def test_self_vs_self_gives_the_maximal_values(reports):
    r, _ = reports
    first = r["self_first"]  # each image's first sentence against all of its sentences
    for m in ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L"):
        assert first.metrics[m] == pytest.approx(1.0, abs=1e-6), m
    assert first.metrics["CIDEr-D"] == pytest.approx(7.642, abs=0.01)  # mean over several differing refs
    # 7 images whose only reference is empty cannot be scored, and say so
    assert len(first.scored_ids) == 1263 and len(first.missing_in_refs) == 7
    assert first.empty_references_dropped == 7
    single = r["self_single"]  # each sentence against itself only: CIDEr-D reaches 10 (4+ tokens)
    for m in ("BLEU-1", "BLEU-4", "METEOR", "ROUGE-L"):
        assert single.metrics[m] == pytest.approx(1.0, abs=1e-6), m
    assert max(v["CIDEr-D"] for v in single.per_item.values()) == pytest.approx(10.0, abs=1e-6)
    assert single.metrics["CIDEr-D"] > 9.7  # below 10 only for sentences under four tokens


@needs_java
def test_human_leave_one_out_on_spot_the_diff_test(reports):
    r, multi = reports
    loo = r["loo"]
    assert len(loo.scored_ids) == HUMAN_LOO_IMAGES == len(multi)
    for m, measured in HUMAN_LOO_SPOT_TEST.items():
        assert measured - 0.02 <= loo.metrics[m] <= measured + 0.02, (m, loo.metrics[m])


@needs_java
def test_shuffled_captions_score_far_lower(reports):
    r, _ = reports
    loo, shuffled = r["loo"].metrics, r["shuffled"].metrics
    for m in loo:
        assert shuffled[m] < 0.8 * loo[m], m
    assert shuffled["CIDEr-D"] < 0.2 * loo["CIDEr-D"]  # measured 0.093 vs 0.689
    assert shuffled["BLEU-4"] < 0.2 * loo["BLEU-4"]  # measured 0.015 vs 0.127


@needs_java
def test_empty_predictions_score_zero_and_are_counted(reports):
    r, multi = reports
    blanked = r["blanked"]
    assert blanked.empty_predictions == sorted(multi[:len(BLANKS)], key=blanked.scored_ids.index)
    for i in blanked.empty_predictions:
        assert set(blanked.per_item[i].values()) == {0.0}
    for m, value in r["loo"].metrics.items():
        assert blanked.metrics[m] <= value, m
    all_blank = r["all_blank"]
    assert all_blank.empty_predictions == ["1", "2", "3"]
    assert all(v == pytest.approx(0.0, abs=1e-6) for v in all_blank.metrics.values())


@needs_java
def test_line_breaking_characters_do_not_shift_captions(reports):
    odd = reports[0]["odd_chars"]
    assert all(item["ROUGE-L"] == 1.0 for item in odd.per_item.values())


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


@needs_java
def test_cli_scores_reports_left_out_ids_and_writes_json(files, tmp_path):
    out = tmp_path / "out"
    res = _score(files, "--out", str(out))
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "caption_metrics.json").read_text())
    assert list(doc["metrics"]) == ["BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr-D"]
    assert doc["counts"] == {"scored": 3, "missing_in_refs": 1, "missing_in_pred": 1, "empty_predictions": 2,
                             "empty_references_dropped": 0, "failed_predictions": 1}
    assert doc["missing_in_refs"] == ["9"] and doc["missing_in_pred"] == ["4"]
    assert doc["empty_predictions"] == ["2", "3"] and doc["failed_predictions"] == ["3"]
    assert "computed over the 3 ids present in both files" in doc["scope"]
    assert doc["per_item"]["1"]["ROUGE-L"] == 1.0 and doc["per_item"]["2"]["CIDEr-D"] == 0.0
    assert doc["spice"]["status"] in ("skipped", "computed")
    for text in ("over 3 ids present in both files", "CIDEr-D", "without references (not scored): 1 (e.g. 9)",
                 "without a prediction (not scored): 1 (e.g. 4)", "Empty predictions (scored 0): 2",
                 "Failed pairs", "caption_metrics.json"):
        assert text in res.output, text
