"""Bearer-token authentication: every route but /health needs the token from --token-file."""

from __future__ import annotations

import pytest
from http_service import Server

TOKEN = "s3cret-token-for-tests"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("auth")
    token_file = folder / "token"
    token_file.write_text(TOKEN + "\n")
    srv = Server(folder / "data", token_file=token_file)
    yield srv
    srv.stop()


@pytest.mark.parametrize("method, path, body", [
    ("GET", "/collections", None),
    ("POST", "/collections", {"name": "x", "nbits": 8}),
    ("GET", "/collections/x", None),
    ("DELETE", "/collections/x", None),
    ("POST", "/collections/x/items", {"codes": ["AA=="]}),
    ("GET", "/collections/x/items/0", None),
    ("POST", "/collections/x/items/delete", {"ids": [0]}),
    ("POST", "/collections/x/search", {"codes": ["AA=="], "k": 1}),
    ("POST", "/collections/x/snapshot", None),
    ("GET", "/metrics", None),
    ("GET", "/openapi.json", None),
])
@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {TOKEN}", "Bearer"])
def test_without_the_token_every_route_is_401(guarded, method, path, body, header):
    headers = {"Authorization": header} if header else {}
    with guarded.client() as c:
        response = c.request(method, path, json=body, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["detail"][0]["loc"] == ["header", "authorization"]


def test_with_the_token_requests_go_through(guarded):
    with guarded.client() as anonymous:
        assert anonymous.get("/health").status_code == 200
        assert anonymous.get("/collections").status_code == 401
    with guarded.client(TOKEN) as c:
        assert c.post("/collections", json={"name": "x", "nbits": 8}).status_code == 201
        assert c.post("/collections/x/items", json={"codes": ["AA==", "/w=="]}).json() == {"ids": [0, 1]}
        hits = c.post("/collections/x/search", json={"codes": ["AQ=="], "k": 2}).json()
        assert hits == {"results": [{"ids": [0, 1], "distances": [1, 7]}]}
        assert c.get("/collections").json()["collections"][0]["count"] == 2
        assert c.delete("/collections/x").status_code == 200


def test_an_empty_token_file_is_refused(tmp_path):
    empty = tmp_path / "token"
    empty.write_text("\n")
    with pytest.raises(RuntimeError, match="empty"):
        Server(tmp_path / "data", token_file=empty)
