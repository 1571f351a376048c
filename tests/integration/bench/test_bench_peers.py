"""One real round of the classical cell against odiff and pixelmatch where scripts/install_peers.sh installed
them (skipped elsewhere)."""

from __future__ import annotations

from pathlib import Path

import pytest

from imgdiff_rt.bench import peers as P
from imgdiff_rt.bench.exact_pairs import make_pair


@pytest.mark.skipif(isinstance(P.peer_argv("odiff", Path("a"), Path("b"), Path(".")), str)
                    or isinstance(P.peer_argv("pixelmatch", Path("a"), Path("b"), Path(".")), str),
                    reason="odiff / pixelmatch not installed (scripts/install_peers.sh)")
def test_one_round_against_the_peers(tmp_path):
    from imgdiff_rt.imageio import write_png_atomic

    left, right, truth = make_pair(640, 400, seed=1)
    write_png_atomic(tmp_path / "l.png", left)
    write_png_atomic(tmp_path / "r.png", right)
    pair = {"name": "exact", "left": tmp_path / "l.png", "right": tmp_path / "r.png", "truth": truth,
            "pixel_exact": True}
    section = P.measure_classical([pair], runs=1)
    row = section["pairs"][0]
    assert set(row["tools"]) == set(P.TOOLS)
    for tool, entry in row["tools"].items():
        assert entry["box_f1"] == 1.0 and entry["pixel_f1"] > 0.8 and entry["peak_rss_mb"] > 1, tool
    assert "imgdiff_rt_speedup" in row["tools"]["odiff"]
    assert any("exact" in line for line in P.render_classical(section))
