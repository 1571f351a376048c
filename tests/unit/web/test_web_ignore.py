"""Ignore regions in the web API: a per-request ``ignore`` field (boxes as --ignore takes them, or JSON) or
``ignore`` in 'options', added to the server's; bad boxes are a 400; /docs lists the field; the annotated
picture shades them."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the web extra (pip install 'imgdiff-rt[web]') is not installed")

from helpers import ROOT  # noqa: E402

LEFT, RIGHT = (ROOT / "examples" / "left.png").read_bytes(), (ROOT / "examples" / "right.png").read_bytes()


def post(client, data=None):
    files = {"left": ("left.png", LEFT, "image/png"), "right": ("right.png", RIGHT, "image/png")}
    return client.post("/v1/diff", files=files, data=data or {})


@pytest.fixture(scope="module")
def found(client) -> list[list[int]]:
    resp = post(client)
    assert resp.status_code == 200 and "ignore" not in resp.json()["settings"]
    return [r["bbox"] for r in resp.json()["regions"]]


def boxes(resp) -> list[list[int]]:
    assert resp.status_code == 200, resp.text
    return [r["bbox"] for r in resp.json()["regions"]]


def test_an_ignore_field_removes_exactly_that_region(client, found):
    resp = post(client, {"ignore": ",".join(map(str, found[0]))})
    assert boxes(resp) == found[1:]
    assert resp.json()["settings"]["ignore"]["boxes"] == [found[0]]


def test_several_boxes_as_text_json_text_or_in_options(client, found):
    two = [found[0], found[2]]
    assert boxes(post(client, {"ignore": ";".join(",".join(map(str, b)) for b in two)})) == [found[1]]
    assert boxes(post(client, {"ignore": json.dumps(two)})) == [found[1]]
    assert boxes(post(client, {"options": json.dumps({"ignore": two, "max-regions": 5})})) == [found[1]]
    w, h = Image.open(io.BytesIO(LEFT)).size
    fractions = [found[0][0] / w, found[0][1] / h, found[0][2] / w, found[0][3] / h]
    assert boxes(post(client, {"options": json.dumps({"ignore": fractions})})) == found[1:]


@pytest.mark.parametrize("data, text", [
    ({"ignore": "1,2,3"}, "give x0,y0,x1,y1"),
    ({"ignore": "5,5,1,1"}, "x1 must be above x0"),
    ({"ignore": "[1,2"}, "field 'ignore' is not valid JSON"),
    ({"options": json.dumps({"ignore": {"x": 1}})}, "ignore: give boxes as"),
    ({"options": json.dumps({"ignore": [[1, 2, 3]]})}, "ignore: give boxes as"),
    ({"ignore": "0,0,9,9", "options": json.dumps({"ignore": "0,0,9,9"})}, "given both as a field and in"),
])
def test_bad_ignore_boxes_are_a_400(client, data, text):
    resp = post(client, data)
    assert resp.status_code == 400 and text in resp.json()["error"], resp.text


def test_the_request_schema_lists_ignore(client):
    schema = client.get("/openapi.json").json()
    body = schema["paths"]["/v1/diff"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert "x0,y0,x1,y1" in body["properties"]["ignore"]["description"]


def test_the_annotated_picture_shades_a_requests_ignore(client, found):
    x0, y0, x1, y1 = found[0]
    job = post(client, {"ignore": f"{x0},{y0},{x1},{y1}"}).json()["job"]
    pic = np.asarray(Image.open(io.BytesIO(client.get(job["links"]["annotated_png"]).content)).convert("RGB"))
    left = np.asarray(Image.open(io.BytesIO(LEFT)).convert("RGB"))
    assert (pic[y0 + 2:y1 - 2, x0 + 2:x1 - 2] != left[y0 + 2:y1 - 2, x0 + 2:x1 - 2]).any()
