"""PCDH: "Deep discrete hashing with pairwise correlation learning", Neurocomputing 2020
(article S092523121931793X; the paper itself was not available to us: what follows is built
from its abstract's description as DeepHash-pytorch implements it, see docs/methods.md).

A contrastive loss on a tanh
"hash-like" layer h, the same contrastive loss on the features below it, and a classifier on
discrete codes b from a hard threshold layer. Over the pairs (i, j) of a batch, with
d_ij = ||h_i - h_j||^2 and s_ij = 1 when samples i and j share a label:

    L = mean_ij C(h) + alpha * mean_ij C(f) + beta * CE(W b, y),
    C(x)_ij = s_ij / 2 * d_ij + (1 - s_ij) / 2 * max(m - d_ij, 0)^2,   m = 2 * nbits

(the form and margin of DeepHash-pytorch's PCDH.py; a squared hinge on squared distances).

h = tanh(u) of the hash head; the feature term is taken on the network's features below the hash
layer, which the trainer passes (``needs_features``): a PCDH run's model has DeepHash-pytorch's
1024-d feature layer between the backbone and the hash layer (``head_hidden = 1024``, a run
config's ``head_hidden`` overrides it). Called without features (a model without that layer,
or a direct call), the term falls back to u itself. b = sign(h), the hard threshold with a
straight-through gradient (identity backward), so the code the classifier is trained on is the
code that is indexed. The classifier W (bias-free) belongs to the loss. Softmax cross-entropy for
one-hot labels, sigmoid cross-entropy for multi-hot ones. Defaults alpha = beta = 1
(DeepHash-pytorch).
"""

from __future__ import annotations

import torch
from torch import nn

from .base import HashLoss, check_positive_int, similarity
from .functional import classification_loss, squared_distances
from .greedyhash import sign_straight_through


def squared_hinge_contrastive(x: torch.Tensor, s: torch.Tensor, margin: float) -> torch.Tensor:
    """Mean over all ordered pairs of ``s/2 d + (1 - s)/2 max(margin - d, 0)^2``, d the squared
    Euclidean distance between rows of ``x``."""
    # One (n, d) x (d, n) product; the difference form built an (n, n, d) tensor: on 1024-d
    # features, batch 128, 0.22 s of a 0.31 s training step.
    d = squared_distances(x, x)
    return (0.5 * s * d + 0.5 * (1.0 - s) * (margin - d).clamp(min=0.0) ** 2).mean()


class PCDHLoss(HashLoss):
    method = "pcdh"
    needs_features = True
    #: DeepHash-pytorch's feature layer: on fashion-mnist-mini (3 epochs, seeds 0-2) the feature
    #: term on it gave validation mAP 0.655 / 0.603 / 0.600 at 16 / 32 / 64 bits, on the backbone's
    #: output (``head_hidden = 0``) 0.528 / 0.532 / 0.580, on u itself 0.489 / 0.500 / 0.530
    #: (docs/benchmarks.md).
    head_hidden = 1024

    def __init__(self, nbits: int, num_classes: int, alpha: float = 1.0, beta: float = 1.0,
                 margin: float | None = None) -> None:
        super().__init__(nbits)
        check_positive_int(num_classes, "num_classes")
        if alpha < 0 or beta < 0:
            raise ValueError(f"alpha, beta: expected >= 0, got {alpha}, {beta}")
        self.alpha, self.beta = float(alpha), float(beta)
        self.margin = 2.0 * nbits if margin is None else float(margin)
        if self.margin <= 0:
            raise ValueError(f"margin: expected > 0, got {margin}")
        self.classifier = nn.Linear(nbits, num_classes, bias=False)

    def compute(self, u, target, index, features=None):
        s = similarity(target.to(u.dtype), target.to(u.dtype))
        h = torch.tanh(u)
        b = sign_straight_through(h)
        logits = self.classifier(b.to(self.classifier.weight.dtype))
        f = u if features is None else features
        return (squared_hinge_contrastive(h, s, self.margin)
                + self.alpha * squared_hinge_contrastive(f, s.to(f.dtype), self.margin)
                + self.beta * classification_loss(logits, target))
