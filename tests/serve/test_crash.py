"""Crash safety: acknowledged writes survive SIGKILL, an unacknowledged one is all there or absent,
and the restarted server answers as a FlatIndex rebuilt from the acknowledged writes."""

from __future__ import annotations

import threading
import time

import httpx
import numpy as np
import pytest
from http_service import Server, b64

import deephash_engine as de

NBITS = 64


class Writer:
    """Streams adds (caller ids, payloads) and deletes until the server dies; keeps the state the
    acknowledged writes define, and the one write in flight when the connection broke."""

    def __init__(self, url: str, seed: int):
        self.url = url
        self.rng = np.random.default_rng(seed)
        self.items: dict[int, tuple[np.ndarray, dict]] = {}
        self.acknowledged = 0
        self.in_flight: tuple[str, list[int], np.ndarray | None] | None = None
        self.next_id = 0

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10.0) as c:
            try:
                while True:
                    self._one(c)
            except httpx.TransportError:
                return

    def _one(self, c: httpx.Client) -> None:
        if self.items and self.rng.random() < 0.3:
            live = sorted(self.items)
            ids = self.rng.choice(live, size=min(len(live), int(self.rng.integers(1, 6))), replace=False).tolist()
            self.in_flight = ("delete", ids, None)
            response = c.post("/collections/c/items/delete", json={"ids": ids})
            assert response.json() == {"removed": len(ids)}
            for i in ids:
                del self.items[i]
        else:
            n = int(self.rng.integers(1, 20))
            ids = list(range(self.next_id, self.next_id + n))
            self.next_id += n
            codes = self.rng.integers(0, 256, size=(n, NBITS // 8), dtype=np.uint8)
            self.in_flight = ("add", ids, codes)
            payloads = [{"id": i, "even": i % 2 == 0} for i in ids]
            response = c.post("/collections/c/items", json={"codes": b64(codes), "ids": ids, "payloads": payloads})
            assert response.json() == {"ids": ids}
            self.items.update({i: (codes[j], payloads[j]) for j, i in enumerate(ids)})
        self.in_flight = None
        self.acknowledged += 1


def _flat(items: dict[int, tuple[np.ndarray, dict]]) -> de.FlatIndex:
    index = de.FlatIndex(NBITS)
    ids = sorted(items)
    if ids:
        index.add_with_ids(np.stack([items[i][0] for i in ids]), np.asarray(ids, np.int64))
    return index


@pytest.mark.parametrize("kind", ["flat", "mih"])
def test_acknowledged_writes_survive_sigkill(tmp_path, kind):
    data = tmp_path / "data"
    server = Server(data, snapshot_interval=0.3)  # background snapshots race with the stream
    try:
        with server.client() as c:
            assert c.post("/collections", json={"name": "c", "nbits": NBITS, "index": kind}).status_code == 201
        writer = Writer(server.url, seed=7)
        thread = threading.Thread(target=writer.run)
        thread.start()
        deadline = time.monotonic() + 60
        while writer.acknowledged < 150 and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        server.kill()  # SIGKILL while the writer is still sending
        thread.join(timeout=30)
        assert not thread.is_alive() and writer.acknowledged >= 150
    finally:
        server.kill()
    assert list((data / "c").glob("snapshot-*.dhi")), "no background snapshot was taken"

    restarted = Server(data)
    try:
        with restarted.client() as c:
            count = c.get("/collections/c").json()["count"]
            expected = dict(writer.items)
            if writer.in_flight is not None:  # all of it or none of it
                what, ids, codes = writer.in_flight
                present = [c.get(f"/collections/c/items/{i}").status_code == 200 for i in ids]
                assert all(present) or not any(present), (what, present)
                if what == "add" and all(present):
                    expected.update({i: (codes[j], {"id": i, "even": i % 2 == 0}) for j, i in enumerate(ids)})
                if what == "delete" and not any(present):
                    for i in ids:
                        del expected[i]
            assert count == len(expected)
            oracle = _flat(expected)
            queries = np.random.default_rng(1).integers(0, 256, size=(4, NBITS // 8), dtype=np.uint8)
            got = c.post("/collections/c/search", json={"codes": b64(queries), "k": len(expected)}).json()
            D, I = oracle.search(queries, len(expected))
            assert [r["ids"] for r in got["results"]] == I.tolist()
            assert [r["distances"] for r in got["results"]] == D.tolist()
            for i in sorted(expected)[::25]:
                item = c.get(f"/collections/c/items/{i}").json()
                assert item["code"] == b64(expected[i][0][None])[0] and item["payload"] == expected[i][1]
            even = c.post("/collections/c/search",
                          json={"codes": b64(queries[:1]), "k": len(expected), "filter": {"even": True}}).json()
            assert sorted(even["results"][0]["ids"]) == sorted(i for i in expected if i % 2 == 0)
    finally:
        restarted.stop()
