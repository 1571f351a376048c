"""Detection quality on real data, with floors no more than 0.05 under the values measured (written beside each
assertion). The defaults behind these numbers are explained in docs/pixel-detector.md."""

import json

import pytest
from click.testing import CliRunner

from imgdiff_rt.cli.main import cli
from imgdiff_rt.pipeline import Pipeline

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry")  # scikit-image colour photos


def _synth_set(root, level):
    for name in PHOTOS:
        res = CliRunner().invoke(cli, ["synth", f"skimage:{name}", "--out", str(root), "--level", str(level),
                                       "--spots", "3", "--count", "10"])
        assert res.exit_code == 0, res.output
    return root / "pairs.jsonl"


def _eval(pairs, out, *extra):
    res = CliRunner().invoke(cli, ["eval", "--pairs", str(pairs), "--out", str(out), *extra])
    assert res.exit_code == 0, res.output
    return json.loads((out / "eval_summary.json").read_text())


@pytest.fixture(scope="module")
def level1(tmp_path_factory):
    return _synth_set(tmp_path_factory.mktemp("l1"), 1)


@pytest.fixture(scope="module")
def level2(tmp_path_factory):
    return _synth_set(tmp_path_factory.mktemp("l2"), 2)


def test_level1_synthetic_pairs(level1, tmp_path):
    s = _eval(level1, tmp_path)
    assert s["pairs"] == 50
    # Measured: precision 1.000, recall 0.952 (138 of 145 truths), mean IoU 0.906.
    assert s["recall"] >= 0.90 and s["precision"] >= 0.95
    assert s["mean_iou"] >= 0.85


def test_level2_synthetic_pairs(level2, tmp_path):
    s = _eval(level2, tmp_path)
    assert s["pairs"] == 50
    # Measured: precision 1.000, recall 0.987 (148 of 150 truths), mean IoU 0.802.
    assert s["recall"] >= 0.937 and s["precision"] >= 0.95


def test_levir_cd_change_masks(shared_data, tmp_path):
    root = shared_data / "levir-cd"
    lines = [json.dumps({"id": m.stem, "left": f"A/{m.name}", "right": f"B/{m.name}", "truth": f"label/{m.name}"})
             for m in sorted((root / "label").glob("*.png"))]
    pairs = tmp_path / "levir.jsonl"
    pairs.write_text("\n".join(lines) + "\n")
    # The JSONL's paths are relative to itself: point them into ../shared.
    pairs.write_text(pairs.read_text().replace('"A/', f'"{root}/A/').replace('"B/', f'"{root}/B/')
                     .replace('"label/', f'"{root}/label/'))
    s = _eval(pairs, tmp_path / "out")
    assert s["pairs"] == 11
    # Measured: precision 0.909, recall 0.095. LEVIR masks label every building separately (105 items); the
    # pixel detector merges neighbouring new buildings into one box, and one box matches one item.
    assert s["precision"] >= 0.859 and s["recall"] >= 0.045


def _clevr_rates(root, align):
    pipeline = Pipeline(align=align)
    ids = sorted(p.stem for p in (root / "before").glob("*.png"))
    found = sum(bool(pipeline(root / "before" / f"{i}.png", root / "semantic" / f"{i}.png").regions) for i in ids)
    alarms = sum(bool(pipeline(root / "before" / f"{i}.png", root / "nonsemantic" / f"{i}.png").regions)
                 for i in ids)
    return found / len(ids), alarms / len(ids)


@pytest.mark.parametrize("align,found_floor,alarm_measured", [(False, 0.95, 1.00), (True, 0.95, 1.00)])
def test_clevr_change_camera_jitter(shared_data, align, found_floor, alarm_measured):
    """Where pixel differencing is known to fail: CLEVR's non-semantic pairs differ only by camera and lighting
    jitter, and a good detector reports nothing. Recorded, not hidden: the rate is asserted as measured."""
    found, alarms = _clevr_rates(shared_data / "clevr-change", align)
    # Measured: semantic pairs with a region 1.00 (both); non-semantic pairs with a region 1.00 / 1.00.
    assert found >= found_floor
    assert abs(alarms - alarm_measured) <= 0.05
