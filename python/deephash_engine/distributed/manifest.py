"""The manifest of a sharded index: one JSON file naming every shard file with its checksum and id
range, written atomically, so that a set of shard files is either the old complete set or the new.

    {"format": "deephash-sharded", "version": 1, "nbits": 64, "index": "flat",
     "next_id": 1000000, "sharding": "hash", "shards": [{"file": "shard-00000.v1.dhi",
     "sha256": "...", "ntotal": 500000, "id_min": 0, "id_max": 999998,
     "range_start": null, "range_end": null}, ...]}

Two ways to place an id (an id's shard never changes):
- ``"sharding": "hash"``: shard ``id % len(shards)``; ``range_start``/``range_end`` are null.
- ``"sharding": "range"``: the shard whose ``[range_start, range_end)`` holds the id; the ranges
  are contiguous from 0 and the last one is open (``range_end`` null), so new ids from ``add``
  (always past every id held) go to the last shard.
``id_min``/``id_max`` are the smallest and largest id the shard file holds (-1 when empty).
Manifests written before ``sharding`` existed read as hash sharded. Shard files are named with a
version that grows at every save, and the old ones are removed only after the new manifest is in
place: a crash during a save leaves the previous manifest and its files intact.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional, Union

import numpy as np

from .._atomic import atomic_write_text

FORMAT = "deephash-sharded"
VERSION = 1
_SHARD_FILE = re.compile(r"^shard-\d{5}\.v\d+\.dhi$")


class ShardChecksumError(ValueError):
    """A shard file does not match the checksum its manifest records."""


@dataclass
class ShardEntry:
    file: str
    sha256: str
    ntotal: int
    id_min: int = -1  # -1 when the shard is empty
    id_max: int = -1
    range_start: Optional[int] = None  # range sharding: the ids [range_start, range_end) live here
    range_end: Optional[int] = None  # None: no upper end (the last shard)


@dataclass
class Manifest:
    nbits: int
    index: str  # "flat" or "mih"
    next_id: int
    shards: list[ShardEntry] = field(default_factory=list)
    save_version: int = 0
    sharding: str = "hash"  # "hash" or "range"

    @property
    def nshards(self) -> int:
        return len(self.shards)

    def shard_of(self, ids: np.ndarray) -> np.ndarray:
        """The shard number of each id (ids >= 0)."""
        ids = np.asarray(ids, dtype=np.int64)
        if self.sharding == "hash":
            return ids % self.nshards
        starts = np.array([s.range_start for s in self.shards], dtype=np.int64)
        return np.searchsorted(starts, ids, side="right") - 1

    def check_ranges(self) -> None:
        """Range sharding: the ranges start at 0, follow each other and the last one is open."""
        if self.sharding == "hash":
            if any(s.range_start is not None or s.range_end is not None for s in self.shards):
                raise ValueError("hash sharding: shards must not have id ranges")
            return
        if self.sharding != "range":
            raise ValueError(f"sharding must be 'hash' or 'range', got {self.sharding!r}")
        expected: Optional[int] = 0
        for i, s in enumerate(self.shards):
            last = i == len(self.shards) - 1
            if s.range_start != expected or (s.range_end is None) != last or (
                    s.range_end is not None and s.range_end < s.range_start):
                raise ValueError(f"range sharding: shard {i} has ids [{s.range_start}, {s.range_end}); the ranges "
                                 f"must start at 0, follow each other, and only the last one is open (null end)")
            expected = s.range_end

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, "version": VERSION, **asdict(self)}, indent=2) + "\n"

    def save(self, path: Union[str, os.PathLike]) -> None:
        atomic_write_text(path, self.to_json())

    @classmethod
    def load(cls, path: Union[str, os.PathLike]) -> "Manifest":
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: not a readable sharded-index manifest: {exc}") from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"{path}: not a sharded-index manifest (format {data.get('format')!r})"
                             if isinstance(data, dict) else f"{path}: not a sharded-index manifest")
        if data.get("version") != VERSION:
            raise ValueError(f"{path}: manifest version {data.get('version')!r}; this build reads {VERSION}")
        try:
            shards = [ShardEntry(**s) for s in data["shards"]]
            manifest = cls(nbits=int(data["nbits"]), index=str(data["index"]), next_id=int(data["next_id"]),
                           shards=shards, save_version=int(data.get("save_version", 0)),
                           sharding=str(data.get("sharding", "hash")))
            manifest.check_ranges()
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: malformed manifest: {exc}") from exc
        if manifest.index not in ("flat", "mih") or not shards:
            raise ValueError(f"{path}: malformed manifest (index {manifest.index!r}, {len(shards)} shards)")
        for s in shards:  # shard files live beside the manifest, never elsewhere
            if not _SHARD_FILE.match(s.file):
                raise ValueError(f"{path}: shard file name {s.file!r} is not of the form shard-NNNNN.vN.dhi")
        return manifest


def file_sha256(path: Union[str, os.PathLike]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def range_starts(ids: np.ndarray, nshards: int) -> list[int]:
    """The first id of each shard's range for range sharding: the ids split into nshards runs of
    (nearly) equal counts, the first run starting at 0."""
    ordered = np.sort(np.asarray(ids, dtype=np.int64))
    n = len(ordered)
    return [0] + [int(ordered[s * n // nshards]) if n else 0 for s in range(1, nshards)]


def shard_file_name(shard: int, version: int) -> str:
    return f"shard-{shard:05d}.v{version}.dhi"
