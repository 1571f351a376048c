"""The `imgdiff-rt web` process that the page's tests in this folder drive."""

from __future__ import annotations

import pytest

from web_server import GracefulWebServer


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A real server on the pixel detector, one per test file; stopped by a signal at the file's end."""
    srv = GracefulWebServer(tmp_path_factory.mktemp("web"), "--detector", "pixel")
    yield srv
    srv.stop()
