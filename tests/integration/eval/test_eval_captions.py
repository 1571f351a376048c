"""`imgdiff-rt eval-captions` and imgdiff_rt.caption_metrics scoring real Spot-the-Diff references:
self-vs-self, human leave-one-out, shuffled and empty predictions, line breaks, and the CLI end to end.

The PTB tokenizer and METEOR are Java processes (METEOR alone takes ~10 s to start), so every metric check
reads from one module-scoped ``score_many`` call, and the CLI is run end to end once.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from imgdiff_rt.caption_metrics import load_references, score_many

from helpers import NO_SCORER, caption_files, score_captions

NO_JAVA = NO_SCORER or ("java is not on PATH: the PTB tokenizer and METEOR need it (CI has it)"
                        if shutil.which("java") is None else None)
needs_java = pytest.mark.skipif(NO_JAVA is not None, reason=str(NO_JAVA))

# Measured on Spot-the-Diff test (spot_test_change_captions_reformat.json): for each of the 531 images with
# two or more non-empty reference sentences, its first sentence scored against the remaining ones.
HUMAN_LOO_SPOT_TEST = {"BLEU-1": 0.4071, "BLEU-2": 0.2702, "BLEU-3": 0.1834, "BLEU-4": 0.1265,
                       "METEOR": 0.1630, "ROUGE-L": 0.3258, "CIDEr-D": 0.6887}
HUMAN_LOO_IMAGES = 531
BLANKS = ["", "   ", "\n\t", "..."]  # the last one is empty once punctuation is removed


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
    """The references and the predictions the end-to-end run scores."""
    return caption_files(tmp_path)


@needs_java
def test_cli_scores_reports_left_out_ids_and_writes_json(files, tmp_path):
    out = tmp_path / "out"
    res = score_captions(files, "--out", str(out))
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
