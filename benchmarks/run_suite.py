#!/usr/bin/env python
"""The benchmark suite from a source checkout: the same options as `imgdiff-rt bench` (this script calls it).

    python benchmarks/run_suite.py --models /tmp/real --out benchmarks/results/$(date +%F)

The library is ``imgdiff_rt/bench/`` (importable by the installed CLI); this folder holds this entry script and
the committed results (``benchmarks/results/<date>/results.json``, ``report.md``, plots). See docs/benchmarks.md.
"""

import os
import sys
from pathlib import Path

# offline like the tests: nothing may reach a model hub or pip-install during a measurement
for key, value in (("HF_HUB_OFFLINE", "1"), ("YOLO_OFFLINE", "1"), ("YOLO_AUTOINSTALL", "false"),
                   ("MPLBACKEND", "Agg")):
    os.environ.setdefault(key, value)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from imgdiff_rt.cli.main import cli  # noqa: E402

if __name__ == "__main__":
    cli(["bench", *sys.argv[1:]], prog_name="run_suite.py")
