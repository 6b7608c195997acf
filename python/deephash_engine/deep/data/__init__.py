"""Datasets yielding ``(input, target, index)`` and named, seeded retrieval protocols.

The raw data comes from :mod:`deephash_engine.datasets` (the readers and their registry); this
package turns it into protocol splits and PyTorch datasets. A new protocol is a
:func:`register_protocol` call in a module imported below.
"""

from .datasets import (
    ArrayHashingDataset,
    ImageListHashingDataset,
    MosaicHashingDataset,
    ProtocolData,
    load_protocol,
    make_loader,
)
from .protocols import PROTOCOLS, Protocol, Split, get_protocol, register_protocol, stratified_pick

__all__ = [
    "ArrayHashingDataset", "ImageListHashingDataset", "MosaicHashingDataset", "ProtocolData",
    "load_protocol", "make_loader", "PROTOCOLS", "Protocol", "Split", "get_protocol",
    "register_protocol", "stratified_pick",
]
