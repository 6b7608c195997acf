"""Method names -> loss constructors, so a run can be described by plain data (CLI, YAML).

``build_loss(method, nbits, num_train, num_classes, **params)`` passes only what the method's
constructor takes; ``params`` override its published defaults.
"""

from __future__ import annotations

import inspect
from typing import Any

from . import losses as L

METHODS: dict[str, type] = {
    "dpsh": L.DPSHLoss,
    "hashnet": L.HashNetLoss,
    "dsh": L.DSHLoss,
    "dhn": L.DHNLoss,
    "dch": L.DCHLoss,
    "csq": L.CSQLoss,
    "greedyhash": L.GreedyHashLoss,
    "dsdh": L.DSDHLoss,
    "dtsh": L.DTSHLoss,
    "dlbhc": L.DLBHCLoss,
}

REGULARIZERS: dict[str, type] = {
    "quantization": L.QuantizationPenalty,
    "cauchy_quantization": L.CauchyQuantization,
    "bit_balance": L.BitBalance,
    "decorrelation": L.BitDecorrelation,
}


def build_loss(method: str, nbits: int, num_train: int, num_classes: int,
               **params: Any) -> L.HashLoss:
    if method not in METHODS:
        raise ValueError(f"method: expected one of {sorted(METHODS)}, got {method!r}")
    cls = METHODS[method]
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = set(params) - accepted
    if unknown:
        raise ValueError(
            f"loss params for {method}: expected a subset of {sorted(accepted - {'nbits'})}, "
            f"got unknown {sorted(unknown)}"
        )
    context = {"num_train": num_train, "num_classes": num_classes}
    kwargs = {k: v for k, v in context.items() if k in accepted}
    kwargs.update(params)
    return cls(nbits, **kwargs)


def add_regularizers(loss: L.HashLoss, spec: dict[str, float], model=None) -> L.HashLoss:
    """Add ``{name: weight}`` regularisers; ``orthogonality`` needs the model's hash layer."""
    for name, weight in spec.items():
        if name == "orthogonality":
            if model is None:
                raise ValueError("model: the orthogonality penalty needs the model, got None")
            loss.add_regularizer(L.OrthogonalityPenalty(model.hash_layer), weight)
        elif name in REGULARIZERS:
            loss.add_regularizer(REGULARIZERS[name](), weight)
        else:
            raise ValueError(
                f"regularizer: expected one of {sorted(REGULARIZERS) + ['orthogonality']}, got {name!r}"
            )
    return loss
