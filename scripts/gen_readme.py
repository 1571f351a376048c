"""Rewrite the README's generated parts (imgdiff_rt/cli/readme_doc.py): the option list of run/eval from the
option table, and the result JSON sample from a real run of the bundled example (`imgdiff-rt run
examples/left.png examples/right.png`, in this process, without a model bundle). `--check` only reports
staleness."""

import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def example_result() -> dict:
    """The example's result exactly as `run` prints it with no model bundle (an empty models home)."""
    os.environ["IMGDIFF_RT_HOME"] = tempfile.mkdtemp(prefix="imgdiff-rt-readme-")
    from click.testing import CliRunner

    from imgdiff_rt.cli.main import cli
    from imgdiff_rt.cli.readme_doc import EXAMPLE

    os.chdir(ROOT)
    res = CliRunner().invoke(cli, ["run", *EXAMPLE])
    if res.exit_code != 0:
        sys.exit(f"the example did not run: {res.output}")
    return json.loads(res.stdout)


def render(text: str) -> str:
    from imgdiff_rt.cli.readme_doc import OPTIONS_MARKERS, SAMPLE_MARKERS, option_list, replace_between, sample_json

    text = replace_between(text, OPTIONS_MARKERS, option_list())
    return replace_between(text, SAMPLE_MARKERS, sample_json(example_result()))


if __name__ == "__main__":
    current = README.read_text(encoding="utf-8")
    text = render(current)
    if "--check" in sys.argv[1:]:
        sys.exit(0 if current == text else f"{README} is stale: run python scripts/gen_readme.py")
    README.write_text(text, encoding="utf-8")
    print(f"wrote {README}")
