"""DIR/report.html of `run --pairs` and `eval`: one self-contained file, every pair with its thumbnail, words and
errors, eval's metrics; opened from the disk in headless Chromium with no request leaving the file, sorted and
filtered there. Set IMGDIFF_RT_REPORT_SCREENSHOT=PATH to write its screenshot (docs/batch-report.png)."""

from __future__ import annotations

import json
import os
import re

import pytest
from click.testing import CliRunner

from imgdiff_rt.cli.main import cli
from imgdiff_rt.writers.report_html import REPORT_FILE

from helpers import ROOT


@pytest.fixture(scope="module")
def batch(tmp_path_factory, shared_data):
    """The 12 LEVIR-CD pairs plus one that fails (a missing image), run as a batch."""
    tmp = tmp_path_factory.mktemp("report")
    levir = shared_data / "levir-cd"
    lines = [json.dumps({"id": p.stem, "left": str(p), "right": str(levir / "B" / p.name)})
             for p in sorted((levir / "A").glob("*.png"))]
    lines.append(json.dumps({"id": "broken", "left": str(levir / "A" / "nope.png"), "right": str(levir / "A" / "nope.png")}))
    (tmp / "pairs.jsonl").write_text("\n".join(lines) + "\n")
    out = tmp / "out"
    res = CliRunner().invoke(cli, ["run", "--pairs", str(tmp / "pairs.jsonl"), "--out", str(out), "--quiet"])
    assert res.exit_code == 1, res.output  # one pair failed
    return out, len(lines)


def test_the_report_is_one_self_contained_file(batch):
    out, pairs = batch
    text = (out / REPORT_FILE).read_text()
    assert text.count('<tr data-status=') == pairs
    assert not re.search(r"""(src|href)=["'](?!data:)""", text)  # nothing but inline data
    assert "http://" not in text and "https://" not in text
    assert "Content-Security-Policy" in text and "default-src 'none'" in text
    assert 'data-status="failed"' in text and "nope.png" in text  # the failure with its error


def test_eval_writes_a_report_with_its_metrics(tmp_path, shared_data):
    res = CliRunner().invoke(cli, ["eval", "--pairs", str(shared_data / "levir-cd"), "--out", str(tmp_path),
                                   "--quiet"])
    assert res.exit_code == 0, res.output
    text = (tmp_path / REPORT_FILE).read_text()
    assert "<b>precision</b>" in text and "<b>recall</b>" in text and "truths matched" in text


def test_the_report_opens_from_the_disk_sorts_and_filters_offline(batch, browser):
    out, pairs = batch
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    url = (out / REPORT_FILE).as_uri()
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(url)
    assert requests == [url]  # the file itself and nothing else (thumbnails are data: URLs)
    rows = page.locator("tbody tr")
    assert rows.count() == pairs
    assert page.locator("tbody img").count() == pairs - 1
    assert all(page.evaluate("[...document.images].map(i => i.complete && i.naturalWidth > 0)"))
    page.click("button[data-f=failed]")
    assert page.locator("tbody tr:visible").count() == 1
    assert "nope.png" in page.locator("tbody tr:visible").inner_text()
    page.click("button[data-f=changed]")
    changed = page.locator("tbody tr:visible").count()
    assert 0 < changed < pairs
    page.click("button[data-f=all]")
    page.click("th[data-k='2']")  # regions, ascending then descending
    page.click("th[data-k='2']")
    counts = [int(v) for v in page.eval_on_selector_all("tbody tr td:nth-child(3)", "c => c.map(x => x.textContent)")]
    assert counts == sorted(counts, reverse=True)
    shot = os.environ.get("IMGDIFF_RT_REPORT_SCREENSHOT")
    if shot:  # most regions first: the boxes and descriptions show
        page.screenshot(path=str(ROOT / shot) if not os.path.isabs(shot) else shot)
    assert requests == [url]
    page.close()
