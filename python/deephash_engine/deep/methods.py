"""Method names -> loss constructors, so a run can be described by plain data (CLI, YAML).

The names come from the registries of :mod:`.losses` (losses and regularisers).

``build_loss(method, nbits, num_train, num_classes, class_names, **params)`` passes only what the
method's constructor takes (``class_names``: the dataset's, for a loss that embeds them);
``params`` override its published defaults.
"""

from __future__ import annotations

import inspect
from typing import Any, Optional, Sequence

from . import losses as L

#: Method name -> loss class: the loss registry (a loss registers itself when its module is
#: imported, see :class:`.losses.HashLoss`), so it always lists every loss defined.
METHODS: dict[str, type] = L.LOSSES

#: Regulariser name -> class (:data:`.losses.regularizers.REGULARIZERS`).
REGULARIZERS: dict[str, type] = L.REGULARIZERS


def build_loss(method: str, nbits: int, num_train: int, num_classes: int,
               class_names: Optional[Sequence[str]] = None, **params: Any) -> L.HashLoss:
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
    if class_names is not None and "label_embeddings" not in params:
        context["class_names"] = class_names
    kwargs = {k: v for k, v in context.items() if k in accepted}
    kwargs.update(params)
    return cls(nbits, **kwargs)


def add_regularizers(loss: L.HashLoss, spec: dict[str, float], model=None) -> L.HashLoss:
    """Add ``{name: weight}`` regularisers; one that takes the hash layer (``orthogonality``)
    needs the model."""
    for name, weight in spec.items():
        if name not in REGULARIZERS:
            raise ValueError(f"regularizer: expected one of {sorted(REGULARIZERS)}, got {name!r}")
        cls = REGULARIZERS[name]
        if getattr(cls, "takes_hash_layer", False):
            if model is None:
                raise ValueError(f"model: the {name} penalty needs the model, got None")
            loss.add_regularizer(cls(model.hash_layer), weight)
        else:
            loss.add_regularizer(cls(), weight)
    return loss
