"""DIR/report.html of a batch (`run --pairs`, `eval`): one self-contained file to open from the disk.

Every pair has a row: a thumbnail of both sides with the boxes (truth in green for eval), the descriptions and
warnings, or the error of a failed pair; eval adds its metrics on top. CSS, script and thumbnails are inline
and a Content-Security-Policy forbids every request, so the file works offline and leaks nothing. The table
sorts by any column and filters to changed / unchanged / failed / with warnings.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any, Iterable, Mapping

import cv2
import numpy as np
from PIL import Image

from imgdiff_rt.annotate import side_by_side
from imgdiff_rt.files import write_text_atomic
from imgdiff_rt.imageio import read_image
from imgdiff_rt.result import Region

REPORT_FILE = "report.html"
THUMB_WIDTH = 480  # px of both sides together: enough to see the boxes, small enough for thousands of rows
MAX_THUMBS = 2000  # rows past this have no thumbnail (the file stays openable)
GREEN = (20, 200, 60)
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"


def _status(record: Any) -> str:
    if isinstance(record, dict) and "error" in record:
        return "failed"
    if isinstance(record, dict) and "unscored" in record:
        return "unscored"
    if isinstance(record, list):  # Img-Diff records: one per region
        return "changed" if record else "unchanged"
    count = len(record.get("regions", ())) if "regions" in record else record.get("predictions", 0)
    return "changed" if count else "unchanged"


def _boxes(record: Any) -> tuple[list, list]:
    """(found boxes, truth boxes) of a record, in left-image pixels."""
    if isinstance(record, list):
        return [], []
    if "regions" in record:
        return [r["bbox"] for r in record["regions"]], []
    return record.get("pred_boxes", []), record.get("truth_boxes", [])


def thumbnail(left: Any, right: Any, found: list, truth: list) -> str | None:
    """A data: URL of both sides with the boxes, or None when an image cannot be read."""
    try:
        a, b = read_image(left), read_image(right)
    except Exception:  # noqa: BLE001 - a failed pair's images may be the very problem; its row says so
        return None
    h, w = a.shape[:2]
    if b.shape[:2] != (h, w):
        b = cv2.resize(b, (w, h), interpolation=cv2.INTER_AREA)
    regions = [Region(id=k + 1, bbox=tuple(int(v) for v in box), score=0.0, area=0) for k, box in enumerate(found)]
    pic = side_by_side(a, b, regions)
    for box in truth:
        x0, y0, x1, y1 = (int(v) for v in box)
        for dx in (0, pic.shape[1] - w):
            cv2.rectangle(pic, (x0 + dx, y0), (x1 + dx - 1, y1 - 1), GREEN, max(1, min(h, w) // 250))
    scale = THUMB_WIDTH / pic.shape[1]
    small = cv2.resize(pic, (THUMB_WIDTH, max(1, round(pic.shape[0] * scale))), interpolation=cv2.INTER_AREA)
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(small)).save(buf, "JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _texts(record: Any) -> tuple[list[str], list[str]]:
    """(descriptions, warnings) of a record."""
    if not isinstance(record, dict):
        return [r.get("answer", "") for r in record if isinstance(r, dict)], []
    if "error" in record:
        return [], []
    lines = [f"{r['id']}. {r.get('description') or ''}" for r in record.get("regions", ())]
    if "matched" in record:
        lines.append(f"{record['matched']} of {record.get('truths', 0)} truths matched, "
                     f"{record.get('predictions', 0)} found")
    warnings = [w if isinstance(w, str) else json.dumps(w) for w in record.get("warnings", ()) or ()]
    return lines, warnings


def _row(item: Any, record: Any, with_thumb: bool) -> str:
    status = _status(record)
    descriptions, warnings = _texts(record)
    found, truth = _boxes(record)
    src = thumbnail(item.left, item.right, found, truth) if with_thumb and status != "failed" else None
    picture = f'<img src="{src}" alt="{html.escape(item.id)}">' if src else ""
    ms = record.get("ms", record.get("timings_ms", {}).get("total")) if isinstance(record, dict) else None
    detail = "".join(f"<li>{html.escape(t)}</li>" for t in descriptions)
    if isinstance(record, dict) and ("error" in record or "unscored" in record):
        detail = f'<li class="err">{html.escape(str(record.get("error") or record.get("unscored")))}</li>'
    warn = "".join(f'<li class="warn">{html.escape(w)}</li>' for w in warnings)
    return (f'<tr data-status="{status}" data-warn="{int(bool(warnings))}">'
            f'<td data-v="{html.escape(item.id)}">{html.escape(item.id)}</td>'
            f'<td data-v="{status}"><span class="st {status}">{status}</span></td>'
            f'<td data-v="{len(found)}">{len(found)}</td>'
            f'<td data-v="{"" if ms is None else ms}">{"" if ms is None else f"{ms:.0f}"}</td>'
            f'<td class="pic">{picture}</td><td><ul>{detail}{warn}</ul></td></tr>')


def _metrics(metrics: Mapping[str, Any] | None) -> str:
    if not metrics:
        return ""
    cells = "".join(f"<div><b>{html.escape(k)}</b> {html.escape(_fmt(v))}</div>" for k, v in metrics.items()
                    if isinstance(v, (int, float, str)) and not isinstance(v, bool))
    return f'<section class="metrics">{cells}</section>'


def _fmt(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def render(title: str, items: Iterable[Any], records: Mapping[str, Any],
           metrics: Mapping[str, Any] | None = None) -> str:
    rows, counts = [], {"changed": 0, "unchanged": 0, "failed": 0, "unscored": 0, "warnings": 0}
    for n, item in enumerate(i for i in items if i.id in records):
        record = records[item.id]
        rows.append(_row(item, record, n < MAX_THUMBS))
        counts[_status(record)] += 1
        counts["warnings"] += bool(_texts(record)[1])
    buttons = "".join(f'<button data-f="{k}">{k} ({v})</button>' for k, v in counts.items() if v or k != "unscored")
    return (_PAGE.replace("%CSP%", _CSP).replace("%TITLE%", html.escape(title))
            .replace("%METRICS%", _metrics(metrics)).replace("%BUTTONS%", buttons)
            .replace("%ROWS%", "\n".join(rows)).replace("%TOTAL%", str(len(rows))))


def write_report(out_dir: Path, title: str, items: Iterable[Any], records: Mapping[str, Any],
                 metrics: Mapping[str, Any] | None = None) -> Path:
    path = Path(out_dir) / REPORT_FILE
    write_text_atomic(path, render(title, items, records, metrics))
    return path


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="%CSP%">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>%TITLE%</title>
<style>
body{font:14px system-ui,sans-serif;margin:16px;color:#222;background:#fafafa}
h1{font-size:20px;margin:0 0 8px}
.metrics{display:flex;flex-wrap:wrap;gap:6px 18px;margin:8px 0;padding:8px;background:#fff;border:1px solid #ddd}
.bar{margin:8px 0}.bar button{margin-right:4px;padding:4px 10px;border:1px solid #bbb;background:#fff;cursor:pointer}
.bar button.on{background:#234;color:#fff}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{border-bottom:1px solid #e4e4e4;padding:6px;text-align:left;vertical-align:top}
th{cursor:pointer;background:#f0f0f0;user-select:none}th.asc:after{content:" \\25B2"}th.desc:after{content:" \\25BC"}
td.pic img{width:480px;max-width:40vw;display:block}ul{margin:0;padding-left:18px}
.st{padding:1px 6px;border-radius:3px;color:#fff}.changed{background:#c62}.unchanged{background:#588}
.failed{background:#b22}.unscored{background:#888}li.err{color:#b22}li.warn{color:#a60}
</style></head><body>
<h1>%TITLE%</h1>%METRICS%
<div class="bar">%BUTTONS%<span id="shown"></span></div>
<table><thead><tr><th data-k="0">pair</th><th data-k="1">status</th><th data-k="2" data-n="1">regions</th>
<th data-k="3" data-n="1">ms</th><th>both sides</th><th>descriptions, warnings, errors</th></tr></thead>
<tbody>
%ROWS%
</tbody></table>
<script>
(function(){
  var body=document.querySelector("tbody"), shown=document.getElementById("shown"), filter="all";
  function apply(){var n=0;[].forEach.call(body.rows,function(r){
    var ok=filter==="all"||(filter==="warnings"?r.dataset.warn==="1":r.dataset.status===filter);
    r.style.display=ok?"":"none";n+=ok;});shown.textContent=" "+n+" of %TOTAL% shown";}
  var bar=document.querySelector(".bar"), all=document.createElement("button");
  all.textContent="all";all.dataset.f="all";all.className="on";bar.insertBefore(all,bar.firstChild);
  bar.addEventListener("click",function(e){var b=e.target.closest("button");if(!b)return;
    [].forEach.call(bar.querySelectorAll("button"),function(x){x.className=x===b?"on":"";});
    filter=b.dataset.f;apply();});
  document.querySelector("thead").addEventListener("click",function(e){var th=e.target.closest("th");
    if(!th||th.dataset.k===undefined)return;var k=+th.dataset.k,num=th.dataset.n==="1",
    asc=th.className!=="asc";[].forEach.call(th.parentNode.children,function(x){x.className="";});
    th.className=asc?"asc":"desc";var rows=[].slice.call(body.rows);rows.sort(function(a,b){
      var x=a.cells[k].dataset.v,y=b.cells[k].dataset.v;if(num){x=parseFloat(x)||0;y=parseFloat(y)||0;}
      return (x<y?-1:x>y?1:0)*(asc?1:-1);});rows.forEach(function(r){body.appendChild(r);});});
  apply();
})();
</script></body></html>
"""
