"""`--backend triton` before any connection: the protocol comes from the URL, contradicting or unknown
protocols are usage errors, and `serve` refuses a weightless or missing repository in one line."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from imgdiff_rt.cli.main import cli
from imgdiff_rt.errors import UsageError
from imgdiff_rt.triton import client as C

from helpers import ROOT, no_triton_env


@pytest.fixture(autouse=True)
def _no_protocol_from_env(monkeypatch):
    no_triton_env(monkeypatch)


@pytest.mark.parametrize("url,protocol,expected", [
    ("grpc://10.0.0.1:8001", None, ("10.0.0.1:8001", "grpc")),
    ("http://10.0.0.1:8000/", None, ("10.0.0.1:8000", "http")),
    ("http://10.0.0.1:8000", "http", ("10.0.0.1:8000", "http")),
    ("10.0.0.1:8001", "grpc", ("10.0.0.1:8001", "grpc")),
])
def test_protocol_from_the_url(url, protocol, expected):
    assert C.resolve_endpoint(url, protocol) == expected


@pytest.mark.parametrize("url,protocol", [("ftp://h:1", None), ("grpc://h:1", "http"), ("h:1", "smtp")])
def test_contradicting_or_unknown_protocols_are_usage_errors(url, protocol):
    with pytest.raises(UsageError):
        C.resolve_endpoint(url, protocol)


@pytest.mark.parametrize("repo,message", [("{committed}", "holds no model weights"),
                                          ("{tmp}/nothing", "does not exist")])
def test_serve_refuses_a_weightless_or_missing_repository_in_one_line(tmp_path, repo, message):
    import shutil

    committed = tmp_path / "committed"
    shutil.copytree(ROOT / "triton_models", committed)
    repo = repo.format(committed=committed, tmp=tmp_path)
    res = CliRunner().invoke(cli, ["serve", "--repo", repo, "--env-dir", str(tmp_path / "env")])
    assert res.exit_code == 2 and not (tmp_path / "env").exists()
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "imgdiff-rt triton-repo --bundle" in lines[0], lines
