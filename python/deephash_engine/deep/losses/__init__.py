"""Deep-hashing losses, one method per file, and composable regularisers.

Every loss is ``loss(u, target, index) -> scalar`` on the raw hash outputs ``u``; see
:mod:`.base` for the conventions.
"""

from .base import HashLoss, MemoryBank, PairwiseLoss, sign_pm1, similarity
from .csq import CSQLoss, hash_centers, hadamard
from .dch import DCHLoss
from .dhn import DHNLoss
from .dlbhc import DLBHCLoss
from .dpsh import DPSHLoss
from .dsdh import DSDHLoss, dsdh_b_objective, dsdh_b_step, dsdh_w_step
from .dsh import DSHLoss
from .dtsh import DTSHLoss
from .greedyhash import GreedyHashLoss, sign_straight_through
from .hashnet import HashNetLoss
from .regularizers import (
    BitBalance,
    BitDecorrelation,
    CauchyQuantization,
    OrthogonalityPenalty,
    QuantizationPenalty,
)

__all__ = [
    "HashLoss", "MemoryBank", "PairwiseLoss", "sign_pm1", "similarity",
    "CSQLoss", "DCHLoss", "DHNLoss", "DLBHCLoss", "DPSHLoss", "DSDHLoss", "DSHLoss", "DTSHLoss",
    "GreedyHashLoss", "HashNetLoss",
    "hash_centers", "hadamard", "dsdh_b_objective", "dsdh_b_step", "dsdh_w_step",
    "sign_straight_through",
    "BitBalance", "BitDecorrelation", "CauchyQuantization", "OrthogonalityPenalty",
    "QuantizationPenalty",
]
