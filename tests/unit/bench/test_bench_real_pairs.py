"""The benchmark's real-pair cells (detect-real, pipeline-real) without running them: the pair sets and their
skip reasons, the cells planned, the kept-region comparison and the summary row."""

from __future__ import annotations

import pytest

from imgdiff_rt.bench import real_pairs as R
from imgdiff_rt.bench.real_summary import render_real, same_regions, summarise
from imgdiff_rt.errors import UsageError

from helpers import LEFT, RIGHT


@pytest.mark.parametrize("spec, expected", [
    (("example", "synth:2"), [("example", 1), ("synth", 2)]),
    (("levir-cd:3", "clevr-semantic"), [("levir-cd", 3), ("clevr-semantic", 1)]),
])
def test_sets_parse(spec, expected):
    assert R.parse_sets(spec) == expected


@pytest.mark.parametrize("spec, words", [
    (("mnist:2",), "unknown real pair set 'mnist'"),
    (("synth:two",), "COUNT must be an integer"),
    (("synth:0",), "at least 1"),
])
def test_bad_sets_are_usage_errors_naming_the_parameter(spec, words):
    with pytest.raises(UsageError, match=words) as e:
        R.parse_sets(spec)
    assert e.value.parameter == "real_sets"


def test_real_cells_are_planned_once_each_at_the_segmenters_own_size():
    from imgdiff_rt.bench.suite import BenchConfig, plan_cells

    cfg = BenchConfig(models="unused", stages=("segment", "detect-real", "pipeline-real"), imgsz=(320, 640),
                      pair_imgsz=(640, 1024), batches=(1, 2)).check()
    assert [c["key"] for c in plan_cells(cfg)] == ["segment@320/b1", "segment@320/b2", "segment@640/b1",
                                                   "segment@640/b2", "detect-real", "pipeline-real"]
    assert not {"detect-real", "pipeline-real"} & set(BenchConfig(models="unused").stages)  # opt-in: minutes each
    with pytest.raises(UsageError, match="unknown real pair set"):
        BenchConfig(models="unused", real_sets=("kitti",)).check()


def test_an_absent_data_set_is_skipped_with_the_reason(tmp_path):
    pairs, skipped = R.gather_pairs([("example", 1), ("levir-cd", 2), ("clevr-semantic", 1)], tmp_path / "nowhere",
                                    (LEFT, RIGHT), tmp_path)
    assert [p.set for p in pairs] == ["example"]
    assert set(skipped) == {"levir-cd", "clevr-semantic"}
    assert str(tmp_path / "nowhere" / "levir-cd") in skipped["levir-cd"] and "not found" in skipped["levir-cd"]


def test_shared_sets_give_the_first_pairs_in_name_order(shared_data, tmp_path):
    pairs, skipped = R.gather_pairs([("levir-cd", 2), ("clevr-semantic", 1)], shared_data, (LEFT, RIGHT),
                                    tmp_path)
    assert not skipped and [p.set for p in pairs] == ["levir-cd", "levir-cd", "clevr-semantic"]
    assert pairs[0].name < pairs[1].name and all(p.left.is_file() and p.right.is_file() for p in pairs)
    assert pairs[2].right.parent.name == "semantic"


def _call(*regions_per_pair, segment=100.0):
    return [{"pair": f"p{i}", "segment": segment, "clip": 10.0, "regions": regions}
            for i, regions in enumerate(regions_per_pair)]


def test_kept_regions_are_compared_pair_by_pair():
    ref = _call([[0, 0, 5, 5], [7, 7, 9, 9]], [])
    same = {"pairs_same": 2, "pairs": 2, "differ": [], "pairs_within_px": 2, "within_px": 2}
    assert same_regions(ref, _call([[0, 0, 5, 5], [7, 7, 9, 9]], [])) == same
    dropped = same_regions(ref, _call([[0, 0, 5, 5]], []))  # the product lost a region on the first pair
    assert dropped == {"pairs_same": 1, "pairs": 2, "differ": ["p0"], "pairs_within_px": 1, "within_px": 2}
    moved = same_regions(ref, _call([[1, 0, 5, 5], [7, 7, 9, 9]], []))  # an edge a pixel off: not the same
    assert (moved["pairs_same"], moved["pairs_within_px"]) == (1, 2)
    assert same_regions(ref, _call([[7, 7, 9, 9], [0, 0, 5, 5]], []))["pairs_same"] == 1  # order is the ranking


def test_summary_pairs_stage_times_by_round_and_renders_a_row():
    row = {"key": "detect-real", "stage": "detect-real", "pairs": ["a/p0"], "skipped_sets": {"levir-cd": "absent"},
           "segmenter": {"weights": "registered-onnx", "precision": "int8"},
           "backends": {"torch": {"median_ms": 300.0}, "onnx": {"median_ms": 150.0, "speedup_vs_torch": {
               "median": 2.0, "p10": 1.9, "p90": 2.1}, "accuracy": {"clip_image": "ok"}}}}
    logs = {"torch": [_call([[1, 1, 4, 4]], segment=200.0), _call([[1, 1, 4, 4]], segment=220.0)],
            "onnx": [_call([], segment=100.0), _call([], segment=110.0)]}
    summarise(row, logs)
    onnx = row["backends"]["onnx"]
    assert onnx["stage_ms_rounds"]["segment"] == [100.0, 110.0] and onnx["stage_ms_median"]["segment"] == 105.0
    assert onnx["stage_speedup_vs_torch"]["segment"]["median"] == pytest.approx(2.0)
    assert onnx["same_regions"]["pairs_same"] == 0  # the product dropped the reference's region
    text = "\n".join(render_real({"cells": [row]}))
    assert "| detect-real | onnx | 150 | **2.00x** [1.90-2.10] | 105 (x2.00) |" in text
    assert "| 0/1 | clip_image: ok |" in text and "levir-cd skipped: absent" in text
    assert "at most onnx x2.9" in text  # the shared segment stage bounds the end-to-end ratio: 300 / 105
