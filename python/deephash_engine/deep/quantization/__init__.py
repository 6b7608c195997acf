"""Quantization codes for the thulab/DeepHash family (DQN, DVSQ, DTQ): codebooks and encoders
(:mod:`.codebooks`), ADC search through FAISS with a NumPy oracle (:mod:`.adc`), evaluation
(:mod:`.evaluation`) and the label embeddings of DVSQ (:mod:`.label_embeddings`). The losses live
in :mod:`deephash_engine.deep.losses` (``dqn``, ``dtq``, ``dvsq``)."""

from .adc import adc_search, build_faiss_index, oracle_scores, oracle_search, pack_codes
from .codebooks import (
    composite_decode,
    composite_error,
    composite_update,
    icm_encode,
    init_codebooks,
    pq_decode,
    pq_encode,
    pq_update,
)

__all__ = [
    "adc_search", "build_faiss_index", "oracle_scores", "oracle_search", "pack_codes",
    "composite_decode", "composite_error", "composite_update", "icm_encode", "init_codebooks",
    "pq_decode", "pq_encode", "pq_update",
]
