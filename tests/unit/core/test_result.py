import json

import pytest

from imgdiff_rt.result import SCHEMA, Region, Result

REGION_KEYS = {"id", "bbox", "bbox_norm", "score", "area", "source", "similarity", "caption_left",
               "caption_right", "description", "mean_diff", "peak_diff", "mask", "change"}
RESULT_KEYS = {"schema", "id", "left", "right", "size", "regions", "description", "warnings", "timings_ms",
               "settings", "weights"}


def _result():
    r = Region(id=1, bbox=(10, 20, 110, 70), score=0.5, area=3000, mean_diff=20.0, peak_diff=60.0)
    return Result(id="p", left="a.png", right="b.png", size=(200, 100), regions=(r,), description="x",
                  timings_ms={"total": 1.0}, settings={"detector": "pixel"})


def test_to_json_has_the_contract_keys_and_normalised_boxes():
    d = json.loads(_result().to_json())
    assert set(d) == RESULT_KEYS and d["schema"] == SCHEMA
    assert set(d["regions"][0]) == REGION_KEYS
    assert d["regions"][0]["bbox_norm"] == [0.05, 0.2, 0.55, 0.7]
    assert d["regions"][0]["similarity"] is None and d["regions"][0]["source"] == "pixel"


def test_round_trip_and_frozen():
    res = _result()
    again = Result.from_dict(json.loads(res.to_json()))
    assert again.to_dict() == res.to_dict()
    with pytest.raises(AttributeError):
        res.id = "other"  # type: ignore[misc]


def test_warnings_round_trip_once_each_and_older_records_read_as_none():
    res = _result().with_warning("the right image was resized").with_warning("the right image was resized")
    assert res.warnings == ("the right image was resized",)
    assert Result.from_dict(json.loads(res.to_json())).warnings == res.warnings
    older = json.loads(_result().to_json())
    del older["warnings"]
    assert Result.from_dict(older).warnings == ()


def test_stages_return_new_results():
    res = _result()
    timed = res.with_timing("detect", 3.14159)
    assert timed.timings_ms == {"total": 1.0, "detect": 3.142} and res.timings_ms == {"total": 1.0}
    assert res.with_settings(align=True).settings["align"] is True and "align" not in res.settings


def test_from_dict_rejects_other_schemas():
    with pytest.raises(ValueError):
        Result.from_dict({"schema": "something/else", "id": "x", "size": [1, 1]})
