"""The shared part of the quantization losses (DQN, DTQ, DVSQ): codebooks learned with the
network, codes that are codeword indices rather than bits, and ADC search for evaluation.

- The network output ``u`` (batch, D) becomes the embedding ``z = embed(u)`` (tanh here). The
  codes are ``M`` codeword indices of ``log2 K`` bits each (``M log2 K`` bits per item; the
  default ``M = nbits / 8`` of ``K = 256`` codewords makes them ``nbits`` long). The embedding
  width D is ``embed_dim``: by default the code length ``nbits`` itself, or the method's own
  (``default_embed_dim``: DVSQ's 300, the width of the paper's label vectors). ``self.nbits``
  (what the trainer checks the network's output against) is D.
- Each step adds ``quant_weight * mean_i ||z_i - C b_i||^2`` (or the method's own quantization
  term) to the similarity loss, with b_i the current code of z_i under the current codebooks
  (recomputed for the batch: exactly the code the alternating code step would choose) and the
  codebooks held fixed: the network step of the alternating scheme of the papers.
- The embeddings of the epoch are kept per training sample; at the end of each epoch the
  codebook step runs ``codebook_iters`` rounds of (encode every kept embedding, refit the
  codebooks): k-means centroid steps for product quantization, least squares for composite
  quantization. The first epoch has no codebooks yet (they are initialised from its
  embeddings at its end), so its quantization term is zero.
- Evaluation encodes the database (:meth:`encode`), builds a FAISS index with the learned
  codebooks and ranks by asymmetric distance (:mod:`..quantization.adc`).
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from ..quantization import codebooks as cb
from .base import HashLoss, check_positive_int


class QuantizationLoss(HashLoss):
    """Base of the quantization losses; subclasses implement :meth:`similarity_loss`."""

    needs_index = True
    #: Marks a loss whose codes are quantization codes (the trainer and run evaluate by ADC).
    quantized = True
    #: Product quantization (codebooks on disjoint slices); False: composite (sums of codewords).
    product = True
    #: ADC score: "l2" (smaller is closer) or "ip" (inner product, larger is closer).
    metric = "l2"
    #: The embedding width when none is given: None for the code length (see the module doc).
    default_embed_dim: Optional[int] = None

    @classmethod
    def embedding_width(cls, nbits: int, embed_dim: Optional[int] = None) -> int:
        """The network output width for codes of ``nbits`` bits (``embed_dim`` when given)."""
        if embed_dim is not None:
            return check_positive_int(embed_dim, "embed_dim")
        return cls.default_embed_dim or check_positive_int(nbits, "nbits")

    def __init__(self, nbits: int, num_train: int, subspaces: Optional[int] = None,
                 codewords: int = 256, quant_weight: float = 0.1, codebook_iters: int = 5,
                 icm_sweeps: int = 3, seed: int = 0, embed_dim: Optional[int] = None) -> None:
        width = self.embedding_width(nbits, embed_dim)
        super().__init__(width)
        check_positive_int(num_train, "num_train")
        subspaces = max(1, nbits // 8) if subspaces is None else check_positive_int(subspaces, "subspaces")
        if self.product and width % subspaces:
            raise ValueError(f"subspaces: expected a divisor of the embedding width ({width}) for product "
                             f"quantization, got {subspaces}")
        if codewords < 2 or codewords & (codewords - 1):
            raise ValueError(f"codewords: expected a power of two >= 2, got {codewords}")
        if quant_weight < 0:
            raise ValueError(f"quant_weight: expected >= 0, got {quant_weight}")
        self.subspaces, self.codewords = subspaces, int(codewords)
        self.quant_weight = float(quant_weight)
        self.codebook_iters = check_positive_int(codebook_iters, "codebook_iters")
        self.icm_sweeps = check_positive_int(icm_sweeps, "icm_sweeps")
        self.seed = int(seed)
        sub = width // subspaces if self.product else width
        self.register_buffer("codebooks", torch.zeros(subspaces, self.codewords, sub))
        self.register_buffer("ready", torch.zeros((), dtype=torch.bool))
        self.register_buffer("Z", torch.zeros(num_train, width))
        self.register_buffer("seen", torch.zeros(num_train, dtype=torch.bool))

    @property
    def code_bits(self) -> int:
        """Bits per stored code: M log2 K."""
        return self.subspaces * (self.codewords.bit_length() - 1)

    def embed(self, u: torch.Tensor) -> torch.Tensor:
        """The embedding that is quantized and searched: tanh of the head output."""
        return torch.tanh(u)

    @torch.no_grad()
    def encode(self, z: torch.Tensor) -> torch.Tensor:
        """Codes (n, M) of embeddings under the current codebooks: the nearest codeword per
        subspace (PQ) or ICM (composite)."""
        books = self.codebooks
        if self.product:
            return cb.pq_encode(z.to(books.dtype), books)
        return cb.icm_encode(z.to(books.dtype), books, sweeps=self.icm_sweeps)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return cb.pq_decode(codes, self.codebooks) if self.product else cb.composite_decode(codes, self.codebooks)

    def quantization(self, z: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``mean_i ||z_i - C b_i||^2`` with the codes and codebooks fixed (zero before the
        codebooks exist). Subclasses may measure the error differently."""
        if not bool(self.ready):
            return z.sum() * 0.0
        recon = self.decode(self.encode(z.detach())).to(z.dtype)
        return ((z - recon) ** 2).sum(1).mean()

    def similarity_loss(self, z: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def compute(self, u, target, index):
        z = self.embed(u)
        if self.training:
            with torch.no_grad():
                self.Z[index] = z.detach().to(self.Z.dtype)
                self.seen[index] = True
        return self.similarity_loss(z, target) + self.quant_weight * self.quantization(z, target)

    @torch.no_grad()
    def update_codebooks(self, z: Optional[torch.Tensor] = None, epoch: int = 0) -> None:
        """The codebook step: initialise from the data when there are no codebooks yet, then
        ``codebook_iters`` rounds of (encode, refit) on ``z`` (default: the kept embeddings)."""
        z = self.Z[self.seen] if z is None else z.to(self.codebooks.dtype)
        if z.shape[0] == 0:
            return
        books = self.codebooks
        if not bool(self.ready):
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + int(epoch))
            books = cb.init_codebooks(z, self.subspaces, self.codewords, self.product, gen).to(books.dtype)
        for _ in range(self.codebook_iters):
            if self.product:
                books = cb.pq_update(z, cb.pq_encode(z, books), books)
            else:
                books = cb.composite_update(z, cb.icm_encode(z, books, sweeps=self.icm_sweeps), books)
        self.codebooks.copy_(books)
        self.ready.fill_(True)

    def on_epoch_end(self, epoch: int) -> None:
        self.update_codebooks(epoch=epoch)

    # -- evaluation ----------------------------------------------------------------------
    def embeddings(self, outputs: np.ndarray) -> np.ndarray:
        """float32 embeddings of raw head outputs (as :func:`..evaluation.compute_outputs` gives)."""
        with torch.no_grad():
            return self.embed(torch.as_tensor(outputs, dtype=torch.float32)).numpy()

    def database_codes(self, embeddings: np.ndarray) -> np.ndarray:
        """int64 (n, M) codes of database embeddings under the learned codebooks."""
        if not bool(self.ready):
            raise ValueError(f"codebooks: {type(self).__name__} has no learned codebooks yet (train for an epoch first)")
        return self.encode(torch.as_tensor(embeddings, device=self.codebooks.device)).cpu().numpy()

    def codebooks_array(self) -> np.ndarray:
        return self.codebooks.detach().cpu().numpy()
