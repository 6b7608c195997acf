"""Codebooks and encoders of the quantization methods (DQN, DTQ: product quantization; DVSQ:
composite quantization), in PyTorch so they run on the training device.

Shapes, for ``n`` vectors of dimension ``d``, ``M`` codebooks of ``K`` codewords each:

- product quantization (PQ): ``codebooks`` is (M, K, d / M); codebook m quantizes the m-th
  contiguous slice of the vector, and the reconstruction is the concatenation of the chosen
  codewords;
- composite (additive) quantization: ``codebooks`` is (M, K, d); the reconstruction is the sum
  of one codeword from each codebook;
- ``codes`` is int64 (n, M), entry m the codeword chosen from codebook m.
"""

from __future__ import annotations

from typing import Optional

import torch


def check_codebooks(codebooks: torch.Tensor, dim: int, product: bool) -> None:
    """Raise unless ``codebooks`` is (M, K, dim / M) (product) or (M, K, dim) (composite)."""
    if codebooks.dim() != 3:
        raise ValueError(f"codebooks: expected a 3-D tensor (M, K, sub-dimension), got shape {tuple(codebooks.shape)}")
    m, _, sub = codebooks.shape
    want = dim // m if product else dim
    if (product and m * sub != dim) or (not product and sub != dim):
        raise ValueError(f"codebooks: expected shape ({m}, K, {want}) for vectors of dimension {dim}, "
                         f"got {tuple(codebooks.shape)}")


def _squared_distances(x: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
    """(n, K) squared Euclidean distances of the rows of x to the rows of words."""
    return (x * x).sum(1, keepdim=True) - 2.0 * x @ words.t() + (words * words).sum(1)[None, :]


def pq_split(x: torch.Tensor, subspaces: int) -> torch.Tensor:
    """(n, d) -> (M, n, d / M): the slices each codebook quantizes."""
    n, d = x.shape
    return x.reshape(n, subspaces, d // subspaces).permute(1, 0, 2)


def pq_encode(x: torch.Tensor, codebooks: torch.Tensor) -> torch.Tensor:
    """Nearest codeword per subspace (ties: the lowest codeword index). Returns int64 (n, M)."""
    check_codebooks(codebooks, x.shape[1], product=True)
    parts = pq_split(x.to(codebooks.dtype), codebooks.shape[0])
    return torch.stack([_squared_distances(p, c).argmin(1) for p, c in zip(parts, codebooks)], 1)


def pq_decode(codes: torch.Tensor, codebooks: torch.Tensor) -> torch.Tensor:
    """(n, M) codes -> (n, d) reconstructions: the chosen codewords side by side."""
    return torch.cat([codebooks[m][codes[:, m]] for m in range(codebooks.shape[0])], 1)


def pq_update(x: torch.Tensor, codes: torch.Tensor, codebooks: torch.Tensor) -> torch.Tensor:
    """The k-means centroid step: each codeword becomes the mean of the slices assigned to it;
    a codeword with no slice keeps its value. Returns new codebooks."""
    m_count, k_count, _ = codebooks.shape
    parts = pq_split(x.to(codebooks.dtype), m_count)
    new = codebooks.clone()
    for m in range(m_count):
        sums = torch.zeros_like(codebooks[m]).index_add_(0, codes[:, m], parts[m])
        counts = torch.bincount(codes[:, m], minlength=k_count).to(codebooks.dtype)
        used = counts > 0
        new[m][used] = sums[used] / counts[used, None]
    return new


def composite_decode(codes: torch.Tensor, codebooks: torch.Tensor) -> torch.Tensor:
    """(n, M) codes -> (n, d): the sum of the chosen codewords."""
    return sum(codebooks[m][codes[:, m]] for m in range(codebooks.shape[0]))


def composite_error(x: torch.Tensor, codes: torch.Tensor, codebooks: torch.Tensor) -> torch.Tensor:
    """Per-row squared reconstruction error ``||x - sum_m C_m[b_m]||^2`` (n,)."""
    return ((x.to(codebooks.dtype) - composite_decode(codes, codebooks)) ** 2).sum(1)


def _greedy_residual(x: torch.Tensor, codebooks: torch.Tensor, first: Optional[int] = None) -> torch.Tensor:
    """Codes chosen one codebook after another, each nearest to what the previous ones left."""
    residual = x.clone()
    codes = []
    for m in range(codebooks.shape[0]):
        if m == 0 and first is not None:
            pick = torch.full((x.shape[0],), first, dtype=torch.int64, device=x.device)
        else:
            pick = _squared_distances(residual, codebooks[m]).argmin(1)
        residual = residual - codebooks[m][pick]
        codes.append(pick)
    return torch.stack(codes, 1)


def icm_encode(x: torch.Tensor, codebooks: torch.Tensor, sweeps: int = 3, starts: int = 1,
               init: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Composite-quantization codes by iterated conditional modes (ICM).

    Each sweep visits the codebooks in turn and sets code m to the codeword nearest to
    ``x - sum_{l != m} C_l[b_l]``, the exact minimiser of ``||x - sum_l C_l[b_l]||^2`` over b_m
    with the others fixed, so no step increases the error (a codeword is only replaced by a
    strictly better one: ties keep the current code). ``init`` gives the starting codes; by
    default they are chosen greedily (codebook after codebook on the residual). With
    ``starts > 1`` ICM also runs from starts whose first code is fixed to 0, 1, ..., starts - 2,
    and each row keeps its best result; with ``starts = K + 1`` and two codebooks this is an
    exhaustive search. Returns int64 (n, M).
    """
    check_codebooks(codebooks, x.shape[1], product=False)
    x = x.to(codebooks.dtype)
    runs = [init.clone() if init is not None else _greedy_residual(x, codebooks)]
    runs += [_greedy_residual(x, codebooks, first=s) for s in range(min(starts, codebooks.shape[1] + 1) - 1)]
    best, best_err = None, None
    for codes in runs:
        recon = composite_decode(codes, codebooks)
        for _ in range(sweeps):
            for m in range(codebooks.shape[0]):
                current = codebooks[m][codes[:, m]]
                target = x - recon + current
                dist = _squared_distances(target, codebooks[m])
                pick = dist.argmin(1)
                keep = dist.gather(1, pick[:, None])[:, 0] >= dist.gather(1, codes[:, m:m + 1])[:, 0]
                pick = torch.where(keep, codes[:, m], pick)
                recon = recon - current + codebooks[m][pick]
                codes[:, m] = pick
        err = composite_error(x, codes, codebooks)
        if best is None:
            best, best_err = codes, err
        else:
            better = err < best_err
            best = torch.where(better[:, None], codes, best)
            best_err = torch.where(better, err, best_err)
    return best


def composite_update(x: torch.Tensor, codes: torch.Tensor, codebooks: torch.Tensor,
                     ridge: float = 1e-3) -> torch.Tensor:
    """Least-squares codebooks for fixed codes: ``argmin_C ||X - B C||^2 + ridge ||C||^2`` with
    B the (n, M K) one-hot matrix of the codes, solved from ``B^T B`` (codeword co-occurrence
    counts) and ``B^T X`` without forming B. A codeword no row uses keeps its value (the ridge
    alone would zero it). Returns (M, K, d)."""
    m_count, k_count, d = codebooks.shape
    size = m_count * k_count
    flat = codes + torch.arange(m_count, device=codes.device)[None, :] * k_count
    pairs = (flat[:, :, None] * size + flat[:, None, :]).reshape(-1)
    gram = torch.bincount(pairs, minlength=size * size).reshape(size, size).to(torch.float64)
    gram += ridge * torch.eye(size, dtype=torch.float64, device=x.device)
    rhs = torch.zeros(size, d, dtype=torch.float64, device=x.device)
    x64 = x.to(torch.float64)
    for m in range(m_count):
        rhs.index_add_(0, flat[:, m], x64)
    solved = torch.linalg.solve(gram, rhs).reshape(m_count, k_count, d).to(codebooks.dtype)
    unused = (torch.diagonal(gram) <= ridge).reshape(m_count, k_count)
    return torch.where(unused[:, :, None], codebooks, solved)


def init_codebooks(x: torch.Tensor, subspaces: int, codewords: int, product: bool,
                   generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Starting codebooks drawn from the data: K rows of x per codebook, sliced to its subspace.
    For composite quantization the codebooks are full-width and start block-diagonal, codebook
    m holding its slice and zeros elsewhere (a product quantizer, as thulab initialises DVSQ and
    DTQ); the composite steps then let them spread. Rows are drawn without replacement when
    there are enough, with replacement else."""
    n, d = x.shape
    bounds = [round(m * d / subspaces) for m in range(subspaces + 1)]
    books = []
    for m in range(subspaces):
        if n >= codewords:
            rows = torch.randperm(n, generator=generator)[:codewords]
        else:
            rows = torch.randint(0, n, (codewords,), generator=generator)
        pick = x[rows.to(x.device)]
        if product:
            books.append(pq_split(pick, subspaces)[m])
        else:
            block = torch.zeros_like(pick)
            block[:, bounds[m]:bounds[m + 1]] = pick[:, bounds[m]:bounds[m + 1]]
            books.append(block)
    return torch.stack(books)
