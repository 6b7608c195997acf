"""Checkpoint files (``last.pt``, ``best.pt``, a run's ``model.pt``) that load without running code.

A checkpoint holds only what PyTorch's ``weights_only=True`` loader rebuilds: tensors, numbers,
strings, booleans, None, and lists, tuples and dicts of those. :func:`save_checkpoint` turns NumPy
arrays and scalars into tensors and Python numbers before writing (atomically), and
:func:`load_checkpoint` always reads with ``weights_only=True``, so a crafted file cannot make the
loader call arbitrary functions.

Format versions: 2 (this one) holds plain values only. Version 1 stored NumPy arrays in
``model.pt`` (codes and labels); such files still load, through an allow-list of the few NumPy
constructors that rebuild a numeric array (never an object array). A file that needs any other
pickled object is refused with :class:`CheckpointError`; if it comes from a source you trust,
:func:`upgrade_checkpoint` rewrites it in the current format.
"""

from __future__ import annotations

import os
import pickle
from typing import Any

import numpy as np
import torch

from .._atomic import atomic_write

CHECKPOINT_VERSION = 2
READABLE_VERSIONS = (1, 2)


class CheckpointError(ValueError):
    """A checkpoint file is damaged, of an unknown version, or holds objects a safe load refuses."""


_NUMERIC_DTYPES = ("Bool", "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64",
                   "Float16", "Float32", "Float64")


def _numpy_array_globals() -> list[Any]:
    """The NumPy globals a pickled numeric ndarray or scalar names (version 1 run folders):
    the array and scalar constructors and the numeric dtype classes (never the object dtype)."""
    multiarray = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
    dtypes = [getattr(np.dtypes, name + "DType") for name in _NUMERIC_DTYPES] if hasattr(np, "dtypes") else []
    return [multiarray._reconstruct, multiarray.scalar, np.ndarray, np.dtype, *dtypes]


def _qualified(obj: Any) -> str:
    return f"{obj.__module__}.{obj.__name__}"


def to_plain(value: Any) -> Any:
    """``value`` with NumPy arrays turned into tensors and NumPy scalars into Python numbers,
    through dicts, lists and tuples."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise TypeError(f"checkpoint: expected numeric arrays, got dtype {value.dtype}")
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(to_plain(v) for v in value)
    return value


def save_checkpoint(state: dict, path: str | os.PathLike) -> None:
    """Write ``state`` (with the current ``version``) atomically, in plain values only."""
    plain = to_plain(dict(state))
    plain["version"] = CHECKPOINT_VERSION
    os.makedirs(os.path.dirname(os.path.abspath(os.fspath(path))), exist_ok=True)
    with atomic_write(path) as fh:
        torch.save(plain, fh)


def _refused(path: str, detail: str) -> CheckpointError:
    return CheckpointError(
        f"{path}: refused: the file holds pickled objects that a safe load does not rebuild "
        f"({detail}). Loading it could run code. If you made this file yourself or trust its "
        "source, convert it once with "
        "deephash_engine.deep.checkpoints.upgrade_checkpoint(path, trusted=True)"
    )


def _unsafe_globals(path: str) -> set[str]:
    try:
        return set(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception as exc:  # noqa: BLE001 - a damaged archive: say so, whatever torch raised
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {exc})") from None


def _read(path: str, map_location: Any) -> Any:
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        pass  # maybe a version 1 file with NumPy arrays: decided below from the names it needs
    except OSError:
        raise
    except Exception as exc:  # noqa: BLE001 - torch raises many types on a damaged archive
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {exc})") from None
    allowed = _numpy_array_globals()
    unsafe = _unsafe_globals(path)
    extra = unsafe - {_qualified(g) for g in allowed}
    if extra or not unsafe:
        raise _refused(path, "needs " + ", ".join(sorted(extra or unsafe)) if unsafe else "unknown globals")
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise _refused(path, str(exc).splitlines()[-1][:200]) from None
    except OSError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {exc})") from None


def _check_numeric(value: Any, path: str) -> None:
    """Refuse object (or other non-numeric) NumPy arrays a version 1 file might carry. Walks
    with an explicit stack: the unpickler builds nesting deeper than Python's recursion limit."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, np.ndarray) and item.dtype.kind not in "biuf":
            raise CheckpointError(f"{path}: holds a NumPy array of dtype {item.dtype}, expected numbers")
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    """Read a checkpoint with ``weights_only=True``; raises :class:`CheckpointError` (a
    ValueError) for a damaged file, an unknown version or objects a safe load refuses, and
    ``OSError`` when the file cannot be read."""
    path = os.fspath(path)
    state = _read(path, map_location)
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a checkpoint dict, got {type(state).__name__}")
    version = state.get("version")
    if type(version) is not int or version not in READABLE_VERSIONS:
        shown = repr(version) if isinstance(version, (int, str, type(None))) else type(version).__name__
        raise CheckpointError(f"{path}: expected checkpoint version in {READABLE_VERSIONS}, got {shown[:80]}")
    _check_numeric(state, path)
    return state


def upgrade_checkpoint(src: str | os.PathLike, dst: str | os.PathLike | None = None, *,
                       trusted: bool = False) -> None:
    """Rewrite a checkpoint that :func:`load_checkpoint` refuses in the current, safe format.

    This unpickles ``src`` with ``weights_only=False``, which runs whatever code the file names:
    call it only on files you made or trust, and say so with ``trusted=True``. ``dst`` defaults
    to ``src`` (replaced atomically).
    """
    if trusted is not True:
        raise ValueError("trusted: expected True (this runs any code the file holds), got "
                         f"{trusted!r}")
    state = torch.load(os.fspath(src), map_location="cpu", weights_only=False)
    if not isinstance(state, dict):
        raise CheckpointError(f"{src}: expected a checkpoint dict, got {type(state).__name__}")
    save_checkpoint(state, src if dst is None else dst)
