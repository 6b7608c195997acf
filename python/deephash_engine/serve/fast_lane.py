"""The search route's fast lane: plain k-NN searches of codes answered below FastAPI.

A search of 100 queries in a million MIH codes takes 1.2-1.5 ms in the core; FastAPI's request
machinery (routing, dependency solving, body validation, the response path) and the hand-off to a
worker thread and back added as much again on a 2-core machine. The most common request, a
batch of codes, ``k``, and nothing else, needs none of it: :class:`FastLane` recognises it from
the raw body and answers it directly. Every other request, and any plain one with something
wrong in it (a bad code, an unknown collection, k past the limit), goes the ordinary way, so its
answer or error is exactly the route's; a search is read-only, so answering it there again after
a failed attempt here is safe.

A fast-lane search runs on the event loop itself when no other request is in flight, its
collection's recent searches with the same k predict it under ``inline_search_ms`` and no write
holds the collection: handing it to a worker thread costs two thread wake-ups (the worker's, then
the loop's), 0.2-0.5 ms on a virtual machine, more than a search of a few queries. Otherwise it
goes to a worker thread as every other route does, so the loop stays free to read and answer the
other requests meanwhile.
"""

from __future__ import annotations

import json
import re
import time
import weakref
from typing import Any, Callable, Optional

import numpy as np
from fastapi.concurrency import run_in_threadpool

from .._codes import padding_mask
from .._core import _decode_codes
from .store import Collection, Store, StoreError

SEARCH_ROUTE = "/collections/{name}/search"
_SEARCH_PATH = re.compile(r"/collections/([A-Za-z0-9][A-Za-z0-9_-]{0,63})/search")
# fields of the search body that a plain request may carry only as their defaults
_DEFAULTS = {"inputs": None, "radius": None, "max_hits": None, "filter": None, "with_payload": False}


def _plain(body: bytes) -> Optional[tuple[list, int]]:
    """(codes, k) of a JSON body holding codes, k and at most the other fields at their defaults;
    None for anything else."""
    try:
        request = json.loads(body)
    except ValueError:
        return None
    if not isinstance(request, dict):
        return None
    codes, k = request.get("codes"), request.get("k")
    if type(codes) is not list or type(k) is not int or k < 1:
        return None
    for key, value in request.items():
        if key not in ("codes", "k") and (key not in _DEFAULTS or value is not _DEFAULTS[key]):
            return None
    return codes, k


class FastLane:
    """Answers plain k-NN searches of codes (see the module's text) with ``respond(col, queries,
    k) -> bytes``, the same function the route answers them with; ``note("loop" | "thread")``
    after each answer says where it ran."""

    def __init__(self, store: Store, respond: Callable[[Collection, np.ndarray, int], bytes],
                 max_batch: int, max_k: int, inline_search_ms: float,
                 note: Callable[[str], None] = lambda ran_on: None):
        self.store, self.respond, self.note = store, respond, note
        self.max_batch, self.max_k = max_batch, max_k
        self.budget = inline_search_ms / 1e3
        # seconds per query of recent searches, per collection and k (a moving average)
        self.cost: weakref.WeakKeyDictionary[Collection, dict[int, float]] = weakref.WeakKeyDictionary()

    async def answer(self, scope: dict[str, Any], body: bytes, alone: bool = True) -> Optional[bytes]:
        """The answer's JSON to a plain search request, or None: the route is to answer it.
        ``alone``: no other request is in flight (a search may then run on the loop)."""
        if scope["method"] != "POST":
            return None
        match = _SEARCH_PATH.fullmatch(scope["path"])
        if match is None or not self._json(scope):
            return None
        plain = _plain(body)
        if plain is None:
            return None
        codes, k = plain
        if len(codes) > self.max_batch or k > self.max_k:
            return None
        try:
            col = self.store.get(match.group(1))
        except StoreError:
            return None
        queries = _decode_codes(codes, col.code_size, padding_mask(col.nbits))
        if queries is None:
            return None
        try:
            if alone and self._inline(col, k, len(queries)):
                out, ran_on = self._timed(col, queries, k), "loop"
            else:
                out, ran_on = await run_in_threadpool(self._timed, col, queries, k), "thread"
        except Exception:  # e.g. the collection dropped meanwhile: the route says what happened
            return None
        self.note(ran_on)
        return out

    @staticmethod
    def _json(scope: dict[str, Any]) -> bool:
        for name, value in scope["headers"]:
            if name == b"content-type":
                return value.split(b";")[0].strip().lower() == b"application/json"
        return False

    def _inline(self, col: Collection, k: int, nq: int) -> bool:
        per_query = self.cost.get(col, {}).get(k)
        return per_query is not None and per_query * nq <= self.budget and not col.writing

    def _timed(self, col: Collection, queries: np.ndarray, k: int) -> bytes:
        started = time.perf_counter()
        out = self.respond(col, queries, k)
        per_query = (time.perf_counter() - started) / max(1, len(queries))
        costs = self.cost.setdefault(col, {})
        if len(costs) >= 64 and k not in costs:  # many distinct k: keep the memory bounded
            costs.clear()
        last = costs.get(k)
        costs[k] = per_query if last is None else 0.8 * last + 0.2 * per_query
        return out
