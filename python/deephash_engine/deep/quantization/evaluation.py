"""Evaluation of a quantization loss's codes: encode the database with the learned codebooks,
search by ADC through FAISS, score the ranked lists (:mod:`deephash_engine.metrics.ranked`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from ...metrics import average_precision_from_ranking, precision_recall_from_ranking
from .adc import adc_search, build_faiss_index


@dataclass
class QuantizedEvaluation:
    """mAP per requested cut-off, P@k and R@k, with the database codes and the FAISS index."""

    maps: dict
    ks: list
    precision_at_k: np.ndarray
    recall_at_k: np.ndarray
    codes: np.ndarray
    index: Any

    def to_dict(self) -> dict:
        return {"map": self.maps, "precision_at_k": dict(zip(map(str, self.ks), self.precision_at_k.tolist())),
                "recall_at_k": dict(zip(map(str, self.ks), self.recall_at_k.tolist()))}


def evaluate_quantized(loss, query_outputs: np.ndarray, db_outputs: np.ndarray, query_labels, db_labels,
                       topks: tuple = (None,), ks: Optional[list] = None, block: int = 256) -> QuantizedEvaluation:
    """Scores of ADC retrieval for raw head outputs (queries, database) of a quantization loss.

    The whole database is ranked for each query, ``block`` queries at a time, so memory stays
    at ``block x N``. ``topks``: mAP cut-offs (None: the whole database); ``ks``: P@k / R@k ranks.
    """
    zq, zd = loss.embeddings(query_outputs), loss.embeddings(db_outputs)
    codes = loss.database_codes(zd)
    index = build_faiss_index(codes, loss.codebooks_array(), loss.product, loss.metric)
    n_db = codes.shape[0]
    ks = [k for k in (ks or []) if 1 <= k <= n_db]
    aps = {k: [] for k in topks}
    precision, recall = np.zeros(len(ks)), np.zeros(len(ks))
    ql, dl = np.asarray(query_labels), np.asarray(db_labels)
    for start in range(0, zq.shape[0], block):
        rows = slice(start, start + block)
        _, ids = adc_search(index, zq[rows], loss.metric)
        for k in topks:
            aps[k].append(average_precision_from_ranking(ids, ql[rows], dl, topk=k))
        if ks:
            p, r = precision_recall_from_ranking(ids, ql[rows], dl, ks)
            weight = ids.shape[0] / zq.shape[0]
            precision, recall = precision + weight * p, recall + weight * r
    maps = {("all" if k is None else str(k)): float(np.nanmean(np.concatenate(v))) for k, v in aps.items()}
    return QuantizedEvaluation(maps, ks, precision, recall, codes, index)


def quantized_map(loss, query_outputs, db_outputs, query_labels, db_labels, topk: Optional[int] = None) -> float:
    """mAP@topk of ADC retrieval (see :func:`evaluate_quantized`)."""
    return evaluate_quantized(loss, query_outputs, db_outputs, query_labels, db_labels, (topk,)).maps[
        "all" if topk is None else str(topk)]
