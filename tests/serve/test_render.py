"""The search answer's JSON is written without json.dumps: it must parse to what json.dumps of
the same hits would give, for any ids (up to 2**63 - 1), empty answers and payloads."""

from __future__ import annotations

import json

import numpy as np

from deephash_engine.serve.app import _decimal, _results_json
from deephash_engine.serve.store import Hits


def test_decimal_writes_every_value_and_where_it_starts(rng):
    values = np.concatenate([np.array([0, 9, 10, 99, 100, 2**63 - 1, 10**18, 10**18 - 1], np.int64),
                             rng.integers(0, 2**63 - 1, size=500, dtype=np.int64),
                             rng.integers(0, 1000, size=500, dtype=np.int64)])
    text, at = _decimal(values)
    assert text == "".join(f"{v}," for v in values.tolist())
    assert [text[at[i]:at[i + 1] - 1] for i in range(len(values))] == [str(v) for v in values.tolist()]
    assert _decimal(np.zeros(0, np.int64)) == ("", np.zeros(1, np.int64))
    assert _decimal(np.array([5], np.int32))[0] == "5,"


def test_results_json_equals_json_dumps(rng):
    lims = np.array([0, 3, 3, 4, 9, 9])  # empty answers first, in the middle and last
    ids = rng.integers(0, 2**63 - 1, size=9, dtype=np.int64)
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
