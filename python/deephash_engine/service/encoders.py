"""Server-side encoders: a saved unsupervised hasher (``Hasher.save``) named by a path relative
to the data folder; the service never opens a path outside that folder."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from .store import StoreError

_cache: dict[tuple[str, int], object] = {}
_cache_lock = threading.Lock()


def resolve_inside(root: Path, relative: str, field: list) -> Path:
    """``root / relative`` when that stays inside ``root`` (no absolute path, no '..' out, no
    symbolic link out); a StoreError naming ``field`` otherwise."""
    candidate = Path(relative)
    if not relative or candidate.is_absolute() or "\x00" in relative:
        raise StoreError(field, f"expected a path relative to the data folder, got {relative!r}")
    resolved = (root / candidate).resolve()
    if root not in resolved.parents:
        raise StoreError(field, f"{relative!r} leaves the data folder")
    return resolved


def load_encoder(root: Path, relative: str, nbits: int):
    """The hasher saved at ``root / relative``, checked to make ``nbits``-bit codes; loaded once
    per file version (path and modification time)."""
    from deephash_engine.hashing import Hasher

    path = resolve_inside(root, relative, ["encoder"])
    try:
        key = (str(path), os.stat(path).st_mtime_ns)
    except OSError as exc:
        raise StoreError(["encoder"], f"cannot read encoder {relative!r}: {exc.strerror}") from None
    with _cache_lock:
        hasher = _cache.get(key)
    if hasher is None:
        try:
            hasher = Hasher.load(path)
        except (OSError, ValueError) as exc:
            raise StoreError(["encoder"], f"{relative!r} is not a saved hasher: {exc}") from None
        with _cache_lock:
            _cache[key] = hasher
    if hasher.nbits != nbits:
        raise StoreError(["encoder"], f"encoder {relative!r} makes {hasher.nbits}-bit codes, the collection has {nbits}")
    return hasher
