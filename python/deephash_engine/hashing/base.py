"""The plumbing every unsupervised hasher shares: argument checks, fit/encode, save/load.

A hasher learns a map from float vectors (n, d) to real projections (n, nbits); the code is the
sign pattern of those projections, packed by the package-wide contract (bit j is bit j % 8 of
byte j // 8, LSB first, and x >= 0 gives 1). Subclasses implement `_fit` and `_project` and list
the names of their learned arrays in `_learned`; everything else lives here.

Files are NumPy ``.npz`` archives (no pickles) holding a format tag, a format version, the
method name, the constructor parameters as JSON and the learned arrays.
"""

from __future__ import annotations

import inspect
import json
import os
from typing import Any, ClassVar, TypeVar

import numpy as np

from .. import MAX_NBITS
from .._archive import read_tagged_archive
from .._atomic import atomic_write
from .._checks import check_positive_int
from ._pack import pack_signs

FILE_FORMAT = "deephash_engine.hashing"
FILE_VERSION = 1

_REGISTRY: dict[str, type[Hasher]] = {}

HasherT = TypeVar("HasherT", bound="Hasher")


class NotFittedError(RuntimeError):
    """A hasher was asked to encode (or save) before `fit` was called."""


class HasherFileError(OSError):
    """A file is not a saved hasher, was written by a newer version, or holds another method."""


class HasherFormatError(HasherFileError, ValueError):
    """A saved hasher's arrays do not fit its stored parameters (shape, dtype or values).

    Both a HasherFileError (an OSError, like every bad hasher file) and a ValueError (bad data)."""


def _check_nbits(nbits: Any) -> int:
    if isinstance(nbits, (bool, np.bool_)) or not isinstance(nbits, (int, np.integer)):
        raise TypeError(f"nbits: expected a positive int, got {type(nbits).__name__}")
    if not 1 <= nbits <= MAX_NBITS:
        raise ValueError(f"nbits: expected an int in [1, {MAX_NBITS}], got {nbits}")
    return int(nbits)


def check_matrix(X: Any, name: str = "X") -> np.ndarray:
    """Return X as a C-contiguous float64 (n, d) array, or raise naming what is wrong."""
    arr = np.asarray(X)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name}: expected a real numeric array, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array (n_samples, n_features), got shape {arr.shape}")
    if arr.shape[1] == 0:
        raise ValueError(f"{name}: expected at least one feature, got shape {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(
            f"{name}: expected finite values, got {arr[bad[0], bad[1]]} at row {bad[0]}, column {bad[1]}"
        )
    return arr


def check_positive_float(value: Any, name: str, allow_zero: bool = False) -> float:
    """Validate a finite real parameter that must be > 0 (or >= 0 with allow_zero)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__}")
    value = float(value)
    if not np.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name}: expected a finite number {bound}, got {value}")
    return value


class Hasher:
    """Base class: constructor parameters, fit -> self, project/encode, save/load.

    Subclasses set `method` (the name written to files), `_learned` (attribute names of the
    learned NumPy arrays) and implement `_fit(X)` and `_project(X)`.
    """

    method: ClassVar[str] = ""
    _learned: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.method:
            if cls._learned_layout is Hasher._learned_layout:
                raise TypeError(f"{cls.__name__}: a registered hasher must define _learned_layout "
                                "(Hasher.load checks the stored arrays against it)")
            _REGISTRY[cls.method] = cls

    def __init__(self, nbits: int, seed: int = 0) -> None:
        self.nbits = _check_nbits(nbits)
        if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed: expected an int >= 0, got {seed!r}")
        self.seed = int(seed)
        self.n_features_in_: int | None = None

    # ----------------------------------------------------------------- parameters
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self) -> dict[str, Any]:
        """The constructor arguments of this hasher, by name."""
        return {name: getattr(self, name) for name in self._param_names()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    @property
    def is_fitted(self) -> bool:
        return self.n_features_in_ is not None

    def _rng(self) -> np.random.Generator:
        return np.random.default_rng(self.seed)

    # ----------------------------------------------------------------- fit / encode
    def _min_samples(self) -> int:
        """The fewest training samples this configuration can learn from."""
        return 2

    def fit(self: HasherT, X: Any) -> HasherT:
        """Learn the hash functions from the rows of X (float array (n, d)); returns self.

        If it raises, the hasher is left exactly as it was (fitted or not)."""
        X = check_matrix(X, "X")
        need = self._min_samples()
        if X.shape[0] < need:
            raise ValueError(
                f"X: {type(self).__name__} with nbits={self.nbits} needs at least {need} samples, "
                f"got {X.shape[0]}"
            )
        # A failed fit changes nothing: _fit assigns new learned arrays (never mutates them in
        # place), so restoring the attribute dictionary undoes a partial fit.
        before = dict(self.__dict__)
        try:
            self._fit(X)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(before)
            raise
        self.n_features_in_ = int(X.shape[1])
        return self

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit(X) first")

    def project(self, X: Any) -> np.ndarray:
        """Real-valued projections (n, nbits) whose signs are the bits (value >= 0 gives 1)."""
        self._check_fitted()
        X = check_matrix(X, "X")
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X: expected {self.n_features_in_} features (as in fit), got {X.shape[1]}"
            )
        return self._project(X)

    def encode(self, X: Any) -> np.ndarray:
        """Packed uint8 codes of shape (n, ceil(nbits / 8)) for the rows of X (padding bits 0)."""
        return pack_signs(self.project(X))

    def fit_encode(self, X: Any) -> np.ndarray:
        """fit(X) then encode(X)."""
        return self.fit(X).encode(X)

    def _fit(self, X: np.ndarray) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _learned_layout(self) -> dict[str, tuple[str, tuple[int | str, ...]]]:  # pragma: no cover
        """Name -> (dtype, shape) of every learned array, for these parameters and
        ``n_features_in_``. A string in a shape is a size the data decided when fitting (at least
        1, and equal wherever the same string appears)."""
        raise NotImplementedError

    def _check_learned_values(self) -> str | None:
        """A sentence naming the learned field whose values cannot be used, or None (default:
        no check beyond shapes, dtypes and finiteness)."""
        return None

    def _project(self, X: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    # ----------------------------------------------------------------- persistence
    def save(self, path: str | os.PathLike) -> None:
        """Write the fitted hasher to `path` (an .npz archive), atomically."""
        self._check_fitted()
        payload: dict[str, np.ndarray] = {
            "format": np.array(FILE_FORMAT),
            "format_version": np.array(FILE_VERSION, dtype=np.int64),
            "method": np.array(self.method),
            "params": np.array(json.dumps(self.get_params(), sort_keys=True)),
            "n_features_in": np.array(self.n_features_in_, dtype=np.int64),
        }
        for name in self._learned:
            payload["learned/" + name] = np.asarray(getattr(self, name))
        with atomic_write(path) as fh:
            np.savez(fh, **payload)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Hasher:
        """Read a hasher written by `save`.

        Called on a concrete class (``ITQ.load``) the file must hold that method; called on
        `Hasher` itself it returns whichever method the file holds.
        """
        path = os.fspath(path)
        contents = read_tagged_archive(path, HasherFileError, "a saved hasher", FILE_FORMAT, FILE_VERSION)
        method = str(contents.get("method", ""))
        if method not in _REGISTRY:
            raise HasherFileError(f"{path}: unknown hashing method {method!r}")
        target = _REGISTRY[method]
        if cls is not Hasher and target is not cls:
            raise HasherFileError(f"{path}: holds a {method} model, expected {cls.method}")
        try:
            params = json.loads(str(contents["params"]))
            if not isinstance(params, dict):
                raise TypeError(f"params: expected a JSON object, got {type(params).__name__}")
            model = target(**params)
            for name in target._learned:
                setattr(model, name, contents["learned/" + name])
            model.n_features_in_ = _stored_int(contents["n_features_in"], "n_features_in")
        except (KeyError, TypeError, ValueError, RecursionError) as exc:
            raise HasherFileError(f"{path}: damaged {method} file: {exc}") from exc
        _check_learned(model, path)
        return model


def _stored_int(value: np.ndarray, name: str) -> int:
    if value.shape != () or value.dtype.kind not in "iu" or value < 1:
        raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")
    return int(value)


def _check_learned(model: Hasher, path: str) -> None:
    """Raise HasherFormatError naming the first learned array whose dtype, shape or values do
    not fit the stored parameters (so a loaded hasher encodes the codes its parameters say)."""
    sizes: dict[str, int] = {}
    context = f"nbits={model.nbits}, n_features_in={model.n_features_in_}"
    for name, (dtype, shape) in model._learned_layout().items():
        arr = getattr(model, name)
        if arr.dtype != np.dtype(dtype):
            raise HasherFormatError(f"{path}: learned/{name}: expected dtype {dtype}, got {arr.dtype}")
        fits = arr.ndim == len(shape)
        for want, got in zip(shape, arr.shape):
            if isinstance(want, str):
                fits = fits and got >= 1 and sizes.setdefault(want, got) == got
            else:
                fits = fits and got == want
        if not fits:
            wanted = "(" + ", ".join(str(w) for w in shape) + ("," if len(shape) == 1 else "") + ")"
            raise HasherFormatError(
                f"{path}: learned/{name}: expected shape {wanted} for {context}, got {arr.shape}"
            )
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise HasherFormatError(f"{path}: learned/{name}: expected finite values")
    problem = model._check_learned_values()
    if problem is not None:
        raise HasherFormatError(f"{path}: {problem}")


def load_hasher(path: str | os.PathLike) -> Hasher:
    """Load a saved hasher of any method."""
    return Hasher.load(path)


def registered_methods() -> dict[str, type[Hasher]]:
    """Method name -> class, for every hasher defined."""
    return dict(_REGISTRY)
