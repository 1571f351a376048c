"""The page in headless chromium: a box drawn on the left result image is sent as the request's ignore field
(the region under it goes, the box is shown greyed); an error clears the previous result; and `imgdiff-rt web`
says at start, as `run` does, that with no bundle the pixel detector runs."""

from __future__ import annotations

import time

import pytest

pytest.importorskip("fastapi", reason="the web extra (pip install 'imgdiff-rt[web]') is not installed")

from helpers import LEFT, compare_example  # noqa: E402
from web_server import GracefulWebServer  # noqa: E402


def test_a_box_drawn_on_the_left_image_is_ignored(server, browser):
    expect = pytest.importorskip("playwright.sync_api").expect
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    compare_example(page, server)
    assert page.locator("#regions li").count() == 3
    first = page.locator("#regions li[data-id='1'] .facts").inner_text()
    b = page.locator("#view-left g.region[data-id='1'] > rect:not(.tag)").bounding_box()
    page.click("#ignore-draw")
    page.mouse.move(b["x"] - 3, b["y"] - 3)
    page.mouse.down()
    page.mouse.move(b["x"] + b["width"] / 2, b["y"] + b["height"] / 2)
    page.mouse.move(b["x"] + b["width"] + 3, b["y"] + b["height"] + 3)
    page.mouse.up()
    expect(page.locator("#regions li")).to_have_count(2, timeout=60_000)
    box = [int(v) for v in page.input_value("#ignore-boxes").split(",")]
    assert len(box) == 4 and page.locator("#view-left rect.ignored").count() == 1
    assert page.locator("#view-right rect.ignored").count() == 1
    assert first not in page.locator("#regions").inner_text()
    page.click("#ignore-clear")  # no box: the three regions again
    expect(page.locator("#regions li")).to_have_count(3, timeout=60_000)
    assert page.locator("#view-left rect.ignored").count() == 0 and problems == []
    page.close()


def test_an_error_clears_the_previous_result(server, browser):
    page = browser.new_page()
    compare_example(page, server)
    page.set_input_files("#file-left", files=[{"name": "notes.png", "mimeType": "image/png",
                                               "buffer": b"this is not an image\n"}])
    page.click("#compare")
    page.wait_for_selector("#error:not([hidden])")
    assert "not a recognised image format" in page.inner_text("#error")
    assert page.locator("#regions li").count() == 0 and page.locator("#views g.region").count() == 0
    assert page.locator("#result").is_hidden()
    page.set_input_files("#file-left", str(LEFT))  # and a good pair shows again
    page.click("#compare")
    page.wait_for_selector("#result:not([hidden]) #regions li", timeout=60_000)
    assert page.locator("#error").is_hidden() and page.locator("#regions li").count() == 3
    page.close()


def test_web_says_at_start_that_the_pixel_detector_runs_without_a_bundle(tmp_path):
    srv = GracefulWebServer(tmp_path)  # no --detector, and the tests' home holds no bundle
    try:
        time.sleep(0.2)
        log = (tmp_path / "server.log").read_text()
    finally:
        srv.stop()
    assert "no model bundle at " in log and "so the pixel detector ran" in log
