"""Turn a trained model into packed codes, and score codes with mAP.

Codes follow the engine's packing contract: bit j is bit j % 8 of byte j / 8, least significant
first, and a raw output x becomes 1 iff x >= 0.

mAP comes from :mod:`deephash_engine.metrics` when that module is present; until then a small
NumPy reference with the same default policies is used (ties broken by database index,
AP normalised by the relevant items retrieved within the top k, queries with none score 0).
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch.utils.data import Dataset

from .data.datasets import make_loader


def pack_codes(outputs: np.ndarray) -> np.ndarray:
    """(n, nbits) real outputs -> (n, nbits/8) uint8 codes, x >= 0 -> 1, LSB first."""
    if outputs.ndim != 2 or outputs.shape[1] % 8:
        raise ValueError(f"outputs: expected (n, nbits) with nbits a multiple of 8, got {outputs.shape}")
    return np.ascontiguousarray(np.packbits(outputs >= 0, axis=1, bitorder="little"))


@torch.no_grad()
def compute_outputs(model: torch.nn.Module, dataset: Dataset, batch_size: int = 512,
                    device: str | torch.device = "cpu", progress: bool = False,
                    desc: str = "encode") -> tuple[np.ndarray, np.ndarray]:
    """Raw hash outputs (float32) and targets of every item, in dataset order."""
    from tqdm.auto import tqdm

    was_training = model.training
    model.eval()
    outs, targets = [], []
    loader = make_loader(dataset, batch_size, shuffle=False)
    for x, t, _ in tqdm(loader, desc=desc, disable=not progress, leave=False):
        outs.append(model(x.to(device)).float().cpu())
        targets.append(t)
    model.train(was_training)
    return torch.cat(outs).numpy(), torch.cat(targets).numpy()


def encode(model, dataset, batch_size=512, device="cpu", progress=False, desc="encode"):
    """Packed codes and targets of every item of ``dataset``."""
    outputs, targets = compute_outputs(model, dataset, batch_size, device, progress, desc)
    return pack_codes(outputs), targets


_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.int32)


def _hamming(q: np.ndarray, db: np.ndarray) -> np.ndarray:
    x = q[:, None, :] ^ db[None, :, :]
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x).sum(2, dtype=np.int32)
    return _POPCOUNT[x].sum(2)


def _reference_map(query_codes, db_codes, query_labels, db_labels, topk=None, chunk=32):
    n_db = db_codes.shape[0]
    k = n_db if topk is None else min(int(topk), n_db)
    aps = []
    for start in range(0, query_codes.shape[0], chunk):
        q = query_codes[start:start + chunk]
        dist = _hamming(q, db_codes)
        order = np.argsort(dist, axis=1, kind="stable")[:, :k]
        rel = (query_labels[start:start + chunk] @ db_labels.T > 0)
        rel = np.take_along_axis(rel, order, axis=1)
        hits = np.cumsum(rel, axis=1)
        ranks = np.arange(1, k + 1)
        n_rel = rel.sum(1)
        ap = (hits / ranks * rel).sum(1) / np.maximum(n_rel, 1)
        aps.append(np.where(n_rel > 0, ap, 0.0))
    return float(np.concatenate(aps).mean())


def mean_average_precision(query_codes: np.ndarray, db_codes: np.ndarray,
                           query_labels: np.ndarray, db_labels: np.ndarray,
                           topk: Optional[int] = None) -> float:
    """mAP@topk (all when None) with class relevance (sharing at least one label)."""
    try:
        from deephash_engine.metrics import mean_average_precision as metrics_map
    except ImportError:
        return _reference_map(query_codes, db_codes, query_labels, db_labels, topk)
    return float(metrics_map(query_codes, db_codes, query_labels, db_labels, topk=topk))
