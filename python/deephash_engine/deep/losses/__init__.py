"""Deep-hashing losses, one method per file, and composable regularisers.

Every loss is ``loss(u, target, index) -> scalar`` on the raw hash outputs ``u``; see
:mod:`.base` for the conventions and :mod:`.functional` for the terms losses share.

A new loss is one file here, a ``HashLoss`` subclass with ``method = "name"``, and one import
below: importing the class registers it in :data:`LOSSES`, which the run config and the
``deephash train --method`` help read.
"""

from .adsh import ADSHLoss, adsh_objective, adsh_v_step
from .base import LOSSES, HashLoss, LabelFreeLoss, MemoryBank, PairwiseLoss, sign_pm1, similarity
from .bihalf import BiHalfLoss, bihalf_codes, bihalf_split
from .cnnh import CNNHLoss, cnnh_objective, cnnh_stage_one
from .csq import CSQLoss, hash_centers, hadamard
from .daph import DAPHLoss
from .dbdh import DBDHLoss
from .dch import DCHLoss
from .dfh import DFHLoss, dfh_centre_objective, dfh_centre_step
from .dhn import DHNLoss
from .dlbhc import DLBHCLoss
from .dpn import DPNAdaptiveLoss, DPNLoss, DPNTernaryLoss, random_targets, ternary_assignment
from .dpsh import DPSHLoss
from .dqn import DQNLoss
from .dsdh import DSDHLoss, dsdh_b_objective, dsdh_b_step, dsdh_w_step
from .dsh import DSHLoss
from .dshsd import DSHSDLoss
from .dtq import DTQLoss
from .dtsh import DTSHLoss
from .dvsq import DVSQLoss
from .greedyhash import GreedyHashLoss, sign_straight_through
from .greedyhash_unsup import GreedyHashUnsupervisedLoss
from .hashnet import HashNetLoss
from .idhn import IDHNLoss
from .isdh import ISDHLoss
from .lcdsh import LCDSHLoss
from .pcdh import PCDHLoss
from .qsmih import QSMIHLoss
from .regularizers import (
    BitBalance,
    BitDecorrelation,
    CauchyQuantization,
    REGULARIZERS,
    OrthogonalityPenalty,
    QuantizationPenalty,
    register_regularizer,
)

__all__ = [
    "LOSSES", "REGULARIZERS", "register_regularizer", "HashLoss", "LabelFreeLoss", "MemoryBank", "PairwiseLoss", "sign_pm1", "similarity",
    "ADSHLoss", "BiHalfLoss", "CNNHLoss", "CSQLoss", "DAPHLoss", "DBDHLoss", "DCHLoss", "DFHLoss", "DHNLoss", "DLBHCLoss",
    "DPNLoss", "DPNAdaptiveLoss", "DPNTernaryLoss", "DPSHLoss", "DQNLoss", "DSDHLoss", "DSHLoss", "DSHSDLoss", "DTQLoss",
    "DTSHLoss", "DVSQLoss", "GreedyHashLoss", "GreedyHashUnsupervisedLoss", "HashNetLoss", "IDHNLoss", "ISDHLoss",
    "LCDSHLoss", "PCDHLoss", "QSMIHLoss",
    "hash_centers", "hadamard", "dsdh_b_objective", "dsdh_b_step", "dsdh_w_step",
    "dfh_centre_objective", "dfh_centre_step", "random_targets", "ternary_assignment",
    "adsh_objective", "adsh_v_step", "cnnh_objective", "cnnh_stage_one",
    "sign_straight_through", "bihalf_codes", "bihalf_split",
    "BitBalance", "BitDecorrelation", "CauchyQuantization", "OrthogonalityPenalty",
    "QuantizationPenalty",
]
