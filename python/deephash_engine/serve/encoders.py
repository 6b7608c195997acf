"""Server-side encoders, named by a path relative to the data folder (the service never opens a
path outside it):

- a file: a saved unsupervised hasher (``Hasher.save``) or label-free deep hasher
  (``FeatureHasher.save``, needs PyTorch); inputs are feature vectors, a list of equal-length lists
  of numbers;
- a folder: a finished ``deephash train`` run (needs PyTorch); inputs are uint8 images, nested
  lists of shape (n, H, W) or (n, H, W, C) as the run was trained on.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from .._archive import FEATURE_HASHER_FORMAT, read_archive
from .store import StoreError

_cache: dict[tuple[str, int], Any] = {}
_cache_lock = threading.Lock()


class HasherEncoder:
    def __init__(self, path: Path):
        self.hasher = _saved_hasher(path)
        self.nbits = int(self.hasher.nbits)
        self.image_shape = None  # takes feature vectors, not images

    def encode_inputs(self, inputs: list) -> np.ndarray:
        features = np.asarray(inputs, np.float32)
        if features.ndim != 2:
            raise ValueError(f"expected a list of equal-length feature vectors, got shape {features.shape}")
        return self.hasher.encode(features)


def _saved_hasher(path: Path):
    """The hasher saved at ``path``: a ``FeatureHasher`` when the archive's format tag says so,
    else a ``Hasher`` of :mod:`deephash_engine.hashing` (whose loader names what is wrong)."""
    from deephash_engine.hashing import Hasher

    contents = read_archive(path, ValueError, "a saved hasher")  # any unreadable file: a ValueError
    if str(contents.get("format", "")) == FEATURE_HASHER_FORMAT:
        try:
            from deephash_engine.deep.label_free import FeatureHasher
        except ImportError as exc:
            raise ValueError(f"a FeatureHasher encoder needs PyTorch ({exc})") from None
        return FeatureHasher.load(path)
    return Hasher.load(path)


class RunEncoder:
    def __init__(self, path: Path):
        try:
            from deephash_engine.deep.run import load_trained_model
        except ImportError as exc:
            raise ValueError(f"a run folder encoder needs PyTorch ({exc})") from None
        self.model, ckpt = load_trained_model(path, "cpu")
        self.nbits = int(ckpt["config"]["nbits"])
        self.source = ckpt["data"]["source"]
        self.in_channels = int(ckpt["data"]["in_channels"])
        self.image_size = int(ckpt["data"]["image_size"])
        self.image_shape = (self.image_size, self.image_size, self.in_channels)  # (H, W, C) of an upload

    def encode_inputs(self, inputs: list) -> np.ndarray:
        from deephash_engine.datasets import NORMALIZATION
        from deephash_engine.deep.data import ArrayHashingDataset
        from deephash_engine.deep.evaluation import encode

        values = np.asarray(inputs)
        if values.dtype.kind not in "iuf" or values.size and (values.min() < 0 or values.max() > 255):
            raise ValueError("expected images of integers in [0, 255]")
        images = values.astype(np.uint8)
        size = (self.image_size, self.image_size)
        channels_ok = images.ndim == 3 and self.in_channels == 1 or images.ndim == 4 and images.shape[3] == self.in_channels
        if not channels_ok or images.shape[1:3] != size:
            raise ValueError(f"expected images of shape (n, {size[0]}, {size[1]}"
                             f"{'' if self.in_channels == 1 else f', {self.in_channels}'}), got {images.shape}")
        mean, std = NORMALIZATION[self.source]
        dataset = ArrayHashingDataset(images, np.zeros((images.shape[0], 1), np.float32), mean, std)
        codes, _ = encode(self.model, dataset, 256, "cpu", progress=False)
        return codes


def resolve_inside(root: Path, relative: str, field: list) -> Path:
    """``root / relative`` when that stays inside ``root`` (no absolute path, no '..' out, no
    symbolic link out); a StoreError naming ``field`` otherwise."""
    if not relative or Path(relative).is_absolute() or "\x00" in relative:
        raise StoreError(field, f"expected a path relative to the data folder, got {relative!r}")
    resolved = (root / relative).resolve()
    if root not in resolved.parents:
        raise StoreError(field, f"{relative!r} leaves the data folder")
    return resolved


def load_encoder(root: Path, relative: str, nbits: int):
    """The encoder at ``root / relative``, checked to make ``nbits``-bit codes; loaded once per
    file version (path and modification time)."""
    path = resolve_inside(root, relative, ["encoder"])
    stamp_of = path / "model.pt" if path.is_dir() else path
    try:
        key = (str(path), os.stat(stamp_of).st_mtime_ns)
    except OSError as exc:
        raise StoreError(["encoder"], f"cannot read encoder {relative!r}: {exc.strerror}") from None
    with _cache_lock:
        encoder = _cache.get(key)
    if encoder is None:
        kind = RunEncoder if path.is_dir() else HasherEncoder
        try:
            encoder = kind(path)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            what = "a finished 'deephash train' run" if path.is_dir() else "a saved hasher"
            raise StoreError(["encoder"], f"{relative!r} is not {what}: {exc}") from None
        with _cache_lock:
            _cache[key] = encoder
    if encoder.nbits != nbits:
        raise StoreError(["encoder"], f"encoder {relative!r} makes {encoder.nbits}-bit codes, the collection has {nbits}")
    return encoder
