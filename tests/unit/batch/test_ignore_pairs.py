"""Per-pair ignore boxes in pairs files (JSONL lines, Parquet rows): the batch passes them to the pipeline, a bad
one costs that pair only, and they survive the row form Ray's workers receive."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from imgdiff_rt import Pipeline
from imgdiff_rt.cli.main import cli
from imgdiff_rt.pairs import PairItem, load_pairs

from helpers import LEFT, RIGHT


@pytest.fixture(scope="module")
def found() -> list[list[int]]:
    return [list(r.bbox) for r in Pipeline().process(LEFT, RIGHT).result.regions]


def _lines(tmp_path, found) -> list[dict]:
    return [{"id": "plain", "left": str(LEFT), "right": str(RIGHT)},
            {"id": "boxed", "left": str(LEFT), "right": str(RIGHT), "ignore": [found[0]]},
            {"id": "text", "left": str(LEFT), "right": str(RIGHT), "ignore": ",".join(map(str, found[1]))},
            {"id": "bad", "left": str(LEFT), "right": str(RIGHT), "ignore": "1,2,3"}]


def _results(out) -> dict[str, dict]:
    return {r["id"]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}


def test_a_pairs_line_ignores_its_own_boxes(tmp_path, found):
    assert len(found) >= 2
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(x) + "\n" for x in _lines(tmp_path, found)))
    res = CliRunner().invoke(cli, ["run", "--pairs", str(pairs), "--out", str(tmp_path / "o"), "-q"])
    assert res.exit_code == 1  # the bad line fails, alone
    got = _results(tmp_path / "o")
    boxes = {k: [r["bbox"] for r in v.get("regions", [])] for k, v in got.items()}
    assert boxes["plain"] == found and "ignore" not in got["plain"]["settings"]
    assert boxes["boxed"] == found[1:] and got["boxed"]["settings"]["ignore"]["boxes"] == [found[0]]
    assert boxes["text"] == [found[0]] + found[2:]
    assert "ignore" in got["bad"]["error"] and "failed: bad: " in res.output


def test_parquet_rows_carry_ignore_and_so_do_ray_rows(tmp_path, found):
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    rows = _lines(tmp_path, found)[:2]
    rows[0]["ignore"] = None
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "pairs.parquet")
    items = load_pairs(tmp_path / "pairs.parquet")
    assert [it.ignore for it in items] == [(), (tuple(float(v) for v in found[0]),)]
    assert [PairItem.from_row(json.loads(json.dumps(it.to_row()))) for it in items] == items


def test_eval_honours_a_pairs_ignore(tmp_path, found):
    truth = tmp_path / "truth.json"
    truth.write_text(json.dumps(found[1:]))
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"id": "e", "left": str(LEFT), "right": str(RIGHT), "truth": str(truth),
                                 "ignore": [found[0]]}) + "\n")
    res = CliRunner().invoke(cli, ["eval", "--pairs", str(pairs), "--out", str(tmp_path / "o"), "-q"])
    assert res.exit_code == 0, res.output
    record = json.loads((tmp_path / "o" / "eval.jsonl").read_text())
    assert record["pred_boxes"] == found[1:]
