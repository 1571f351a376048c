"""Pieces the Ray tests ship to actors (pickled by value, so workers need not import the tests folder)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from imgdiff_rt.pipeline import Pipeline

from helpers import save, textured


class SlowPipeline(Pipeline):
    """The pixel pipeline, slowed down so that a test can act mid-batch; each process notes its PID."""

    def __init__(self, delay_s: float, pid_dir: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.delay_s, self.pid_dir = delay_s, pid_dir

    def process(self, left, right, id=None):
        Path(self.pid_dir, str(os.getpid())).touch()
        time.sleep(self.delay_s)
        return super().process(left, right, id)


def mixed_pairs(root: Path, good: int = 6) -> Path:
    """A JSONL batch with good pairs and bad ones: a broken image, a missing file, a malformed line."""
    root.mkdir(parents=True)
    lines = []
    for k in range(good):
        left = textured(120, 160, seed=k)
        right = left.copy()
        right[10 + 6 * k:50 + 6 * k, 20:70] = (255, 0, 255)
        save(root / f"l{k}.png", left)
        save(root / f"r{k}.png", right)
        lines.append({"id": f"good-{k}", "left": f"l{k}.png", "right": f"r{k}.png"})
    (root / "broken.png").write_bytes(b"not a png")
    lines.insert(2, {"id": "broken", "left": "l0.png", "right": "broken.png"})
    lines.insert(4, {"id": "missing", "left": "l1.png", "right": "nowhere.png"})
    text = "".join(json.dumps(x) + "\n" for x in lines) + '{"id": "half", "left": \n'
    (root / "pairs.jsonl").write_text(text)
    return root / "pairs.jsonl"


def comparable(record: dict) -> dict:
    """A record without what differs from run to run (timings)."""
    return {k: v for k, v in record.items() if k != "timings_ms"}
