"""The README's two set-up commands stay true: CI runs the second one verbatim, the first one's example exists."""

import json
import re

from click.testing import CliRunner

from imgdiff_rt.cli.main import cli

from helpers import EXAMPLE, ROOT


def _readme_commands():
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", text, flags=re.S)
    return blocks[0].strip(), blocks[1].strip()


def test_ci_runs_the_readme_test_command_verbatim():
    _, test_cmd = _readme_commands()
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_cmd in ci_lines


def test_the_readme_main_command_runs_on_the_bundled_example(monkeypatch):
    main_cmd, _ = _readme_commands()
    run_part = main_cmd.split("&& imgdiff-rt ", 1)[1].split()
    monkeypatch.chdir(ROOT)
    res = CliRunner().invoke(cli, run_part)
    assert res.exit_code == 0, res.output
    found = json.loads(res.stdout)
    truth = json.loads((EXAMPLE / "truth.json").read_text())
    assert len(found["regions"]) == len(truth["changes"]) == 3


def test_the_readme_main_command_is_the_light_install():
    """The main job needs no extra: the first command installs the base package only, the second everything
    the tests use."""
    main_cmd, test_cmd = _readme_commands()
    assert "pip install -e . &&" in main_cmd and "[" not in main_cmd
    assert "pip install -e \".[dev]\" && python -m pytest" in test_cmd
