"""The web app under FastAPI's test client, shared by the web API's unit test files."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def client():
    """One app with no server-side options per test file. fastapi is imported here, not at the top: the test
    files skip themselves where the web extra is absent, and this file must import without it."""
    from fastapi.testclient import TestClient

    from imgdiff_rt.cli.web_cmd import make_app

    with TestClient(make_app([])) as c:
        yield c
