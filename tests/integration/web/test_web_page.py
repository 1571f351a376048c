"""`imgdiff-rt web` as a real server: the README's curl command, the 127.0.0.1 default, the spool folder removed
at exit, and the page driven in a real headless browser (Debian's chromium through Playwright).

Set IMGDIFF_RT_WEB_SCREENSHOT=PATH to also write the page's screenshot there (docs/web-page.png is made so).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess

import pytest

pytest.importorskip("fastapi", reason="the web extra (pip install 'imgdiff-rt[web]') is not installed")
import httpx  # noqa: E402

from helpers import RIGHT, ROOT, compare_example  # noqa: E402
from web_server import GracefulWebServer  # noqa: E402


def test_the_readme_curl_command_against_the_default_address(server):
    readme = (ROOT / "README.md").read_text()
    line = next(m.group(0) for m in re.finditer(r"curl -F left=@\S+ -F right=@\S+ localhost:8080/v1/diff", readme))
    args = shlex.split(line.replace("localhost:8080", f"127.0.0.1:{server.port}"))
    if shutil.which("curl"):
        out = subprocess.run([*args, "--silent", "--show-error"], cwd=ROOT, capture_output=True, check=True).stdout
        body = json.loads(out)
    else:  # the same request without curl
        files = {side: open(ROOT / a.split("=@", 1)[1], "rb") for side, a in zip(("left", "right"), args[2:5:2])}
        body = httpx.post(f"{server.base}/v1/diff", files=files, timeout=60).json()
    assert body["schema"] == "imgdiff-rt/result/v1" and len(body["regions"]) == 3
    psutil = pytest.importorskip("psutil")
    listening = [c.laddr for c in psutil.Process(server.proc.pid).net_connections("inet") if c.status == "LISTEN"]
    assert [a.ip for a in listening] == ["127.0.0.1"], listening  # the default bind is local only


def test_spool_folder_is_removed_when_the_server_stops(tmp_path):
    srv = GracefulWebServer(tmp_path)
    import io

    import numpy as np
    from PIL import Image

    buf = io.BytesIO()  # ~1.4 MB of noise: over the parser's 1 MiB in memory, so it is spooled to disk
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (700, 700, 3), dtype=np.uint8)).save(buf, "PNG")
    files = {"left": ("l.png", buf.getvalue()), "right": ("r.png", buf.getvalue())}
    assert httpx.post(f"{srv.base}/v1/diff", files=files, timeout=60).status_code == 200
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("imgdiff-rt-web-")]  # used while running
    assert srv.stop() == 0
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith("imgdiff-rt-web-")]


def _classes(page, selector: str) -> list[str]:
    return page.locator(selector).get_attribute("class").split()


def test_page_compares_the_example_pair(server, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("request", lambda r: None if r.url.startswith((server.base, "blob:", "data:"))
            else problems.append(f"request off the server: {r.url}"))
    compare_example(page, server)

    assert page.locator("#regions li").count() == 3
    for side in ("left", "right"):  # three numbered boxes drawn over each image, inside it
        stage = page.locator(f"#view-{side} .stage").bounding_box()
        boxes = page.locator(f"#view-{side} g.region > rect:not(.tag)")
        assert boxes.count() == 3 and page.locator(f"#view-{side} g.region text").all_text_contents() == ["1", "2", "3"]
        for i in range(3):
            b = boxes.nth(i).bounding_box()
            assert b["width"] > 5 and b["height"] > 5
            assert stage["x"] <= b["x"] and b["x"] + b["width"] <= stage["x"] + stage["width"] + 1

    page.hover("#regions li[data-id='1']")  # hover: the region lights up on both images
    assert "hl" in _classes(page, "#view-left g.region[data-id='1']")
    assert "hl" in _classes(page, "#view-right g.region[data-id='1']")

    page.click("#view-left g.region[data-id='2'] > rect:not(.tag)")  # click: selected everywhere, only it
    for selector in ("#regions li[data-id='2']", "#view-left g.region[data-id='2']",
                     "#view-right g.region[data-id='2']"):
        assert "selected" in _classes(page, selector), selector
    assert page.locator("#result .selected").count() == 3
    assert page.locator("#regions li[data-id='2'] .desc").inner_text().strip()

    page.check("#mask-toggle")
    assert page.locator("#view-left canvas.mask").is_visible()
    assert page.locator("#timings tr").count() >= 4
    assert page.get_attribute("#dl-annotated", "href").endswith("/annotated.png")
    assert page.get_attribute("#dl-imgdiff", "href").endswith("/img-diff.json")
    assert page.get_attribute("#dl-json", "href").startswith("blob:")

    shot = tmp_path / "web-page.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if os.environ.get("IMGDIFF_RT_WEB_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["IMGDIFF_RT_WEB_SCREENSHOT"])

    page.click("#options summary")  # a per-request option from the form: one region, then the server's 3 again
    page.fill("#option-fields [data-field='max-regions']", "1")
    page.click("#compare")
    expect = pytest.importorskip("playwright.sync_api").expect
    expect(page.locator("#regions li")).to_have_count(1, timeout=60_000)
    assert page.locator("#view-right g.region").count() == 1 and page.locator("#result .selected").count() == 0
    page.fill("#option-fields [data-field='max-regions']", "")
    page.click("#compare")
    expect(page.locator("#regions li")).to_have_count(3, timeout=60_000)
    assert problems == []
    page.close()


def test_page_shows_the_warnings_of_an_unsure_answer(server, browser, shared_data):
    """A LEVIR-CD tile whose registration fitted poorly: the page lists the warning beside the summary."""
    page = browser.new_page()
    page.goto(server.base + "/")
    tile = "test_55_0256_0000.png"
    page.set_input_files("#file-left", str(shared_data / "levir-cd" / "A" / tile))
    page.set_input_files("#file-right", str(shared_data / "levir-cd" / "B" / tile))
    page.click("#compare")
    page.wait_for_selector("#warnings:not([hidden]) li", timeout=60_000)
    assert "registration fitted poorly" in page.inner_text("#warnings")
    assert page.inner_text("#summary") != "No differences found."
    page.click("#use-example")  # the next answer, with nothing to warn about, hides them again
    page.wait_for_selector("#compare:not([disabled])")
    page.click("#compare")
    page.wait_for_selector("#warnings[hidden]", state="attached", timeout=60_000)
    page.close()


def test_page_shows_an_api_error(server, browser):
    page = browser.new_page()
    page.goto(server.base + "/")
    page.set_input_files("#file-left", files=[{"name": "notes.png", "mimeType": "image/png",
                                               "buffer": b"this is not an image\n"}])
    page.set_input_files("#file-right", str(RIGHT))
    page.click("#compare")
    page.wait_for_selector("#error:not([hidden])")
    assert "400: left (notes.png): not a recognised image format" in page.inner_text("#error")
    page.close()


def test_api_docs_render_offline(server, browser):
    page = browser.new_page()
    off_server: list[str] = []
    page.on("request", lambda r: None if r.url.startswith((server.base, "data:")) else off_server.append(r.url))
    page.goto(server.base + "/docs")
    page.wait_for_selector(".swagger-ui .opblock", timeout=30_000)
    assert "/v1/diff" in page.inner_text(".swagger-ui")
    assert off_server == []
    page.close()
