"""Fixtures of the service tests: one server per module, a client per test."""

from __future__ import annotations

import pytest

pytest.importorskip("httpx", reason="the service tests need httpx (requirements/dev.txt)")
pytest.importorskip("fastapi", reason="the service tests need the 'serve' extra")

from http_service import Server  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("serve") / "data")
    yield srv
    srv.stop()


@pytest.fixture
def client(server):
    with server.client() as c:
        yield c
