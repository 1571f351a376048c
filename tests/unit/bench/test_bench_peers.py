"""The classical cell without the peers: skipped with the reason when node or the package is missing, and F1
from what each tool writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from imgdiff_rt.bench import peers as P
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
