"""IDHN: Zhang, Zou, Lin, Chen, Wang, "Improved Deep Hashing with Soft Pairwise Similarity for
Multi-label Image Retrieval", IEEE Transactions on Multimedia 2019 (arXiv 1803.02987).

The successor of ISDH (:mod:`.isdh`), with the same soft similarity ``s_ij = cos(y_i, y_j)``,
softsign relaxation ``h = u / (1 + |u|)``, ``theta_ij = beta / K * <h_i, h_j>`` and the same
hard/soft split; the soft pairs now regress the inner product itself onto the one a code of
Hamming distance ``K (1 - s)`` would have, ``<b_i, b_j> = K (2 s - 1)``:

    mean_ij [ hard_ij * (softplus(theta) - s theta)
              + (1 - hard_ij) * gamma / K * (<h_i, h_j>/2 + q - 2 s q)^2 ]  +  lambda * mean | |h| - 1 |

with ``q = K / 2``. This is the authors' ``gamma * K * ((<h_i, h_j> + K) / (2K) - s)^2``
rewritten. Defaults from the authors' TensorFlow code: ``beta = 5``, ``gamma = 0.1``,
``lambda = 0.1``, in-batch pairs (i == j included). DeepHash-pytorch writes the soft term as
``gamma * (theta + q - 2 s q)^2`` with ``theta = <h_i, h_j>/2`` and ``q = K``, whose target
``<h_i, h_j> = 2K (2s - 1)`` lies outside [-K, K] unless s = 1/2, and pairs against a memory bank
(``memory_bank=True`` here).
"""

from __future__ import annotations

from .soft_pairs import SoftPairLoss


class IDHNLoss(SoftPairLoss):
    method = "idhn"
    default_gamma = 0.1

    def pair_term(self, theta, s, hard, likelihood):
        q = self.nbits / 2.0
        inner = theta * (self.nbits / self.beta)  # <h_i, h_j>
        soft = (0.5 * inner + q - 2.0 * s * q) ** 2 / self.nbits
        return hard * likelihood + (1.0 - hard) * self.gamma * soft

    def pair_slope(self, theta, s, hard, sigmoid):
        # d/dtheta of the soft term: 2 r / K * dr/dtheta with r = inner/2 + q - 2 s q, inner = theta K / beta
        q = self.nbits / 2.0
        residual = 0.5 * theta * (self.nbits / self.beta) + q - 2.0 * s * q
        soft = residual / self.beta
        return hard * (sigmoid - s) + (1.0 - hard) * self.gamma * soft
