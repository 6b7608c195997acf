"""DSHSD: "Deep Supervised Hashing Based on Stable Distribution", IEEE Access 2019.

With ``h = tanh(u)``, the loss is a classification term plus a DSH contrastive term over the
pairs of the batch:

    classification(W h, y) + alpha * mean_ij [ s/2 ||h_i - h_j||^2 + (1 - s)/2 max(m - ||h_i - h_j||^2, 0) ]

where the classifier ``W`` (classes x nbits, no bias) is trained with the network and the
classification is softmax cross-entropy for one-hot labels and sigmoid cross-entropy for
multi-label targets. Defaults (DeepHash-pytorch's recipe): ``alpha = 0.05``, margin
``m = 2 * nbits``, all n^2 batch pairs (i == j included).

The classifier belongs to the loss, so the trainer optimises it with the hash head
(:func:`..trainer.build_optimizer`). DeepHash-pytorch builds its optimiser from the network's
parameters only, so its classifier keeps its random initial weights for the whole run and the
classification term trains the codes against a fixed random projection.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .base import HashLoss, check_positive_int, similarity
from .functional import classification_loss, contrastive


class DSHSDLoss(HashLoss):
    method = "dshsd"

    def __init__(
        self, nbits: int, num_classes: int, alpha: float = 0.05, margin: Optional[float] = None
    ) -> None:
        super().__init__(nbits)
        check_positive_int(num_classes, "num_classes")
        if alpha < 0:
            raise ValueError(f"alpha: expected >= 0, got {alpha}")
        self.alpha = float(alpha)
        self.margin = float(2 * nbits if margin is None else margin)
        self.classifier = nn.Linear(nbits, num_classes, bias=False)

    def compute(self, u, target, index):
        h = torch.tanh(u)
        s = similarity(target.to(u.dtype), target.to(u.dtype))
        pair = contrastive(h, h, s, self.margin, None)
        logits = self.classifier(h.to(self.classifier.weight.dtype))
        return classification_loss(logits, target) + self.alpha * pair
