"""Bulk search with Ray Data doing the streaming (``bulk_search(..., executor="ray-data")``).

The query batches flow through a Ray Data pipeline: query files are cut into slices that Ray
Data's read tasks map from disk (a Ray Dataset given by the caller is used as it is); a pool of
Ray Data actors (``ActorPoolStrategy``) takes each batch, puts it in the object store once, asks
every shard actor of the ShardedIndex and merges the answers exactly by (distance, id). Order is
preserved (``preserve_order``), so the driver writes the answers in query order as they arrive.

The default executor ('driver', bulk.py) sends the batches from the driver straight to the shard
actors, two batches in flight; docs/scale.md has the measured cost of each.
"""

from __future__ import annotations

from typing import Iterator, Optional

import numpy as np

from .. import bulk
from .sharded import ShardChecksumError, _gather, merge_knn, merge_range


class _FanOut:
    """A Ray Data actor: one query batch to every shard, the answers merged."""

    def __init__(self, actors: list, k: Optional[int], radius: Optional[int]):
        self.actors, self.k, self.radius = actors, k, radius

    def __call__(self, batch: dict) -> dict:
        import ray

        q = bulk.dataset_codes(batch)
        ref = ray.put(q)
        if self.k is not None:
            D, I = merge_knn(_gather([a.search.remote(ref, self.k) for a in self.actors], []), self.k)
            return {"D": D, "I": I}
        lims, D, I = merge_range(_gather([a.range_search.remote(ref, self.radius) for a in self.actors], []),
                                 q.shape[0])
        hits_d = np.empty(q.shape[0], dtype=object)
        hits_i = np.empty(q.shape[0], dtype=object)
        for row in range(q.shape[0]):  # one ragged row of hits per query
            hits_d[row] = D[lims[row]:lims[row + 1]]
            hits_i[row] = I[lims[row]:lims[row + 1]]
        return {"D": hits_d, "I": hits_i}


def _read_slices(batch: dict) -> dict:
    """A Ray Data task: the query rows [start, stop) of each named .npy file, mapped from disk."""
    parts = [np.load(path, mmap_mode="r", allow_pickle=False)[start:stop]
             for path, start, stop in zip(batch["path"], batch["start"], batch["stop"])]
    return {"codes": np.ascontiguousarray(np.concatenate(parts))}


def _dataset(queries, batch: int):
    """The queries as a Ray Dataset of codes and their count (None for a caller's Dataset)."""
    import ray.data

    if bulk._is_dataset(queries):
        return queries, None  # not counted: that would run the dataset twice
    arrays = bulk.query_files(queries)
    if len(arrays) == 1 and not isinstance(arrays[0], np.memmap):
        return ray.data.from_numpy(np.ascontiguousarray(arrays[0])), arrays[0].shape[0]
    if not all(isinstance(a, np.memmap) for a in arrays):
        raise ValueError("queries: with executor='ray-data', give one array, or .npy files (paths or a glob)")
    slices = [{"path": a.filename, "start": b0, "stop": min(a.shape[0], b0 + batch)}
              for a in arrays for b0 in range(0, a.shape[0], batch)]
    source = ray.data.from_items(slices, override_num_blocks=max(1, len(slices)))
    return source.map_batches(_read_slices, batch_size=1, batch_format="numpy"), sum(a.shape[0] for a in arrays)


def ray_data_stream(index, queries, batch: int, k: Optional[int], radius: Optional[int],
                    pool: int = 1) -> tuple[Optional[int], Iterator[tuple[int, tuple]]]:
    """How many queries there are (None for a Ray Dataset), and (rows, answer) for each batch of
    answers in query order;
    an answer is (D, I) for k-NN, (lims, D, I) for range search."""
    import ray.data

    if batch <= 0:
        raise ValueError(f"batch must be > 0, got {batch}")
    context = ray.data.DataContext.get_current()
    saved = (context.execution_options.preserve_order, context.enable_progress_bars)

    def restore():
        context.execution_options.preserve_order, context.enable_progress_bars = saved

    context.execution_options.preserve_order = True  # answers come back in query order
    context.enable_progress_bars = False  # bulk_search draws its own
    try:
        dataset, nq = _dataset(queries, batch)
        answers = dataset.map_batches(_FanOut, fn_constructor_args=(index.actors(), k, radius), batch_size=batch,
                                      batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=pool),
                                      num_cpus=0)
    except BaseException:
        restore()
        raise

    def stream():
        try:
            for out in answers.iter_batches(batch_size=None, batch_format="numpy"):
                if k is not None:
                    yield len(out["D"]), (out["D"], out["I"])
                    continue
                counts = np.array([len(d) for d in out["D"]], dtype=np.int64)
                lims = np.zeros(len(counts) + 1, np.int64)
                np.cumsum(counts, out=lims[1:])
                D = np.concatenate([*out["D"], np.empty(0, np.int32)]).astype(np.int32, copy=False)
                I = np.concatenate([*out["I"], np.empty(0, np.int64)]).astype(np.int64, copy=False)
                yield len(counts), (lims, D, I)
        except Exception as exc:
            text = str(exc)
            if "ShardChecksumError" in text:
                line = [x for x in text.splitlines() if "shard " in x][-1]
                raise ShardChecksumError(line.split("ShardChecksumError:", 1)[-1].strip()) from exc
            raise
        finally:
            restore()

    return nq, stream()
