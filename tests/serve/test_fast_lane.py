"""The fast lane (serve/fast_lane.py) answers plain k-NN searches of codes below FastAPI. Its
answers must be byte for byte the route's: two real servers hold the same items, one with the
lane and one without (``--no-fast-lane``), and every request, plain or not, valid or not, must get
the same status and body from both. In-process, the lane's choices: which bodies are plain, and
where a search runs (on the loop only once its collection's searches predict it cheap, never
while a write holds the collection, never with a budget of 0)."""

from __future__ import annotations

import asyncio
import base64
import json

import numpy as np
import pytest

from http_service import MAX_BATCH, Server

from deephash_engine.serve.fast_lane import FastLane, _plain
from deephash_engine.serve.store import Store


def b64(codes: np.ndarray) -> list[str]:
    return [base64.b64encode(row.tobytes()).decode("ascii") for row in codes]


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    fast = Server(tmp_path_factory.mktemp("fast") / "data")
    try:
        plain = Server(tmp_path_factory.mktemp("route") / "data", extra=["--no-fast-lane"])
    except BaseException:
        fast.stop()
        raise
    yield fast, plain
    fast.stop()
    plain.stop()


def _both(clients, method: str, path: str, **kw) -> list:
    return [getattr(c, method)(path, **kw) for c in clients]


@pytest.fixture(scope="module")
def filled(servers):
    """Three collections (flat and MIH 32-bit, flat 12-bit) with the same items on both servers,
    some of them deleted, many ties."""
    rng = np.random.default_rng(5)
    clients = [s.client() for s in servers]
    made = {}
    for name, nbits, kind in [("flat32", 32, "flat"), ("mih32", 32, "mih"), ("flat12", 12, "flat")]:
        size = (nbits + 7) // 8
        codes = rng.integers(0, 4, size=(250, size), dtype=np.uint8)  # few distinct values: many ties
        if nbits % 8:
            codes[:, -1] &= (1 << (nbits % 8)) - 1
        for c in clients:
            assert c.post("/collections", json={"name": name, "nbits": nbits, "index": kind}).status_code == 201
            for start in range(0, 250, MAX_BATCH):
                c.post(f"/collections/{name}/items", json={"codes": b64(codes[start:start + MAX_BATCH])}).raise_for_status()
            c.post(f"/collections/{name}/items/delete", json={"ids": list(range(0, 250, 7))}).raise_for_status()
        made[name] = size
    yield clients, made, rng
    for c in clients:
        c.close()


def test_plain_searches_answer_as_the_route(filled):
    clients, made, rng = filled
    for name, size in made.items():
        for nq, k in [(1, 1), (5, 10), (MAX_BATCH, 3), (3, 400), (0, 5)]:  # k = 400: more than the items
            queries = rng.integers(0, 4, size=(nq, size), dtype=np.uint8)
            if size == 2:
                queries[:, -1] &= 0x0F
            for _ in range(3):  # the first learns the cost in a thread, the next run on the loop
                got = _both(clients, "post", f"/collections/{name}/search", json={"codes": b64(queries), "k": k})
                assert [r.status_code for r in got] == [200, 200]
                assert got[0].content == got[1].content
                assert got[0].headers["content-type"] == got[1].headers["content-type"] == "application/json"
        results = json.loads(got[0].content)["results"]
        assert results == []  # nq = 0 was last


@pytest.mark.parametrize("body", [
    {"codes": "QUJD", "k": 1},                              # codes not a list
    {"codes": [1], "k": 1},                                 # a code not a string
    {"codes": ["AAAAAA=="], "k": 1},                        # a wrong length
    {"codes": ["AAA!"], "k": 1},                            # not base64
    {"codes": ["AAAA"], "k": 0},
    {"codes": ["AAAA"], "k": True},
    {"codes": ["AAAA"], "k": 1.0},
    {"codes": ["AAAA"], "k": "1"},
    {"codes": ["AAAA"], "k": 10_001},                       # past max_k
    {"codes": ["AAAA"] * (MAX_BATCH + 1), "k": 1},          # past max_batch
    {"codes": ["AAAA"], "k": 1, "radius": 2},
    {"codes": ["AAAA"], "k": 1, "with_payload": True},
    {"codes": ["AAAA"], "k": 1, "with_payload": False, "filter": None, "inputs": None, "max_hits": None},
    {"codes": ["AAAA"], "k": 1, "filter": {}},
    {"codes": ["AAAA"], "k": 1, "unknown": 3},
    {"codes": ["AAAA"], "radius": 3},
    {"k": 1},
    [],
])
def test_every_other_request_answers_as_the_route(filled, body):
    clients, _, _ = filled
    got = _both(clients, "post", "/collections/flat32/search", json=body)
    assert got[0].status_code == got[1].status_code
    assert got[0].json() == got[1].json()


def test_unknown_collections_not_json_and_bad_padding_answer_as_the_route(filled):
    clients, _, _ = filled
    for path, kw in [("/collections/nope/search", {"json": {"codes": [], "k": 1}}),
                     ("/collections/bad.name/search", {"json": {"codes": [], "k": 1}}),
                     ("/collections/flat32/search", {"content": b'{"codes": [], "k": 1}',
                                                     "headers": {"content-type": "text/plain"}}),
                     ("/collections/flat32/search", {"content": b'{"codes": [', "headers": {"content-type": "application/json"}}),
                     ("/collections/flat12/search", {"json": {"codes": b64(np.array([[0, 16]], np.uint8)), "k": 1}})]:
        got = _both(clients, "post", path, **kw)
        assert got[0].status_code == got[1].status_code != 200, path
        assert got[0].json() == got[1].json()


def test_metrics_count_fast_lane_searches_under_the_route(filled):
    clients, _, rng = filled
    for _ in range(3):
        clients[0].post("/collections/mih32/search", json={"codes": b64(rng.integers(0, 4, (2, 4), np.uint8)), "k": 2})
    text = clients[0].get("/metrics").text
    assert 'deephash_fast_lane_searches_total{ran_on="loop"}' in text
    assert 'deephash_fast_lane_searches_total{ran_on="thread"}' in text
    assert 'route="/collections/{name}/search",status="200"' in text
    assert "deephash_fast_lane_searches_total" not in clients[1].get("/metrics").text.replace(
        "# HELP deephash_fast_lane_searches_total", "").replace("# TYPE deephash_fast_lane_searches_total", "")


@pytest.mark.parametrize("body, plain", [
    ({"codes": ["AAAA"], "k": 3}, (["AAAA"], 3)),
    ({"codes": [], "k": 1, "with_payload": False, "radius": None}, ([], 1)),
    ({"codes": ["AAAA"], "k": 3, "with_payload": 0}, None),
    ({"codes": ["AAAA"], "k": 3, "filter": {}}, None),
    ({"codes": ["AAAA"], "k": -1}, None),
    ({"codes": ["AAAA"], "k": False}, None),
    ({"codes": ("AAAA",), "k": 1}, (["AAAA"], 1)),  # JSON has no tuples: it arrives as a list
    ({"inputs": [[1.0]], "k": 1}, None),
])
def test_which_bodies_are_plain(body, plain):
    assert _plain(json.dumps(body).encode()) == plain
    assert _plain(b"not json") is None and _plain(b"[1]") is None


def _scope(name: str) -> dict:
    return {"type": "http", "method": "POST", "path": f"/collections/{name}/search",
            "headers": [(b"content-type", b"application/json; charset=utf-8")]}


def test_searches_run_on_the_loop_only_when_predicted_cheap_and_no_write_holds(tmp_path, rng):
    store = Store(tmp_path / "data")
    col = store.create("c", 32, "flat")
    codes = rng.integers(0, 256, (500, 4), np.uint8)
    col.add(codes, None, None)
    ran: list[str] = []

    def respond(c, queries, k):
        return _json_of(c.index.search(queries, k))

    body = json.dumps({"codes": b64(codes[:4]), "k": 5}).encode()
    lane = FastLane(store, respond, max_batch=100, max_k=100, inline_search_ms=1000.0, note=ran.append)
    first = asyncio.run(lane.answer(_scope("c"), body))
    second = asyncio.run(lane.answer(_scope("c"), body))
    assert first == second == _json_of(col.index.search(codes[:4], 5))
    assert ran == ["thread", "loop"]
    with col._lock:  # a write in progress: the search must not wait for it on the loop
        asyncio.run(lane.answer(_scope("c"), body))
    assert ran[-1] == "thread"
    asyncio.run(lane.answer(_scope("c"), json.dumps({"codes": b64(codes[:4]), "k": 6}).encode()))
    assert ran[-1] == "thread"  # a new k: its cost is not known yet

    never = FastLane(store, respond, max_batch=100, max_k=100, inline_search_ms=0.0, note=ran.append)
    for _ in range(3):
        asyncio.run(never.answer(_scope("c"), body))
    assert ran[-3:] == ["thread"] * 3
    costly = FastLane(store, respond, max_batch=100, max_k=100, inline_search_ms=1e-9, note=ran.append)
    for _ in range(3):
        asyncio.run(costly.answer(_scope("c"), body))
    assert ran[-3:] == ["thread"] * 3
    assert asyncio.run(lane.answer(_scope("gone"), body)) is None  # the route says 404
    assert asyncio.run(lane.answer({**_scope("c"), "method": "GET"}, body)) is None
    store.close()


def _json_of(result) -> bytes:
    distances, ids = result
    return json.dumps([ids.tolist(), distances.tolist()]).encode()
