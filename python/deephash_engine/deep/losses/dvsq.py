"""DVSQ: Cao, Long, Wang, Liu, "Deep Visual-Semantic Quantization for Efficient Image Retrieval",
CVPR 2017.

Image embeddings ``z = tanh(u)`` are aligned with label embeddings ``v_l`` (unit norm, one per
class) by an adaptive-margin hinge, and quantized by composite quantization (each item the sum
of one codeword from each of M full-width codebooks, codes by ICM):

    L = sum_i sum_{j in Y_i} sum_{k not in Y_i} max(0, delta_jk - cos(z_i, v_j) + cos(z_i, v_k))
        / (L_classes * sum_i |Y_i|)
        + lambda * mean_i sum_l ( v_l^T (z_i - C b_i) )^2

with the adaptive margin ``delta_jk = 1 - cos(v_j, v_k)``: labels that mean nearly the same
thing need little separation. The quantization error is measured through the label embeddings
(inner products with the labels are what retrieval uses). Search ranks the database by the
asymmetric inner product ``<z_q, sum_m C_m[b_m]>``.

Label embeddings: the class names embedded by all-MiniLM-L6-v2 (384-d; the paper uses 300-d
word2vec), mapped to the embedding width by a fixed seeded projection when the widths differ
(:mod:`..quantization.label_embeddings`); or any (C, D) array passed as ``label_embeddings`` (or
a ``.npy`` path). Defaults: a 300-d embedding (``embed_dim``, the paper's and thulab's width,
whatever the code length), M = nbits / 8 codebooks of 256 codewords (codes of nbits bits),
``quant_weight = 1e-4`` (thulab's ``cq_lambda``, on the same term), 3 ICM sweeps, 3 rounds of
(ICM, least-squares codebooks) per epoch. Beside thulab's own graph (benchmarks/thulab_peer.py)
the former defaults, an embedding as wide as the code and a weight of 0.1, trailed it by 0.043
mAP at 16 bits on fashion-mnist-mini (docs/benchmarks.md, "DVSQ beside thulab's graph").
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch

from ..quantization.label_embeddings import as_label_embeddings, embed_class_names, project_to_width
from .quantized import QuantizationLoss


def adaptive_margin_loss(z: torch.Tensor, target: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The hinge of the module doc, for embeddings z, multi-hot targets and unit label rows."""
    unit = z / z.norm(dim=1, keepdim=True).clamp(min=1e-12)
    cos = unit @ labels.t()  # (n, C)
    margin = 1.0 - labels @ labels.t()  # (C, C)
    hinge = torch.relu(margin[None, :, :] - cos[:, :, None] + cos[:, None, :])
    mask = target[:, :, None] * (1.0 - target[:, None, :])
    return (hinge * mask).sum() / (labels.shape[0] * target.sum()).clamp(min=1.0)


class DVSQLoss(QuantizationLoss):
    method = "dvsq"
    product = False
    metric = "ip"

    default_embed_dim = 300

    def __init__(self, nbits: int, num_train: int, num_classes: int, label_embeddings=None,
                 class_names: Optional[Sequence[str]] = None, label_cache: Optional[str] = None,
                 subspaces=None, codewords: int = 256, quant_weight: float = 1e-4,
                 codebook_iters: int = 3, icm_sweeps: int = 3, seed: int = 0,
                 embed_dim: Optional[int] = None) -> None:
        super().__init__(nbits, num_train, subspaces, codewords, quant_weight, codebook_iters, icm_sweeps, seed,
                         embed_dim=embed_dim)
        if label_embeddings is not None:
            vectors = as_label_embeddings(label_embeddings, num_classes)
        elif class_names is not None:
            if len(class_names) != num_classes:
                raise ValueError(f"class_names: expected {num_classes} names, got {len(class_names)}")
            vectors = embed_class_names(class_names, label_cache)
        else:
            raise ValueError("label_embeddings, class_names: DVSQ needs one of them (an array (C, D) or the "
                             "class names to embed), got neither")
        self.register_buffer("label_vectors", torch.from_numpy(project_to_width(vectors, self.nbits, seed)))

    def similarity_loss(self, z, target):
        return adaptive_margin_loss(z, target.to(z.dtype), self.label_vectors.to(z.dtype))

    def quantization(self, z, target):
        if not bool(self.ready):
            return z.sum() * 0.0
        residual = z - self.decode(self.encode(z.detach())).to(z.dtype)
        return ((residual @ self.label_vectors.to(z.dtype).t()) ** 2).sum(1).mean()
