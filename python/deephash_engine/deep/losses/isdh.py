"""ISDH: Zhang et al., "Instance Similarity Deep Hashing for Multi-Label Image
Retrieval", arXiv 1803.02987v1, 2018.

Soft multi-label similarity: ``s_ij = cos(y_i, y_j)``, 1 for equal label sets, 0 for disjoint
ones, a fraction in between. With the softsign relaxation ``h = u / (1 + |u|)`` and
``theta_ij = beta / K * <h_i, h_j>``, pairs with s in {0, 1} (within 0.01) take a weighted pairwise
likelihood and the others a squared error between s and the pair probability:

    mean_ij [ hard_ij * gamma * (softplus(theta) - s theta) + (1 - hard_ij) * (s - sigmoid(theta))^2 ]
        + lambda * mean | |h| - 1 |

Defaults from the authors' TensorFlow code: ``beta = 5``, ``gamma = 10``, ``lambda = 0.1``, pairs
within the batch (i == j included). DeepHash-pytorch uses ``theta = <h_i, h_j> / 2`` against a
memory bank (``memory_bank=True`` here). On one-hot labels every pair is hard, and the loss is a
DPSH-style likelihood.
"""

from __future__ import annotations

import torch

from .soft_pairs import SoftPairLoss


class ISDHLoss(SoftPairLoss):
    method = "isdh"
    default_gamma = 10.0

    def pair_term(self, theta, s, hard, likelihood):
        soft = (s - torch.sigmoid(theta)) ** 2
        return hard * self.gamma * likelihood + (1.0 - hard) * soft

    def pair_slope(self, theta, s, hard, sigmoid):
        # d/dtheta: gamma (sigmoid - s) on hard pairs, -2 (s - sigmoid) sigmoid (1 - sigmoid) on soft
        soft = -2.0 * (s - sigmoid) * sigmoid * (1.0 - sigmoid)
        return hard * self.gamma * (sigmoid - s) + (1.0 - hard) * soft
