"""The search route's two per-request loops in the core: the answer's JSON (``_hits_json``) must
parse to what json.dumps of the same hits gives, for any ids (up to 2**63 - 1), empty answers and
payloads; the codes' decoder (``_decode_codes``) must equal Python's base64 on every canonical
code and refuse (None) everything else, so the route's own loop can say what is wrong."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from deephash_engine._codes import padding_mask
from deephash_engine._core import _decode_codes, _hits_json
from deephash_engine.serve.app import _results_json
from deephash_engine.serve.store import Hits


def test_results_json_equals_json_dumps(rng):
    lims = np.array([0, 3, 3, 4, 9, 9])  # empty answers first, in the middle and last
    ids = rng.integers(0, 2**63 - 1, size=9, dtype=np.int64)
    ids[:3] = [0, 9, 2**63 - 1]
    distances = rng.integers(0, 65, size=9).astype(np.int32)
    payloads = [json.dumps({"i": i, "s": "é\"x"}) if i % 3 else None for i in range(9)]
    for with_payload in (False, True):
        hits = Hits(lims, ids, distances, payloads if with_payload else None)
        want = [{"ids": ids[lo:hi].tolist(), "distances": distances[lo:hi].tolist()} for lo, hi in zip(lims, lims[1:])]
        if with_payload:
            for entry, (lo, hi) in zip(want, zip(lims, lims[1:])):
                entry["payloads"] = [None if p is None else json.loads(p) for p in payloads[lo:hi]]
        assert json.loads(_results_json(hits)) == {"results": want}
        assert [r.__dict__ for r in hits.results()] == [{**w, "payloads": w.get("payloads")} for w in want]
    assert json.loads(_results_json(Hits(np.zeros(1, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int32)))) == \
        {"results": []}


def test_results_json_of_many_queries_equals_json_dumps(rng):
    counts = rng.integers(0, 20, size=300)
    lims = np.concatenate(([0], np.cumsum(counts)))
    ids = rng.integers(0, 10**12, size=int(lims[-1]), dtype=np.int64)
    distances = rng.integers(0, 1025, size=int(lims[-1])).astype(np.int32)
    want = {"results": [{"ids": ids[lo:hi].tolist(), "distances": distances[lo:hi].tolist()}
                        for lo, hi in zip(lims, lims[1:])]}
    assert _hits_json(lims, ids, distances) == json.dumps(want, separators=(",", ":")).encode()


@pytest.mark.parametrize("lims, ids, distances, payloads, message", [
    ([], [], [], None, "at least one offset"),
    ([0, 2], [1, 2], [1], None, "differ in length"),
    ([0, 1], [1, 2], [1, 2], None, r"from 0 to the number of hits \(2\), got 0 to 1"),
    ([1, 2], [1, 2], [1, 2], None, r"from 0 to the number of hits \(2\), got 1 to 2"),
    ([0, 2, 1, 2], [1, 2], [1, 2], None, "must not decrease, got 2 then 1 at query 1"),
    ([0, 2], [1, 2], [1, 2], ["{}"], "one entry per hit"),
])
def test_hits_json_refuses_inconsistent_hits(lims, ids, distances, payloads, message):
    with pytest.raises(ValueError, match=message):
        _hits_json(np.asarray(lims, np.int64), np.asarray(ids, np.int64), np.asarray(distances, np.int64), payloads)
    with pytest.raises(TypeError, match=r"payloads\[0\]: expected a JSON text \(str\) or None, got dict"):
        _hits_json(np.array([0, 1]), np.array([1]), np.array([1]), [{"not": "text"}])


@pytest.mark.parametrize("nbits", [1, 7, 8, 12, 16, 24, 32, 40, 64, 100, 128, 256, 1024])
def test_decode_codes_equals_base64(rng, nbits):
    size = (nbits + 7) // 8
    codes = rng.integers(0, 256, size=(50, size), dtype=np.uint8)
    codes[:, -1] &= ~np.uint8(padding_mask(nbits))
    texts = [base64.b64encode(row.tobytes()).decode("ascii") for row in codes]
    got = _decode_codes(texts, size, padding_mask(nbits))
    assert got.dtype == np.uint8 and got.shape == (50, size) and np.array_equal(got, codes)
    assert _decode_codes([], size, 0).shape == (0, size)


def test_decode_codes_refuses_what_is_not_a_canonical_code():
    good = base64.b64encode(bytes([1, 2, 3, 4, 5, 6, 7, 8])).decode()  # 12 characters, one '='
    assert _decode_codes([good], 8, 0) is not None
    for bad in [good[:-1], good + "=", good.replace("=", "A"), "!" + good[1:], good[:-2] + "B=",  # tail bits set
                base64.b64encode(bytes(7)).decode(), base64.b64encode(bytes(9)).decode(), "", " " + good[1:]]:
        assert _decode_codes([good, bad], 8, 0) is None, bad
    assert _decode_codes([good, b"bytes"], 8, 0) is None
    assert _decode_codes([good, 3], 8, 0) is None
    assert _decode_codes([good, "\ud800"], 8, 0) is None  # not encodable: refused, no exception left set
    padded = base64.b64encode(bytes([0, 16])).decode()  # 12-bit codes: the high 4 bits of byte 2 are padding
    assert _decode_codes([padded], 2, padding_mask(12)) is None
    assert _decode_codes([base64.b64encode(bytes([0, 15])).decode()], 2, padding_mask(12)) is not None
    with pytest.raises(ValueError, match="code_size"):
        _decode_codes([good], 0, 0)
