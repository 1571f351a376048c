"""The classical cell: peers skipped with the reason when node or the package is missing, F1 from what each tool
writes, and one real round against odiff and pixelmatch where scripts/install_peers.sh installed them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from imgdiff_rt.bench import peers as P
from imgdiff_rt.bench.exact_pairs import make_pair
from imgdiff_rt.detectors.pixel.masks import encode


def test_missing_node_or_package_is_a_reason(tmp_path, monkeypatch):
    monkeypatch.setenv("IMGDIFF_RT_PEERS", str(tmp_path))
    assert "odiff-bin is not installed" in P.peer_argv("odiff", Path("a"), Path("b"), tmp_path)
    assert "pixelmatch is not installed" in P.peer_argv("pixelmatch", Path("a"), Path("b"), tmp_path)
    monkeypatch.setattr(P.shutil, "which", lambda name: None)
    assert "node is not installed" in P.peer_argv("pixelmatch", Path("a"), Path("b"), tmp_path)
    assert isinstance(P.peer_argv("imgdiff-rt", Path("a"), Path("b"), tmp_path), list)


def test_scores_read_each_tools_output(tmp_path):
    import cv2

    truth = [(10, 10, 30, 20)]
    mask = np.zeros((40, 50), bool)
    mask[10:20, 10:30] = True
    (tmp_path / "result.json").write_text(json.dumps({"regions": [{"bbox": [10, 10, 30, 20], "mask": encode(mask)}]}))
    assert P.scores("imgdiff-rt", tmp_path, (50, 40), truth, True) == {"boxes": 1, "box_f1": 1.0, "pixel_f1": 1.0}
    diff = np.zeros((40, 50, 3), np.uint8)
    diff[10:20, 10:20] = (0, 0, 255)  # pixelmatch's red (BGR on disk), half the truth box
    cv2.imwrite(str(tmp_path / "diff.png"), diff)
    got = P.scores("pixelmatch", tmp_path, (50, 40), truth, True)
    assert got["boxes"] == 1 and got["pixel_f1"] == pytest.approx(2 * 100 / 300, abs=1e-4)


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
