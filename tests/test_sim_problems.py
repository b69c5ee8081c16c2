"""Native problems against independent NumPy formulas, finite differences and eigvalsh."""
import os
import sys

import numpy as np
import pytest
import scipy.sparse as sp

import pyqsgd as pq

sys.path.insert(0, os.path.dirname(__file__))
import _sim_reference as ref  # noqa: E402


def _make(kind, sparse, l2, seed=0, n=150, d=9):
    rng = np.random.default_rng(seed)
    A = (rng.standard_normal((n, d)) * rng.uniform(0.2, 3.0, d)).astype(np.float32)
    if sparse:
        A[rng.random((n, d)) < 0.6] = 0.0
        A = sp.csr_matrix(A)
    if kind == "ls":
        y = rng.standard_normal(n).astype(np.float32)
        C = None
    elif kind == "logistic":
        y = rng.choice([-1.0, 1.0], n).astype(np.float32)
        C = None
    else:
        C = 4
        y = rng.integers(0, C, n)
    return ref.native_problem(kind, A, y, l2, C), ref.NumpyObjective(kind, A, y, l2, C)


CASES = [(k, s, l2) for k in ("ls", "logistic", "softmax") for s in (False, True) for l2 in (0.0, 0.3)]


@pytest.mark.parametrize("kind, sparse, l2", CASES)
def test_loss_and_grad_match_numpy(kind, sparse, l2):
    prob, obj = _make(kind, sparse, l2)
    rng = np.random.default_rng(1)
    idx = rng.choice(obj.n_samples, 37, replace=False)
    for _ in range(3):
        x = rng.standard_normal(obj.dim)
        # Both evaluate the same float32 data in double: only summation order differs (1e-12).
        assert prob.loss(x) == pytest.approx(obj.loss(x), rel=1e-12)
        assert prob.loss(x, idx) == pytest.approx(obj.loss(x, idx), rel=1e-12)
        np.testing.assert_allclose(prob.grad(x), obj.grad(x), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(prob.grad(x, idx), obj.grad(x, idx), rtol=1e-10, atol=1e-12)
    # l2 enters as (l2/2)||x||^2 and l2 x exactly.
    x = rng.standard_normal(obj.dim)
    prob0, _ = _make(kind, sparse, 0.0)
    assert prob.loss(x) - prob0.loss(x) == pytest.approx(0.5 * l2 * x @ x, rel=1e-10, abs=1e-12)
    np.testing.assert_allclose(prob.grad(x) - prob0.grad(x), l2 * x, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("kind, sparse, l2", CASES[::3])
def test_grad_matches_central_differences(kind, sparse, l2):
    prob, obj = _make(kind, sparse, l2, seed=2)
    rng = np.random.default_rng(3)
    x = rng.standard_normal(obj.dim) * 0.5
    g = prob.grad(x)
    h = 1e-5
    fd = np.array([(prob.loss(x + h * e) - prob.loss(x - h * e)) / (2 * h) for e in np.eye(obj.dim)])
    # Central differences: truncation O(h^2 f''') ~ 1e-10, cancellation ~ eps f / h ~ 1e-11.
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("kind, sparse, l2", CASES)
def test_smoothness_upper_bounds_true_constant(kind, sparse, l2):
    prob, obj = _make(kind, sparse, l2, seed=4)
    L_true = float(np.linalg.eigvalsh(obj.hess_bound_matrix())[-1]) + l2
    L = prob.smoothness()
    assert L >= L_true * (1 - 1e-12)
    assert L <= L_true * (1 + 1e-6)
    idx = np.arange(0, obj.n_samples, 3)
    sub = obj.hess_bound_matrix.__func__(type("S", (), {"X": obj.X[idx], "kind": kind})())
    assert prob.smoothness(idx) == pytest.approx(float(np.linalg.eigvalsh(sub)[-1]) + l2, rel=1e-6)


def test_smoothness_with_clustered_top_eigenvalues():
    """Power iteration converges like (lambda_2/lambda_1)^k: a near-double top eigenvalue is the
    hard case; the constant must still be an upper bound (a step 1/L must be safe)."""
    rng = np.random.default_rng(5)
    d, n = 40, 400
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    spectrum = np.linspace(0.5, 0.99, d)
    spectrum[-1] = 1.0
    # A^T A / n = Q diag(spectrum) Q^T exactly: A = sqrt(n) [diag(sqrt(s)) Q^T ; 0].
    A = np.zeros((n, d))
    A[:d] = np.sqrt(n) * (np.sqrt(spectrum)[:, None] * Q.T)
    A = A.astype(np.float32)
    prob = pq.problems.LeastSquares(A, np.zeros(n, np.float32))
    L_true = float(np.linalg.eigvalsh(A.astype(np.float64).T @ A.astype(np.float64) / n)[-1])
    assert prob.smoothness() >= L_true * (1 - 1e-12)
    assert prob.smoothness() <= L_true * (1 + 1e-3)


def test_logistic_is_stable_for_large_margins():
    A = np.array([[1000.0], [-1000.0]], np.float32)
    prob = pq.problems.LogisticRegression(A, np.array([1.0, 1.0], np.float32))
    # phi = log(1 + e^{-1000}) ~ 0 and log(1 + e^{1000}) ~ 1000: mean 500, no overflow.
    assert prob.loss(np.ones(1)) == pytest.approx(500.0, rel=1e-12)
    assert np.isfinite(prob.grad(np.ones(1))).all()
    assert prob.grad(np.ones(1))[0] == pytest.approx(500.0, rel=1e-12)


def test_sparse_and_dense_agree():
    prob_s, _ = _make("logistic", True, 0.1, seed=6)
    A = prob_s._init_args[0][0].toarray()
    prob_d = pq.problems.LogisticRegression(A, prob_s.y, l2=0.1)
    x = np.random.default_rng(0).standard_normal(prob_s.dim)
    assert prob_s.loss(x) == pytest.approx(prob_d.loss(x), rel=1e-13)
    np.testing.assert_allclose(prob_s.grad(x), prob_d.grad(x), rtol=1e-12, atol=1e-14)


def test_problem_attributes_and_pickle():
    import pickle

    prob, _ = _make("softmax", False, 0.1)
    assert prob.dim == 4 * 9 and prob.n_samples == 150
    assert "SoftmaxRegression" in repr(prob) and "n_classes=4" in repr(prob)
    again = pickle.loads(pickle.dumps(prob))
    x = np.linspace(-1, 1, prob.dim)
    assert again.loss(x) == prob.loss(x)


# ---- bad input ------------------------------------------------------------------------------------

A3 = np.ones((3, 2), np.float32)


@pytest.mark.parametrize("make, exc, words", [
    (lambda: pq.problems.LogisticRegression(A3, [0.0, 1.0, 1.0]), ValueError, "+1 or -1"),
    (lambda: pq.problems.LogisticRegression(A3, [1.0, -1.0]), ValueError, "one entry per row"),
    (lambda: pq.problems.LogisticRegression(A3, np.ones((3, 1))), ValueError, "1-D"),
    (lambda: pq.problems.LeastSquares(A3, np.ones(4)), ValueError, "b must"),
    (lambda: pq.problems.LeastSquares(np.ones(3), np.ones(3)), ValueError, "2-D"),
    (lambda: pq.problems.LeastSquares(np.array([[1.0, np.nan]] * 3), np.ones(3)), ValueError, "NaN"),
    (lambda: pq.problems.LeastSquares(sp.csr_matrix(np.array([[1.0, np.inf]] * 3)), np.ones(3)), ValueError, "NaN"),
    (lambda: pq.problems.LeastSquares(A3, [1.0, np.nan, 0.0]), ValueError, "NaN"),
    (lambda: pq.problems.LeastSquares(np.zeros((0, 2)), np.zeros(0)), ValueError, "at least one row"),
    (lambda: pq.problems.LeastSquares(A3, np.ones(3), l2=-1.0), ValueError, "l2"),
    (lambda: pq.problems.LeastSquares(np.array([["a", "b"]] * 3), np.ones(3)), TypeError, "numeric"),
    (lambda: pq.problems.SoftmaxRegression(A3, [0, 1, 5], n_classes=3), ValueError, "labels"),
    (lambda: pq.problems.SoftmaxRegression(A3, [0.5, 1, 0]), ValueError, "integers"),
    (lambda: pq.problems.SoftmaxRegression(A3, [0, 0, 0], n_classes=1), ValueError, "n_classes"),
])
def test_bad_problem_input(make, exc, words):
    with pytest.raises(exc, match=None) as info:
        make()
    assert words in str(info.value)


def test_bad_evaluation_input():
    prob = pq.problems.LeastSquares(A3, np.ones(3))
    with pytest.raises(ValueError, match="length 2"):
        prob.loss(np.ones(3))
    with pytest.raises(ValueError, match="out of range"):
        prob.grad(np.ones(2), [0, 3])
    with pytest.raises(ValueError, match="non-empty"):
        prob.grad(np.ones(2), np.array([], np.int64))


def test_worker_smoothness_matches_shards():
    import pyqsgd as pq

    A = np.random.default_rng(3).standard_normal((120, 6)).astype(np.float32)
    prob = pq.problems.LeastSquares(A, np.zeros(120, dtype=np.float32), l2=0.1)
    parts = pq.data.partition(120, 3, key=1)
    Ls = prob.worker_smoothness(parts)
    for L_i, p in zip(Ls, parts):
        Ai = A[p].astype(np.float64)
        assert L_i >= np.linalg.eigvalsh(Ai.T @ Ai / len(p)).max() + 0.1 - 1e-9
        assert L_i == pytest.approx(np.linalg.eigvalsh(Ai.T @ Ai / len(p)).max() + 0.1, rel=1e-6)
