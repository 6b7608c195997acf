"""Every route of ``deephash serve`` and every error it promises, against a real server."""

from __future__ import annotations

import base64
import itertools

import numpy as np
import pytest
from http_service import MAX_BATCH, MAX_BODY, MAX_RANGE_HITS, b64

import deephash_engine as de

_names = (f"c{i}" for i in itertools.count())


@pytest.fixture
def name(client):
    """A fresh 64-bit flat collection, dropped afterwards."""
    n = next(_names)
    assert client.post("/collections", json={"name": n, "nbits": 64}).status_code == 201
    yield n
    client.delete(f"/collections/{n}")


def _codes(rng, n, nbits=64):
    return rng.integers(0, 256, size=(n, nbits // 8), dtype=np.uint8)


def _loc(response):
    return response.json()["detail"][0]["loc"]


def test_health_and_openapi(client):
    assert client.get("/health").json()["status"] == "ok"
    paths = client.get("/openapi.json").json()["paths"]
    for path in ["/collections", "/collections/{name}", "/collections/{name}/items",
                 "/collections/{name}/items/{item_id}", "/collections/{name}/items/delete",
                 "/collections/{name}/search", "/collections/{name}/snapshot", "/health", "/metrics"]:
        assert path in paths
    assert "swagger" in client.get("/docs").text.lower()


@pytest.mark.parametrize("kind", ["flat", "mih"])
def test_collection_lifecycle(client, kind):
    n = next(_names)
    created = client.post("/collections", json={"name": n, "nbits": 128, "index": kind})
    assert created.status_code == 201
    assert created.json()["index"] == kind and created.json()["count"] == 0
    assert client.post("/collections", json={"name": n, "nbits": 128}).status_code == 409
    assert n in [c["name"] for c in client.get("/collections").json()["collections"]]
    described = client.get(f"/collections/{n}").json()
    assert described["nbits"] == 128 and "memory_bytes" in described and "index_stats" in described
    assert client.delete(f"/collections/{n}").json() == {"dropped": n}
    assert client.get(f"/collections/{n}").status_code == 404
    assert client.delete(f"/collections/{n}").status_code == 404


@pytest.mark.parametrize("body, loc", [
    ({"name": "bad.name", "nbits": 64}, ["body", "name"]),
    ({"name": "ok", "nbits": -12}, ["body", "nbits"]),
    ({"name": "ok", "nbits": 0}, ["body", "nbits"]),
    ({"name": "ok", "nbits": 64, "index": "hnsw"}, ["body", "index"]),
    ({"nbits": 64}, ["body", "name"]),
    ({"name": "ok", "nbits": 64, "encoder": "../outside.npz"}, ["body", "encoder"]),
    ({"name": "ok", "nbits": 64, "encoder": "/etc/passwd"}, ["body", "encoder"]),
    ({"name": "ok", "nbits": 64, "encoder": "missing.npz"}, ["body", "encoder"]),
])
def test_create_errors_name_the_field(client, body, loc):
    response = client.post("/collections", json=body)
    assert response.status_code == 422
    assert _loc(response) == loc
    assert client.get("/collections/ok").status_code == 404


def test_a_bad_name_in_the_path_is_refused(client):
    response = client.get("/collections/bad.name")
    assert response.status_code == 422 and _loc(response) == ["path", "name"]


def test_add_get_delete(client, name, rng):
    codes = _codes(rng, 6)
    added = client.post(f"/collections/{name}/items",
                        json={"codes": b64(codes[:4]), "payloads": [{"i": i} for i in range(4)]})
    assert added.json() == {"ids": [0, 1, 2, 3]}
    explicit = client.post(f"/collections/{name}/items", json={"codes": b64(codes[4:]), "ids": [100, 50]})
    assert explicit.json() == {"ids": [100, 50]}
    assert client.post(f"/collections/{name}/items", json={"codes": b64(codes[:1])}).json() == {"ids": [101]}
    item = client.get(f"/collections/{name}/items/2").json()
    assert item == {"id": 2, "code": b64(codes[2:3])[0], "payload": {"i": 2}}
    assert client.get(f"/collections/{name}/items/50").json()["payload"] is None
    assert client.get(f"/collections/{name}/items/7").status_code == 404
    for bad in (-1, 2**63, 2**70):
        assert _loc(client.get(f"/collections/{name}/items/{bad}")) == ["path", "item_id"]
    assert client.post(f"/collections/{name}/items/delete", json={"ids": [2, 50, 999]}).json() == {"removed": 2}
    assert client.post(f"/collections/{name}/items/delete", json={"ids": [2]}).json() == {"removed": 0}
    assert client.get(f"/collections/{name}/items/2").status_code == 404
    assert client.get(f"/collections/{name}").json()["count"] == 5


@pytest.mark.parametrize("body, status, loc", [
    ({"codes": ["@@@@"]}, 422, ["body", "codes", 0]),
    ({"codes": [base64.b64encode(b"abc").decode()]}, 422, ["body", "codes", 0]),
    ({}, 422, ["body", "codes"]),
    ({"codes": [base64.b64encode(b"12345678").decode()], "inputs": [[1.0]]}, 422, ["body", "codes"]),
    ({"inputs": [[1.0, 2.0]]}, 422, ["body", "inputs"]),
    ({"codes": [base64.b64encode(b"12345678").decode()], "ids": [1, 2]}, 422, ["body", "ids"]),
    ({"codes": [base64.b64encode(b"12345678").decode()] * 2, "ids": [1, 1]}, 422, ["body", "ids"]),
    ({"codes": [base64.b64encode(b"12345678").decode()], "ids": [-1]}, 422, ["body", "ids", 0]),
    ({"codes": [base64.b64encode(b"12345678").decode()], "payloads": [{}, {}]}, 422, ["body", "payloads"]),
    ({"codes": [base64.b64encode(b"12345678").decode()], "payloads": [3]}, 422, ["body", "payloads", 0]),
    ({"codes": [base64.b64encode(b"12345678").decode()] * (MAX_BATCH + 1)}, 413, ["body", "codes"]),
])
def test_add_errors_change_nothing(client, name, body, status, loc):
    response = client.post(f"/collections/{name}/items", json=body)
    assert response.status_code == status, response.text
    assert _loc(response)[:len(loc)] == loc
    assert client.get(f"/collections/{name}").json()["count"] == 0


def test_oversized_bodies_get_413(client, name):
    response = client.post(f"/collections/{name}/items", content=b"x" * (MAX_BODY + 1),
                           headers={"content-type": "application/json"})
    assert response.status_code == 413

    def chunks():  # no content-length: the server counts what arrives
        for _ in range(MAX_BODY // 1000 + 2):
            yield b" " * 1000

    response = client.post(f"/collections/{name}/search", content=chunks(),
                           headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_payloads_must_be_strict_json(client, name):
    body = '{"codes": ["AAAAAAAAAAA="], "payloads": [{"x": NaN}]}'
    response = client.post(f"/collections/{name}/items", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422 and _loc(response) == ["body", "payloads", 0]
    assert client.get(f"/collections/{name}").json()["count"] == 0


def test_payload_indexes_are_created_listed_and_dropped(client):
    n = next(_names)
    created = client.post("/collections", json={"name": n, "nbits": 16, "payload_indexes": ["colour"]})
    assert created.status_code == 201 and created.json()["payload_indexes"] == ["colour"]
    added = client.post(f"/collections/{n}/payload_indexes", json={"field": "price"})
    assert added.status_code == 201 and added.json() == {"payload_indexes": ["colour", "price"]}
    again = client.post(f"/collections/{n}/payload_indexes", json={"field": "price"})
    assert again.status_code == 200 and again.json() == {"payload_indexes": ["colour", "price"]}
    assert client.get(f"/collections/{n}").json()["payload_indexes"] == ["colour", "price"]
    assert client.delete(f"/collections/{n}/payload_indexes/colour").json() == {"payload_indexes": ["price"]}
    missing = client.delete(f"/collections/{n}/payload_indexes/colour")
    assert missing.status_code == 404 and _loc(missing) == ["path", "field"]
    bad = client.post(f"/collections/{n}/payload_indexes", json={"field": "a'b"})
    assert bad.status_code == 422 and _loc(bad) == ["body", "field"]
    assert client.post("/collections/nope/payload_indexes", json={"field": "a"}).status_code == 404
    refused = client.post("/collections", json={"name": "ok", "nbits": 16, "payload_indexes": ["fine", "a.b"]})
    assert refused.status_code == 422 and _loc(refused) == ["body", "payload_indexes", 1]
    assert client.get("/collections/ok").status_code == 404
    client.delete(f"/collections/{n}")


def test_duplicate_ids_conflict(client, name, rng):
    client.post(f"/collections/{name}/items", json={"codes": b64(_codes(rng, 1)), "ids": [5]})
    response = client.post(f"/collections/{name}/items", json={"codes": b64(_codes(rng, 2)), "ids": [6, 5]})
    assert response.status_code == 409 and _loc(response) == ["body", "ids"]
    assert client.get(f"/collections/{name}/items/6").status_code == 404


def test_unknown_collection_is_404(client):
    assert client.post("/collections/nope/items", json={"codes": []}).status_code == 404
    assert client.post("/collections/nope/search", json={"codes": [], "k": 1}).status_code == 404
    assert client.get("/collections/nope/items/1").status_code == 404


@pytest.mark.parametrize("kind, indexed", [("flat", []), ("mih", []), ("flat", ["colour", "price", "tag"])])
def test_search_equals_the_core(client, rng, kind, indexed):
    n = next(_names)
    client.post("/collections", json={"name": n, "nbits": 32, "index": kind, "payload_indexes": indexed})
    codes = rng.integers(0, 4, size=(300, 4), dtype=np.uint8)  # many ties
    payloads = [{"colour": i % 3, "price": float(i), "tag": ["a", "b"][i % 2]} for i in range(300)]
    for start in range(0, 300, MAX_BATCH):
        client.post(f"/collections/{n}/items",
                    json={"codes": b64(codes[start:start + MAX_BATCH]), "payloads": payloads[start:start + MAX_BATCH]})
    oracle = de.FlatIndex(32)
    oracle.add(codes)
    queries = rng.integers(0, 4, size=(5, 4), dtype=np.uint8)

    got = client.post(f"/collections/{n}/search", json={"codes": b64(queries), "k": 12}).json()["results"]
    D, I = oracle.search(queries, 12)
    assert [r["ids"] for r in got] == I.tolist()
    assert [r["distances"] for r in got] == D.tolist()

    got = client.post(f"/collections/{n}/search", json={"codes": b64(queries), "radius": 2}).json()["results"]
    lims, D, I = oracle.range_search(queries, 2)
    for q, r in enumerate(got):
        assert r["ids"] == I[lims[q]:lims[q + 1]].tolist()
        assert r["distances"] == D[lims[q]:lims[q + 1]].tolist()

    spec = {"colour": {"in": [0, 2]}, "price": {"gte": 10, "lt": 250}, "tag": "a"}
    allowed = [i for i, p in enumerate(payloads) if p["colour"] in (0, 2) and 10 <= p["price"] < 250 and p["tag"] == "a"]
    got = client.post(f"/collections/{n}/search",
                      json={"codes": b64(queries), "k": 500, "filter": spec, "with_payload": True}).json()["results"]
    D, I = oracle.search(queries, 500, allow=np.asarray(allowed, np.int64))
    for q, r in enumerate(got):
        keep = I[q] >= 0
        assert r["ids"] == I[q][keep].tolist() and len(r["ids"]) == len(allowed)
        assert r["distances"] == D[q][keep].tolist()
        assert r["payloads"] == [payloads[i] for i in r["ids"]]
    client.delete(f"/collections/{n}")


def test_range_searches_past_the_hit_cap_are_refused(client, name, rng):
    codes = _codes(rng, 90)
    client.post(f"/collections/{name}/items", json={"codes": b64(codes), "payloads": [{"i": i} for i in range(90)]})
    queries = b64(_codes(rng, 12))  # radius 64: every item, 12 x 90 = 1,080 hits
    assert 12 * 90 > MAX_RANGE_HITS

    refused = client.post(f"/collections/{name}/search", json={"codes": queries, "radius": 64})
    assert refused.status_code == 422 and _loc(refused) == ["body", "radius"]
    assert f"more than {MAX_RANGE_HITS} hits" in refused.json()["detail"][0]["msg"]
    assert refused.json()["detail"][0]["type"] == "TooManyHits"
    under = client.post(f"/collections/{name}/search", json={"codes": queries[:11], "radius": 64})
    assert [len(r["ids"]) for r in under.json()["results"]] == [90] * 11
    filtered = client.post(f"/collections/{name}/search", json={"codes": queries, "radius": 64,
                                                                  "filter": {"i": {"lt": 80}}})
    assert filtered.status_code == 200 and sum(len(r["ids"]) for r in filtered.json()["results"]) == 960

    own = client.post(f"/collections/{name}/search", json={"codes": queries[:2], "radius": 64, "max_hits": 179})
    assert own.status_code == 422 and _loc(own) == ["body", "max_hits"] and "more than 179 hits" in own.text
    fits = client.post(f"/collections/{name}/search", json={"codes": queries[:2], "radius": 64, "max_hits": 180})
    assert fits.status_code == 200 and sum(len(r["ids"]) for r in fits.json()["results"]) == 180
    above = client.post(f"/collections/{name}/search", json={"codes": queries[:1], "radius": 1,
                                                               "max_hits": MAX_RANGE_HITS + 1})
    assert above.status_code == 422 and _loc(above) == ["body", "max_hits"] and str(MAX_RANGE_HITS) in above.text


@pytest.mark.parametrize("body, loc", [
    ({"k": 1}, ["body", "codes"]),
    ({"codes": [], "radius": 1, "max_hits": 0}, ["body", "max_hits"]),
    ({"codes": [], "k": 1, "radius": 1}, ["body", "k"]),
    ({"codes": []}, ["body", "k"]),
    ({"codes": [], "k": 0}, ["body", "k"]),
    ({"codes": [], "radius": -1}, ["body", "radius"]),
    ({"codes": [], "k": 10_001}, ["body", "k"]),
    ({"codes": [], "k": 1, "filter": {"a.b": 1}}, ["body", "filter", "a.b"]),
    ({"codes": [], "k": 1, "filter": {"a": {"gte": "x"}}}, ["body", "filter", "a", "gte"]),
    ({"codes": [], "k": 1, "filter": {"a": {"in": []}}}, ["body", "filter", "a", "in"]),
    ({"codes": [], "k": 1, "filter": {"a": {"near": 1}}}, ["body", "filter", "a", "near"]),
    ({"codes": ["AAAA"], "k": 1}, ["body", "codes", 0]),
])
def test_search_errors_name_the_field(client, name, body, loc):
    response = client.post(f"/collections/{name}/search", json=body)
    assert response.status_code == 422, response.text
    assert _loc(response) == loc


def test_snapshot_writes_a_file_and_metrics_count(client, server, name, rng):
    client.post(f"/collections/{name}/items", json={"codes": b64(_codes(rng, 3))})
    assert client.post(f"/collections/{name}/snapshot").json() == {"seq": 1, "ntotal": 3}
    assert (server.data / name / "snapshot-1.dhi").is_file()
    assert client.get(f"/collections/{name}").json()["snapshot_seq"] == 1
    client.post(f"/collections/{name}/search", json={"codes": b64(_codes(rng, 2)), "k": 1})
    text = client.get("/metrics").text
    assert f'deephash_collection_items{{collection="{name}"}} 3.0' in text
    assert 'route="/collections/{name}/search",status="200"' in text
    assert "deephash_http_request_seconds_bucket" in text


def test_encoder_encodes_inputs_on_the_server(client, server, rng):
    from deephash_engine.hashing import LSH

    features = rng.normal(size=(40, 12)).astype(np.float32)
    hasher = LSH(nbits=32, seed=3).fit(features)
    (server.data / "encoders").mkdir(exist_ok=True)
    hasher.save(server.data / "encoders" / "lsh.npz")
    n = next(_names)
    bad = client.post("/collections", json={"name": n, "nbits": 64, "encoder": "encoders/lsh.npz"})
    assert bad.status_code == 422 and _loc(bad) == ["body", "encoder"]
    assert client.post("/collections", json={"name": n, "nbits": 32, "encoder": "encoders/lsh.npz"}).status_code == 201
    ids = client.post(f"/collections/{n}/items", json={"inputs": features[:30].tolist()}).json()["ids"]
    codes = hasher.encode(features)
    assert client.get(f"/collections/{n}/items/7").json()["code"] == b64(codes[7:8])[0]
    by_input = client.post(f"/collections/{n}/search", json={"inputs": features[30:].tolist(), "k": 5}).json()
    by_code = client.post(f"/collections/{n}/search", json={"codes": b64(codes[30:]), "k": 5}).json()
    assert by_input == by_code and len(ids) == 30
    wrong = client.post(f"/collections/{n}/items", json={"inputs": [[1.0, 2.0]]})
    assert wrong.status_code == 422 and _loc(wrong) == ["body", "inputs"]
    client.delete(f"/collections/{n}")


def test_a_saved_feature_hasher_encodes_inputs_on_the_server(client, server, rng):
    pytest.importorskip("torch")
    from deephash_engine.deep.label_free import FeatureHasher

    features = rng.normal(size=(40, 10)).astype(np.float32)
    hasher = FeatureHasher("bihalf", 12, epochs=2, batch_size=8).fit(features)
    (server.data / "encoders").mkdir(exist_ok=True)
    hasher.save(server.data / "encoders" / "bihalf.npz")
    n = next(_names)
    assert client.post("/collections", json={"name": n, "nbits": 12, "encoder": "encoders/bihalf.npz"}).status_code == 201
    client.post(f"/collections/{n}/items", json={"inputs": features[:30].tolist()}).raise_for_status()
    codes = hasher.encode(features)
    assert client.get(f"/collections/{n}/items/4").json()["code"] == b64(codes[4:5])[0]
    by_input = client.post(f"/collections/{n}/search", json={"inputs": features[30:].tolist(), "k": 5}).json()
    by_code = client.post(f"/collections/{n}/search", json={"codes": b64(codes[30:]), "k": 5}).json()
    assert by_input == by_code
    for junk in (b"not an archive", b"PK\x03\x04" + bytes(60)):  # the second a broken zip
        (server.data / "encoders" / "junk.npz").write_bytes(junk)
        bad = client.post("/collections", json={"name": next(_names), "nbits": 12, "encoder": "encoders/junk.npz"})
        assert bad.status_code == 422 and _loc(bad) == ["body", "encoder"], bad.text
    client.delete(f"/collections/{n}")


@pytest.mark.parametrize("kind", ["flat", "mih"])
def test_a_12_bit_collection_stores_2_bytes_and_refuses_padding_bits(client, rng, kind):
    n = next(_names)
    assert client.post("/collections", json={"name": n, "nbits": 12, "index": kind}).status_code == 201
    codes = rng.integers(0, 256, size=(40, 2), dtype=np.uint8)
    codes[:, 1] &= 0x0F  # bits 12..15 are padding: zero
    assert client.post(f"/collections/{n}/items", json={"codes": b64(codes)}).json()["ids"] == list(range(40))
    oracle = de.FlatIndex(12)
    oracle.add(codes)
    got = client.post(f"/collections/{n}/search", json={"codes": b64(codes[:3]), "k": 5}).json()["results"]
    D, I = oracle.search(codes[:3], 5)
    assert [r["ids"] for r in got] == I.tolist()
    assert [r["distances"] for r in got] == D.tolist()
    bad = codes[:3].copy()
    bad[2, 1] |= 0x40  # bit 14
    for path, body in ((f"/collections/{n}/items", {"codes": b64(bad)}),
                       (f"/collections/{n}/search", {"codes": b64(bad), "k": 1})):
        response = client.post(path, json=body)
        assert response.status_code == 422 and _loc(response) == ["body", "codes", 2]
        assert "padding bit 14" in response.text
    assert client.get(f"/collections/{n}").json()["count"] == 40
    client.delete(f"/collections/{n}")
