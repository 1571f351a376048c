"""What `--engine ray`'s progress says, without a cluster: a rate as soon as one is known (a burst of records
is none), and a note when start-up took most of the batch."""

from __future__ import annotations

import io
import time

from imgdiff_rt.batch import progress as progress_module
from imgdiff_rt.batch.ray_engine import start_up_note


def test_a_burst_of_records_is_no_rate_and_the_first_real_rate_is_shown_at_once():
    stream = io.StringIO()
    assert progress_module.PLAIN_EVERY_S >= 10
    with progress_module.Progress(12, stream=stream, mode="lines") as bar:
        for _ in range(4):  # one Ray task's records arrive together
            bar.advance()
        assert bar.rate() is None
        time.sleep(progress_module.MIN_RATE_WINDOW_S + 0.05)
        bar.advance()
        shown = stream.getvalue().splitlines()
        assert len(shown) == 2 and shown[1].startswith("pairs 5/12 (42%), ") and "? pairs/s" not in shown[1]
        assert "ETA 0:00:" in shown[1]
        bar.advance()  # once shown, the rate waits for the periodic line again
        assert len(stream.getvalue().splitlines()) == 2


def test_the_start_up_note():
    assert start_up_note(6.5, 10.0).startswith("note: Ray start-up took 6.5 s of 10.0 s")
    assert start_up_note(1.0, 10.0) is None
