"""DLBHC: Lin, Yang, Hsiao, Chen, "Deep Learning of Binary Hash Codes for Fast Image Retrieval",
CVPR Workshops 2015.

A sigmoid latent layer ``h = sigmoid(u)`` of nbits units feeds a linear classifier trained with
softmax cross-entropy (sigmoid cross-entropy for multi-label targets); nothing else. The binary
code is ``h >= 0.5``, which is ``u >= 0``: the engine's packing of the raw output. The classifier
belongs to the loss (as in flyingpot/pytorch_deephash's latent + classifier head).
"""

from __future__ import annotations

import torch
from torch import nn

from .base import HashLoss, check_positive_int
from .functional import classification_loss


class DLBHCLoss(HashLoss):
    method = "dlbhc"

    def __init__(self, nbits: int, num_classes: int) -> None:
        super().__init__(nbits)
        check_positive_int(num_classes, "num_classes")
        self.classifier = nn.Linear(nbits, num_classes)

    def compute(self, u, target, index):
        h = torch.sigmoid(u)
        return classification_loss(self.classifier(h.to(self.classifier.weight.dtype)), target)
