"""Durable collections: SQLite is the source of truth, the engine index a cache of it.

One folder per collection under the data folder::

    DIR/<name>/items.sqlite        items (id, code, payload, seq), deletions (id, seq), meta
    DIR/<name>/snapshot-<seq>.dhi  the index as of write sequence <seq> (atomic ``save``)

Every write (a batch of adds, a batch of deletes) is one SQLite transaction (WAL journal,
``synchronous=FULL``) that bumps the collection's write sequence; it is applied to the in-memory
index only after the commit, so an acknowledged write is on disk. On open, the index is the newest
snapshot that loads, then the deletions and the items whose sequence is past the snapshot's
(the sequence is in the snapshot's file name, so file and high-water mark can never disagree).

Writes are serialised per collection by a lock; searches take no lock of ours (the core's
reader-writer lock orders them against adds and removes, and releases the GIL).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import numpy as np

import deephash_engine as de

from .._codes import code_size_for

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
FIELD_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
INDEX_KINDS = ("flat", "mih")
RANGE_OPERATORS = {"gte": ">=", "gt": ">", "lte": "<=", "lt": "<"}
PAYLOAD_INDEX_PREFIX = "payload__"  # + the field: the SQLite name of a payload index
_SNAPSHOT = re.compile(r"^snapshot-(\d+)\.dhi$")
_SNAPSHOT_LEFTOVER = re.compile(r"^snapshot-\d+\.dhi\.tmp-[0-9-]+$")  # a save cut short by a crash

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY, code BLOB NOT NULL, payload TEXT, seq INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS items_seq ON items (seq);
CREATE TABLE IF NOT EXISTS deletions (id INTEGER NOT NULL, seq INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS deletions_seq ON deletions (seq);
"""


class StoreError(Exception):
    """A request the store refuses; ``field`` names the part of the request at fault."""

    status = 422

    def __init__(self, field: Sequence[Any], message: str):
        super().__init__(message)
        self.field = list(field)
        self.message = message


class NotFound(StoreError):
    status = 404


class Conflict(StoreError):
    status = 409


class TooManyHits(StoreError):
    """A range search whose answer would pass its cap (``max_hits`` or the server's limit)."""


def check_name(name: str) -> str:
    """A collection name is also a folder name: letters, digits, '_' and '-', at most 64, never
    '.', '..' or anything with a separator."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise StoreError(["name"], f"collection name must match {NAME_PATTERN.pattern}, got {name!r}")
    return name


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


def _new_index(kind: str, nbits: int) -> de.BinaryIndex:
    return de.FlatIndex(nbits) if kind == "flat" else de.MIHIndex(nbits)


def payload_expression(field: str) -> str:
    """The SQL of a payload field's value. Filters and payload indexes both use this text (the
    path a literal, not a parameter): SQLite uses an expression index only for a term whose
    expression is the indexed one. ``field`` must match FIELD_PATTERN (checked by the callers), so
    it cannot close the quoted path."""
    return f"json_extract(payload, '$.{field}')"


def check_field(where: list, field: Any) -> str:
    if not isinstance(field, str) or not FIELD_PATTERN.fullmatch(field):
        raise StoreError(where, f"field names must match {FIELD_PATTERN.pattern}, got {field!r}")
    return field


def compile_filter(spec: Optional[dict]) -> tuple[str, list[Any]]:
    """A payload filter as an SQL condition on ``items.payload`` and its parameters. Every field
    must hold: ``{"f": v}`` equality, ``{"f": {"in": [..]}}`` membership, ``{"f": {"gte": a,
    "lt": b}}`` numeric bounds (any of gte, gt, lte, lt)."""
    if not spec:
        return "1", []
    if not isinstance(spec, dict):
        raise StoreError(["filter"], f"a filter is an object of payload fields, got {type(spec).__name__}")
    terms, params = [], []
    for field, cond in spec.items():
        where = ["filter", field]
        value_of = payload_expression(check_field(where, field))
        if not isinstance(cond, dict):
            _check_scalar(where, cond)
            if cond is None:  # present and null (an absent field is NULL too; json_type tells them apart)
                terms.append(f"{value_of} IS NULL AND json_type(payload, '$.{field}') = 'null'")
            else:
                terms.append(f"{value_of} = ?")
                params.append(cond)
            continue
        if not cond:
            raise StoreError(where, "an operator object needs at least one of in, gte, gt, lte, lt")
        for op, value in cond.items():
            if op == "in":
                if not isinstance(value, list) or not value:
                    raise StoreError(where + ["in"], "'in' takes a non-empty list of values")
                for i, v in enumerate(value):
                    _check_scalar(where + ["in", i], v)
                terms.append(f"{value_of} IN ({', '.join('?' * len(value))})")
                params += value
            elif op in RANGE_OPERATORS:
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise StoreError(where + [op], f"'{op}' takes a number, got {value!r}")
                terms.append(f"{value_of} {RANGE_OPERATORS[op]} ?")
                params.append(value)
            else:
                raise StoreError(where + [op], f"unknown operator {op!r} (in, gte, gt, lte, lt)")
    return " AND ".join(terms), params


def filter_query(spec: Optional[dict]) -> tuple[str, list[Any]]:
    """The SQL that lists the ids a filter allows, and its parameters."""
    where, params = compile_filter(spec)
    return f"SELECT id FROM items WHERE {where}", params


def _check_scalar(where: list, value: Any) -> None:
    if value is not None and not isinstance(value, (str, int, float, bool)):
        raise StoreError(where, f"expected a string, number, boolean or null, got {type(value).__name__}")


@dataclass
class SearchResult:
    ids: list[int]
    distances: list[int]
    payloads: Optional[list[Any]] = None


@dataclass
class Hits:
    """The hits of a batch of queries, flat: query q's are ``ids[lims[q]:lims[q + 1]]`` with their
    ``distances``, in the core's (distance, id) order (no padding). ``payloads``, on request, holds
    each hit's payload as its stored JSON text (None: no payload), so an answer can carry it
    without parsing and writing it again."""

    lims: np.ndarray
    ids: np.ndarray
    distances: np.ndarray
    payloads: Optional[list[Optional[str]]] = None

    def __len__(self) -> int:
        return len(self.lims) - 1

    def results(self) -> list[SearchResult]:
        """One SearchResult per query, payloads parsed."""
        bounds, ids, distances = self.lims.tolist(), self.ids.tolist(), self.distances.tolist()
        out = []
        for lo, hi in zip(bounds, bounds[1:]):
            payloads = None if self.payloads is None else [
                None if text is None else json.loads(text) for text in self.payloads[lo:hi]]
            out.append(SearchResult(ids[lo:hi], distances[lo:hi], payloads))
        return out


class Collection:
    """One collection: its SQLite file, its index and its write lock."""

    def __init__(self, folder: Path, create: Optional[dict] = None):
        self.folder = folder
        self.name = folder.name
        self._lock = threading.Lock()
        self._local = threading.local()
        self._dropped = False
        self._db = _connect(folder / "items.sqlite")
        self._db.executescript(_SCHEMA)
        if create is not None:
            with self._transaction():
                for key, value in create.items():
                    self._db.execute("INSERT INTO meta VALUES (?, ?)", (key, json.dumps(value)))
                self._db.execute("INSERT INTO meta VALUES ('seq', '0'), ('next_id', '0')")
        meta = dict(self._db.execute("SELECT key, value FROM meta"))
        self.nbits = int(json.loads(meta["nbits"]))
        self.kind = json.loads(meta["index"])
        self.encoder = json.loads(meta.get("encoder", "null"))
        self.seq = int(meta["seq"])
        self.next_id = int(meta["next_id"])
        self.snapshot_seq = 0
        self.index = self._restore()

    # -- transactions and reads -------------------------------------------------------------

    def _transaction(self):
        db = self._db

        class _Tx:
            def __enter__(self_inner):
                db.execute("BEGIN IMMEDIATE")

            def __exit__(self_inner, exc_type, exc, tb):
                db.execute("COMMIT" if exc_type is None else "ROLLBACK")
                return False

        return _Tx()

    def _reader(self) -> sqlite3.Connection:
        """A connection per thread for reads, so searches never wait on the writer's."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = _connect(self.folder / "items.sqlite")
        return conn

    @property
    def code_size(self) -> int:
        return code_size_for(self.nbits)

    @property
    def writing(self) -> bool:
        """Whether a write (add, delete, merge, snapshot) holds the collection now: a search
        started meanwhile may wait for it on the core's lock."""
        return self._lock.locked()

    # -- restore and snapshots --------------------------------------------------------------

    def _snapshots(self) -> list[tuple[int, Path]]:
        found = []
        for entry in self.folder.iterdir():
            m = _SNAPSHOT.match(entry.name)
            if m:
                found.append((int(m.group(1)), entry))
        return sorted(found, reverse=True)

    def _restore(self) -> de.BinaryIndex:
        """The newest snapshot that loads (and is not ahead of the store), plus what came after."""
        for entry in self.folder.iterdir():
            if _SNAPSHOT_LEFTOVER.match(entry.name):
                entry.unlink(missing_ok=True)
        for seq, path in self._snapshots():
            if seq > self.seq:
                continue
            try:
                index = de.load_index(path)
            except (OSError, ValueError, de.DeepHashError):
                continue
            if index.nbits == self.nbits:
                self.snapshot_seq = seq
                return self._compacted(self._replay(index, seq))
        return self._compacted(self._replay(_new_index(self.kind, self.nbits), 0))

    @staticmethod
    def _compacted(index: de.BinaryIndex) -> de.BinaryIndex:
        if isinstance(index, de.MIHIndex):
            index.compact()
        return index

    def _replay(self, index: de.BinaryIndex, after: int) -> de.BinaryIndex:
        db = self._db
        gone = [row[0] for row in db.execute("SELECT DISTINCT id FROM deletions WHERE seq > ?", (after,))]
        if gone:
            index.remove_ids(np.asarray(gone, np.int64))
        ids, codes = [], []
        for item_id, code in db.execute("SELECT id, code FROM items WHERE seq > ? ORDER BY id", (after,)):
            ids.append(item_id)
            codes.append(code)
        if ids:  # an id the snapshot holds is here only if deleted (above) and added again
            block = np.frombuffer(b"".join(codes), np.uint8).reshape(len(ids), self.code_size)
            _add(index, block, ids)
        return index

    def snapshot(self) -> dict:
        """Save the index atomically under the write lock; older snapshots and the deletions they
        cover are dropped afterwards."""
        with self._lock:
            self._check_open()
            self._merge_tail(0)
            seq = self.seq
            if seq != self.snapshot_seq or not self._snapshots():
                self.index.save(self.folder / f"snapshot-{seq}.dhi")
                self.snapshot_seq = seq
                with self._transaction():
                    self._db.execute("DELETE FROM deletions WHERE seq <= ?", (seq,))
            for old_seq, path in self._snapshots():
                if old_seq != seq:
                    path.unlink(missing_ok=True)
            return {"seq": seq, "ntotal": int(self.index.ntotal)}

    def writes_since_snapshot(self) -> int:
        return self.seq - self.snapshot_seq

    # -- writes ------------------------------------------------------------------------------

    def add(self, codes: np.ndarray, ids: Optional[Sequence[int]], payloads: Optional[Sequence[Any]]) -> list[int]:
        n = codes.shape[0]
        texts = [None] * n if payloads is None else [_payload_text(row, p) for row, p in enumerate(payloads)]
        with self._lock:
            self._check_open()
            if ids is None:
                new_ids = list(range(self.next_id, self.next_id + n))
            else:
                new_ids = [int(i) for i in ids]
                taken = self._existing(new_ids)
                if taken:
                    raise Conflict(["ids"], f"ids already present: {taken[:10]}")
            seq = self.seq + 1
            next_id = max([self.next_id] + [i + 1 for i in new_ids])
            rows = [
                (item_id, codes[row].tobytes(), texts[row], seq) for row, item_id in enumerate(new_ids)
            ]
            with self._transaction():
                self._db.executemany("INSERT INTO items VALUES (?, ?, ?, ?)", rows)
                self._set_meta(seq=seq, next_id=next_id)
            self.seq, self.next_id = seq, next_id
            _add(self.index, codes, new_ids)
            self._merge_tail(max(4096, self.index.ntotal // 64))
            return new_ids

    def remove(self, ids: Sequence[int]) -> int:
        with self._lock:
            self._check_open()
            present = self._existing([int(i) for i in ids])
            if not present:
                return 0
            seq = self.seq + 1
            with self._transaction():
                self._db.executemany("DELETE FROM items WHERE id = ?", [(i,) for i in present])
                self._db.executemany("INSERT INTO deletions VALUES (?, ?)", [(i, seq) for i in present])
                self._set_meta(seq=seq)
            self.seq = seq
            self.index.remove_ids(np.asarray(present, np.int64))
            return len(present)

    def _merge_tail(self, limit: int) -> None:
        """MIHIndex scans the items added since its tables were built linearly, and merges them
        only past an eighth of the collection: at 1M codes a tail of 1% already makes a batch
        search ~2x slower. The service merges it past 1/64 at once, and any tail within a
        second (:meth:`merge_tail`; a rebuild is ~80 ms per 1M 64-bit codes)."""
        if isinstance(self.index, de.MIHIndex) and self.index.tail_size > limit:
            self.index.compact()

    def merge_tail(self) -> None:
        """Merge an MIH tail now (the background maintenance calls this every second)."""
        with self._lock:
            if not self._dropped:
                self._merge_tail(0)

    def _check_open(self) -> None:
        """A write that queued on the lock while the collection was dropped finds it gone."""
        if self._dropped:
            raise NotFound(["path", "name"], f"collection {self.name!r} was dropped")

    def _set_meta(self, **values: int) -> None:
        self._db.executemany("UPDATE meta SET value = ? WHERE key = ?", [(str(v), k) for k, v in values.items()])

    def _existing(self, ids: list[int]) -> list[int]:
        found: list[int] = []
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            found += [row[0] for row in self._db.execute(
                f"SELECT id FROM items WHERE id IN ({', '.join('?' * len(chunk))})", chunk)]
        return sorted(set(found))

    # -- payload indexes ---------------------------------------------------------------------

    def payload_indexes(self) -> list[str]:
        """The payload fields with an index: SQLite's schema is the record (no copy to disagree)."""
        rows = self._db.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'items'")
        return sorted(name[len(PAYLOAD_INDEX_PREFIX):] for (name,) in rows if name.startswith(PAYLOAD_INDEX_PREFIX))

    def create_payload_index(self, field: str) -> bool:
        """An SQLite expression index on the field's value (:func:`payload_expression`), so a
        filter on it reads only the matching rows instead of parsing every payload; False when
        it exists already. Built under the write lock (a few seconds per million items)."""
        check_field(["field"], field)
        with self._lock:
            self._check_open()
            if field in self.payload_indexes():
                return False
            self._db.execute(f"CREATE INDEX {PAYLOAD_INDEX_PREFIX}{field} ON items ({payload_expression(field)})")
            return True

    def drop_payload_index(self, field: str) -> None:
        check_field(["field"], field)
        with self._lock:
            self._check_open()
            if field not in self.payload_indexes():
                raise NotFound(["field"], f"no payload index on {field!r} in collection {self.name!r}")
            self._db.execute(f"DROP INDEX {PAYLOAD_INDEX_PREFIX}{field}")

    # -- reads -------------------------------------------------------------------------------

    def get(self, item_id: int) -> dict:
        row = self._reader().execute("SELECT code, payload FROM items WHERE id = ?", (item_id,)).fetchone()
        if row is None:
            raise NotFound(["id"], f"no item with id {item_id} in collection {self.name!r}")
        return {"id": item_id, "code": row[0], "payload": None if row[1] is None else json.loads(row[1])}

    def allowed_ids(self, spec: Optional[dict]) -> Optional[np.ndarray]:
        if not spec:
            return None
        rows = self._reader().execute(*filter_query(spec)).fetchall()
        return np.fromiter((r[0] for r in rows), np.int64, len(rows))

    def payload_texts(self, ids: Iterable[int]) -> dict[int, Optional[str]]:
        """The stored JSON text of each item's payload (None: none), by id."""
        ids = list(set(ids))
        out: dict[int, Optional[str]] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            out.update(self._reader().execute(
                f"SELECT id, payload FROM items WHERE id IN ({', '.join('?' * len(chunk))})", chunk))
        return out

    def search(self, queries: np.ndarray, k: Optional[int], radius: Optional[int],
               spec: Optional[dict], with_payload: bool, max_hits: int = 2**62,
               cap_field: Sequence[str] = ("radius",)) -> Hits:
        """k-NN (``k``) or range (``radius``) search under the payload filter ``spec``. A range
        search answering more than ``max_hits`` hits over all its queries raises
        :class:`TooManyHits` naming ``cap_field``."""
        allow = self.allowed_ids(spec)
        if k is not None:
            distances, labels = self.index.search(queries, k, allow=allow)
            if labels.size and labels[:, -1].min() >= 0:  # every row full (padding, id -1, comes last)
                hits = Hits(np.arange(0, labels.size + 1, labels.shape[1]), labels.ravel(), distances.ravel())
            else:
                keep = labels >= 0
                lims = np.concatenate(([0], np.cumsum(keep.sum(axis=1))))
                hits = Hits(lims, labels[keep], distances[keep])
        else:
            lims, ids, dists, total = [np.zeros(1, np.int64)], [], [], 0
            for chunk_lims, chunk_distances, chunk_labels in self._range_chunks(queries, radius, allow, max_hits,
                                                                               list(cap_field)):
                lims.append(np.asarray(chunk_lims[1:], np.int64) + total)
                ids.append(chunk_labels)
                dists.append(chunk_distances)
                total += len(chunk_labels)
            hits = Hits(np.concatenate(lims), np.concatenate(ids) if ids else np.zeros(0, np.int64),
                        np.concatenate(dists) if dists else np.zeros(0, np.int32))
        if with_payload:
            ids = hits.ids.tolist()
            texts = self.payload_texts(ids)
            hits.payloads = [texts.get(i) for i in ids]  # an item deleted meanwhile: no payload
        return hits

    def _range_chunks(self, queries: np.ndarray, radius: int, allow: Optional[np.ndarray], max_hits: int,
                      cap_field: list) -> Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """``range_search`` over consecutive chunks of the queries, stopping as soon as the hits
        pass ``max_hits``: a large radius over a large collection must not build millions of
        hits before being refused. A chunk is as large as the cap allows even if every query
        matched every allowed item, and grows (doubling) while the queries seen so far match
        few, so a batch of ordinary queries takes a few calls and the memory held past the cap
        is at most one chunk's."""
        nq = queries.shape[0]
        population = int(self.index.ntotal) if allow is None else len(allow)
        if allow is not None and nq > 1:
            allow = de.IdSelector(allow)  # built once for every chunk
        total, start, step, densest = 0, 0, max(1, max_hits // max(1, population)), 0
        while start < nq:
            lims, distances, labels = self.index.range_search(queries[start:start + step], radius, allow=allow)
            total += len(labels)
            if total > max_hits:
                raise TooManyHits(cap_field, f"the range search found more than {max_hits} hits "
                                             f"({total} in its first {start + len(lims) - 1} queries); lower the "
                                             f"radius, add a filter, send fewer queries, or search with k")
            yield lims, distances, labels
            start += len(lims) - 1
            densest = max(densest, int(np.diff(lims).max(initial=0)))
            left = max_hits - total
            grown = 2 * step if densest == 0 else min(2 * step, left // (2 * densest))
            step = max(1, left // max(1, population), grown)

    def describe(self) -> dict:
        index = self.index
        info: dict[str, Any] = {
            "name": self.name, "nbits": self.nbits, "index": self.kind, "encoder": self.encoder,
            "count": int(index.ntotal), "next_id": self.next_id, "seq": self.seq,
            "snapshot_seq": self.snapshot_seq, "payload_indexes": self.payload_indexes(),
        }
        if isinstance(index, de.MIHIndex):
            info["memory_bytes"] = int(index.memory_usage())
            info["index_stats"] = {"m": index.m, "tombstones": index.tombstones, **index.stats()}
        else:
            info["memory_bytes"] = int(index.ntotal) * self.code_size
            info["index_stats"] = {}
        return info

    def close(self) -> None:
        self._db.close()


def _payload_text(row: int, payload: Any) -> Optional[str]:
    """A payload as strict JSON: SQLite's JSON functions reject NaN and infinities (a filter over
    such a row, or a payload index, would fail on it), so they are refused here."""
    if payload is None:
        return None
    try:
        return json.dumps(payload, allow_nan=False)
    except ValueError:
        raise StoreError(["payloads", row], "payloads are JSON: NaN and infinities are not allowed") from None


def _add(index: de.BinaryIndex, codes: np.ndarray, ids: list[int]) -> None:
    """``add`` when the ids are the ones it would assign (a FlatIndex then keeps its storage in id
    order, which its scan's tie handling is fastest with: up to ~10% at k = 100; a MIHIndex
    sorts its codes either way), ``add_with_ids`` otherwise."""
    start = int(index.next_id)
    if ids == list(range(start, start + len(ids))):
        index.add(codes)
    else:
        index.add_with_ids(codes, np.asarray(ids, np.int64))


class Store:
    """Every collection under one data folder."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._collections: dict[str, Collection] = {}
        for entry in sorted(self.root.iterdir()):
            if entry.is_dir() and NAME_PATTERN.match(entry.name) and (entry / "items.sqlite").exists():
                self._collections[entry.name] = Collection(entry)

    def _folder(self, name: str) -> Path:
        folder = (self.root / check_name(name)).resolve()
        if folder.parent != self.root:  # belt and braces: the pattern already forbids this
            raise StoreError(["name"], f"collection name {name!r} leaves the data folder")
        return folder

    def create(self, name: str, nbits: int, index: str, encoder: Optional[str] = None,
               payload_indexes: Sequence[str] = ()) -> Collection:
        folder = self._folder(name)
        for i, field in enumerate(payload_indexes):
            check_field(["payload_indexes", i], field)
        if nbits <= 0:
            raise StoreError(["nbits"], f"nbits must be a positive number of bits, got {nbits}")
        if index not in INDEX_KINDS:
            raise StoreError(["index"], f"index must be one of {INDEX_KINDS}, got {index!r}")
        with self._lock:
            if name in self._collections:
                raise Conflict(["name"], f"collection {name!r} already exists")
            folder.mkdir()
            try:
                collection = Collection(folder, {"nbits": nbits, "index": index, "encoder": encoder})
                for field in payload_indexes:
                    collection.create_payload_index(field)
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)
                raise
            self._collections[name] = collection
            return collection

    def get(self, name: str) -> Collection:
        check_name(name)
        try:
            return self._collections[name]
        except KeyError:
            raise NotFound(["name"], f"no collection named {name!r}") from None

    def names(self) -> list[str]:
        return sorted(self._collections)

    def collections(self) -> list[Collection]:
        return [self._collections[n] for n in self.names()]

    def drop(self, name: str) -> None:
        folder = self._folder(name)
        with self._lock:
            collection = self.get(name)
            with collection._lock:
                del self._collections[name]
                collection._dropped = True
                collection.close()
                shutil.rmtree(folder)

    def merge_tails(self) -> None:
        for collection in self.collections():
            collection.merge_tail()

    def snapshot_all(self, min_writes: int = 1) -> None:
        for collection in self.collections():
            if collection.writes_since_snapshot() >= min_writes:
                try:
                    collection.snapshot()
                except NotFound:  # dropped meanwhile
                    pass

    def close(self) -> None:
        for collection in self.collections():
            collection.close()
