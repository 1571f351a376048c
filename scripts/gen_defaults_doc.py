"""Rewrite docs/defaults.md from the code (imgdiff_rt/cli/defaults_doc.py); `--check` only reports staleness."""

import sys
from pathlib import Path

from imgdiff_rt.cli.defaults_doc import render

DOC = Path(__file__).resolve().parents[1] / "docs" / "defaults.md"

if __name__ == "__main__":
    text = render()
    if "--check" in sys.argv[1:]:
        current = DOC.read_text(encoding="utf-8") if DOC.is_file() else ""
        sys.exit(0 if current == text else f"{DOC} is stale: run python scripts/gen_defaults_doc.py")
    DOC.write_text(text, encoding="utf-8")
    print(f"wrote {DOC}")
