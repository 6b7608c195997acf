"""Beyond one process: a sharded index whose shards are held by Ray actors (see sharded.py and
docs/scale.md). Needs Ray (``pip install 'deephash-engine[distributed]'``) and a connected Ray
cluster (``ray.init()`` starts a local one)."""

from .manifest import Manifest, ShardChecksumError, ShardEntry
from .sharded import ShardedIndex, merge_knn, merge_range, near_duplicates

__all__ = ["Manifest", "ShardChecksumError", "ShardEntry", "ShardedIndex", "merge_knn", "merge_range",
           "near_duplicates"]
