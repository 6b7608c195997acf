"""Per-method invariants that a wrong implementation fails."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from deephash_engine.hashing import AGH, DGH, ITQ, PCAH, SGH, SH, SpH


# ----------------------------------------------------------------------------- ITQ
def test_itq_rotation_orthogonal_and_loss_non_increasing(blobs):
    X, _ = blobs
    itq = ITQ(16, n_iter=30, seed=2).fit(X)
    R = itq.rotation_
    np.testing.assert_allclose(R.T @ R, np.eye(16), atol=1e-10)
    losses = itq.loss_history_
    assert losses.shape == (30,)
    assert np.all(np.diff(losses) <= 1e-9 * losses[0]), losses
    assert losses[-1] < losses[0]
    # Re-encoding with the final R can only lower the loss further (a fresh B-step).
    assert itq.quantization_loss(X) <= losses[-1] + 1e-9


def test_itq_rotation_lowers_loss_against_pca_alone(fmnist):
    db, _, _, _ = fmnist
    itq = ITQ(32, seed=0).fit(db)
    V = (db - itq.mean_) @ itq.components_
    pca_loss = np.sum((np.where(V >= 0, 1.0, -1.0) - V) ** 2) / len(db)
    assert itq.quantization_loss(db) < 0.9 * pca_loss


def test_itq_loss_history_matches_direct_computation(blobs):
    X, _ = blobs
    itq = ITQ(16, n_iter=1, seed=4).fit(X)
    # One pass: B from the initial random rotation R0, then R1; the recorded loss is ||B - V R1||^2 / n.
    V = (X - itq.mean_) @ itq.components_
    rng = np.random.default_rng(4)
    R0, _, _ = np.linalg.svd(rng.standard_normal((16, 16)))
    B = np.where(V @ R0 >= 0, 1.0, -1.0)
    expected = np.sum((B - V @ itq.rotation_) ** 2) / len(X)
    assert itq.loss_history_[0] == pytest.approx(expected, rel=1e-9)


# ----------------------------------------------------------------------------- PCAH
def test_pcah_bits_are_signs_of_top_principal_directions(blobs, unpack):
    X, _ = blobs
    bits = unpack(PCAH(8).fit(X).encode(X))
    centred = X - X.mean(axis=0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    assert np.all(np.diff(singular[:9]) < 0)  # distinct variances: directions are defined
    for j in range(8):
        reference = (centred @ vt[j] >= 0).astype(np.uint8)
        # An eigenvector's sign is arbitrary: bit j equals the reference or its complement.
        agree = np.mean(bits[:, j] == reference)
        assert agree == 1.0 or agree == 0.0, (j, agree)


def test_pcah_variances_are_sorted(blobs):
    X, _ = blobs
    pcah = PCAH(16).fit(X)
    var = pcah.explained_variance_
    assert np.all(np.diff(var) <= 0)
    projected = pcah.project(X)
    np.testing.assert_allclose(projected.var(axis=0, ddof=1), var, rtol=1e-8)


# ----------------------------------------------------------------------------- SH
def _uniform_box(widths, n, seed):
    rng = np.random.default_rng(seed)
    return rng.uniform(0.0, 1.0, size=(n, len(widths))) * np.asarray(widths)


def test_sh_modes_follow_eigenvalue_order(unpack):
    # Widths 6, 2.5 and 1.1: the eigenvalue of mode (axis j, frequency k) grows with (k / width_j)^2.
    widths = (6.0, 2.5, 1.1)
    X = _uniform_box(widths, 20000, seed=0)
    sh = SH(8).fit(X)
    expected = [(0, 1), (0, 2), (1, 1), (0, 3), (0, 4), (1, 2), (0, 5), (2, 1)]
    assert [tuple(m) for m in sh.modes_] == expected
    assert np.all(np.diff(sh.eigenvalues_) > 0)
    # Each bit is the sign of cos(k pi (x_j - min_j) / range_j) along the matching axis (PCA may
    # flip an axis, which flips the bits of odd frequencies, and tilt it slightly).
    bits = unpack(sh.encode(X))
    lower, span = X.min(axis=0), X.max(axis=0) - X.min(axis=0)
    for i, (axis, k) in enumerate(expected):
        reference = np.cos(k * np.pi * (X[:, axis] - lower[axis]) / span[axis]) >= 0
        agree = np.mean(bits[:, i] == reference)
        assert max(agree, 1 - agree) > 0.98, (i, agree)


def test_sh_first_bit_splits_widest_direction_in_half(blobs, unpack):
    X, _ = blobs
    sh = SH(16).fit(X)
    widest = int(np.argmax(sh.range_))
    assert tuple(sh.modes_[0]) == (widest, 1)
    t = (X - sh.mean_) @ sh.components_[:, widest]
    midpoint = sh.lower_[widest] + sh.range_[widest] / 2
    np.testing.assert_array_equal(unpack(sh.encode(X))[:, 0], (t <= midpoint).astype(np.uint8))


# ----------------------------------------------------------------------------- SpH
def test_sph_reaches_balance_criterion(fmnist, unpack):
    db, _, _, _ = fmnist
    sph = SpH(16, n_train=len(db), seed=0).fit(db)
    assert bool(sph.converged_) and 0 < int(sph.n_iter_) < sph.max_iter
    bits = unpack(sph.encode(db)).astype(np.float64)
    n = len(db)
    # Each sphere holds half of the training points.
    assert np.all(np.abs(bits.sum(axis=0) - n / 2) <= 1)
    # Each pair shares about a quarter: mean |o_ij - n/4| <= 10% and std <= 15% of n/4.
    overlaps = (bits.T @ bits)[np.triu_indices(16, k=1)]
    quarter = n / 4
    assert np.mean(np.abs(overlaps - quarter)) <= 0.10 * quarter
    assert np.std(overlaps) <= 0.15 * quarter


def test_sph_random_initial_spheres_are_not_balanced(fmnist, unpack):
    # Guards the test above: with no iterations the criterion does not hold on this data.
    db, _, _, _ = fmnist
    sph = SpH(16, n_train=len(db), max_iter=0, seed=0).fit(db)
    assert not bool(sph.converged_)


# ----------------------------------------------------------------------------- AGH
def test_agh_anchor_graph_rows_sum_to_one(blobs):
    X, _ = blobs
    agh = AGH(16, n_anchors=40, n_neighbors=3).fit(X)
    Z = agh.anchor_graph(X)
    assert Z.shape == (len(X), agh.anchors_.shape[0])
    np.testing.assert_allclose(np.asarray(Z.sum(axis=1)).ravel(), 1.0, atol=1e-12)
    assert np.all(np.diff(Z.indptr) == 3) and np.all(Z.data > 0)
    # Each point's weights go to its 3 nearest anchors.
    d = ((X[:, None, :] - agh.anchors_[None, :, :]) ** 2).sum(axis=2)
    nearest = np.sort(np.argsort(d, axis=1)[:, :3], axis=1)
    np.testing.assert_array_equal(np.sort(Z.indices.reshape(-1, 3), axis=1), nearest)


def test_agh_embedding_balanced_and_orthonormal(fmnist, unpack):
    db, _, _, _ = fmnist
    agh = AGH(16, n_anchors=100).fit(db)
    Y = agh.project(db)
    # Orthogonal to the constant vector (balanced) and Y^T Y = I (uncorrelated bits).
    np.testing.assert_allclose(Y.sum(axis=0), 0.0, atol=1e-8)
    np.testing.assert_allclose(Y.T @ Y, np.eye(16), atol=1e-8)
    ones = unpack(agh.encode(db)).mean(axis=0)
    assert np.all((ones > 0.2) & (ones < 0.8)), ones


def test_two_layer_agh_first_layer_is_one_layer_code(fmnist, unpack):
    db, _, _, _ = fmnist
    two = unpack(AGH(16, n_anchors=100, layers=2, seed=5).fit(db).encode(db))
    one = unpack(AGH(8, n_anchors=100, layers=1, seed=5).fit(db).encode(db))
    np.testing.assert_array_equal(two[:, :8], one)
    # The second layer splits each side again: it is neither a copy nor a complement of layer 1.
    for k in range(8):
        assert 0.05 < np.mean(two[:, 8 + k] == two[:, k]) < 0.95


# ----------------------------------------------------------------------------- DGH
@pytest.mark.parametrize("init", ["rotation", "eigen"])
def test_dgh_objective_does_not_increase(fmnist, init):
    db, _, _, _ = fmnist
    dgh = DGH(16, n_anchors=100, init=init, tol=0.0, outer_iter=3).fit(db)
    history = dgh.objective_history_
    assert len(history) >= 2
    assert np.all(np.diff(history) <= 1e-9 * abs(history[0])), history
    assert history[-1] < history[0]


def test_dgh_out_of_sample_reproduces_training_codes(fmnist, unpack):
    db, _, _, _ = fmnist
    dgh = DGH(16, n_anchors=100).fit(db)
    learned = dgh.train_codes_ > 0
    assert np.mean(unpack(dgh.encode(db)).astype(bool) == learned) > 0.97


# ----------------------------------------------------------------------------- SGH
def test_sgh_reconstruction_beats_pca_sign(fmnist):
    db, _, _, _ = fmnist
    sgh = SGH(16, n_iter=200, device="cpu", num_threads=1, seed=0).fit(db)
    # PCA-sign codes with their best linear decoder (least squares, with intercept), the same
    # decoder family as SGH's: a strictly harder bar than decoding them with the PCA basis.
    pcah = PCAH(16).fit(db)
    B = np.where(pcah.project(db) >= 0, 1.0, -1.0)
    design = np.hstack([B, np.ones((len(db), 1))])
    coef, *_ = np.linalg.lstsq(design, db, rcond=None)
    pca_sign_error = 0.5 * np.sum((db - design @ coef) ** 2) / len(db)
    assert sgh.reconstruction_error(db) < pca_sign_error
    losses = sgh.loss_history_
    assert losses[-20:].mean() < 0.6 * losses[:20].mean()


def test_sgh_fit_restores_torch_threads(blobs):
    torch = pytest.importorskip("torch")
    X, _ = blobs
    before = torch.get_num_threads()
    SGH(8, n_iter=3, batch_size=10, device="cpu", num_threads=1).fit(X)
    assert torch.get_num_threads() == before


def test_dgh_y_step_handles_rank_deficient_codes():
    # Constant and duplicated bit columns make J B rank-deficient; Y must still satisfy the
    # constraints 1^T Y = 0 and Y^T Y = n I.
    rng = np.random.default_rng(0)
    n = 400
    B = np.where(rng.standard_normal((n, 8)) >= 0, 1.0, -1.0)
    B[:, 3] = 1.0
    B[:, 5] = B[:, 1]
    Y = DGH(8, n_anchors=20)._y_step(B, rng)
    np.testing.assert_allclose(Y.sum(axis=0), 0.0, atol=1e-8)
    np.testing.assert_allclose(Y.T @ Y, n * np.eye(8), atol=1e-7)
    # On the full-rank part Y is the exact maximiser: tr(B^T Y) = sqrt(n) * (sum of singular values).
    JB = B - B.mean(axis=0)
    assert np.sum(B * Y) == pytest.approx(np.sqrt(n) * np.linalg.svd(JB, compute_uv=False).sum(), rel=1e-9)


def test_sgh_without_torch_fails_clearly_but_saved_model_encodes(blobs, tmp_path, monkeypatch):
    X, _ = blobs
    path = tmp_path / "sgh.npz"
    model = SGH(8, n_iter=5, batch_size=20, device="cpu", num_threads=1).fit(X)
    model.save(path)
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now fails
    with pytest.raises(ImportError, match="SGH.fit needs PyTorch"):
        SGH(8, n_iter=5).fit(X)
    np.testing.assert_array_equal(SGH.load(path).encode(X), model.encode(X))
