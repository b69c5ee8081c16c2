"""Identity + DCGD + Mean + full batches + equal shards is plain gradient descent (DESIGN.md).

The reference is GD written in NumPy on our own loss/gradient (tests/_sim_reference.py).

Tolerance. The only difference the engine is allowed is float32 on the wire: worker i sends
float32(g_i), with |float32(g_ij) - g_ij| <= U |g_ij|, U = 2^-24. So one step differs from exact
GD by at most lr * U * sum_i w_i |g_i^t| per coordinate, and for a convex L-smooth f with
lr <= 2/L the GD map x -> x - lr grad f(x) is non-expansive, so earlier differences never grow:
    ||x_sim^T - x_gd^T|| <= sum_t lr U || sum_i w_i |g_i^t| ||  (+ double roundoff).
We compute this bound along the NumPy run and assert it (with a 1e-12 allowance for double
roundoff of different summation orders). A second, much tighter check rounds the NumPy worker
gradients to float32 too: then only double roundoff remains (rtol 1e-10).
"""
import os
import sys

import numpy as np
import pytest
import scipy.sparse as sp

import pyqsgd as pq

sys.path.insert(0, os.path.dirname(__file__))
import _sim_reference as ref  # noqa: E402


def _data(kind, sparse, seed=0, n=240, d=12):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, d)).astype(np.float32)
    if sparse:
        A[rng.random((n, d)) < 0.7] = 0.0
        A = sp.csr_matrix(A)
    if kind == "ls":
        y = (np.asarray(A @ rng.standard_normal(d)) + 0.1 * rng.standard_normal(n)).astype(np.float32)
        return A, y, None
    if kind == "logistic":
        y = np.where(np.asarray(A @ rng.standard_normal(d)) + 0.5 * rng.standard_normal(n) > 0, 1.0, -1.0)
        return A, y.astype(np.float32), None
    y = rng.integers(0, 3, size=n)
    return A, y, 3


def _numpy_gd(obj, parts, x0, lr, rounds, round32):
    m = len(parts)
    x = x0.copy()
    xs, bound, err = [x.copy()], 0.0, []
    for _ in range(rounds):
        gs = [obj.grad(x, p) for p in parts]
        if round32:
            gs = [g.astype(np.float32).astype(np.float64) for g in gs]
        absg = sum(np.abs(g) for g in gs) / m
        bound += lr * ref.U32 * float(np.linalg.norm(absg))
        err.append(bound)
        x = x - lr * (sum(gs) / m)
        xs.append(x.copy())
    return xs, err


CASES = [("ls", False, 0.0), ("ls", True, 0.05), ("logistic", False, 0.0), ("logistic", True, 0.01),
         ("softmax", False, 0.0), ("softmax", True, 0.02)]


@pytest.mark.parametrize("kind, sparse, l2", CASES)
def test_identity_dcgd_is_gradient_descent(kind, sparse, l2):
    A, y, C = _data(kind, sparse)
    prob = ref.native_problem(kind, A, y, l2, C)
    obj = ref.NumpyObjective(kind, A, y, l2, C)
    m, rounds = 6, 60
    parts = ref.equal_shards(obj.n_samples, m, key=1)
    L = float(np.linalg.eigvalsh(obj.hess_bound_matrix())[-1]) + l2
    lr = 1.0 / L  # <= 2/L: the GD map is non-expansive, so the bound below holds
    x0 = np.random.default_rng(3).standard_normal(obj.dim) * 0.1
    hist = pq.simulate(prob, pq.methods.DCGD(pq.Identity()), n_workers=m, rounds=rounds, lr=lr, partition=parts,
                       x0=x0, key=5)
    xs, bound = _numpy_gd(obj, parts, x0, lr, rounds, round32=False)
    diff = np.linalg.norm(hist.x - xs[-1])
    assert diff <= bound[-1] + 1e-12 * (1 + np.linalg.norm(xs[-1])), (diff, bound[-1])
    # The loss column is f at each iterate: |f(x_sim) - f(x_gd)| <= ||grad f|| e + (L/2) e^2.
    for t in (0, 1, rounds // 2, rounds):
        e = bound[t - 1] if t else 0.0
        gn = np.linalg.norm(obj.grad(xs[t]))
        assert abs(hist.loss[t] - obj.loss(xs[t])) <= gn * e + L * e * e + 1e-12 * abs(obj.loss(xs[t]))
        # ||grad f|| is L-Lipschitz: | ||g(a)||^2 - ||g(b)||^2 | <= (2 ||g(b)|| + L e) L e.
        assert abs(hist.grad_norm_sq[t] - gn ** 2) <= (2 * gn + L * e) * L * e + 1e-12 * gn ** 2 + 1e-15
    # The loss really decreased, so the test is not comparing two frozen iterates.
    assert hist.loss[-1] < hist.loss[0] - 1e-3
    # Exact check: NumPy rounds the worker gradients to float32 as the wire does.
    xs32, _ = _numpy_gd(obj, parts, x0, lr, rounds, round32=True)
    np.testing.assert_allclose(hist.x, xs32[-1], rtol=1e-10, atol=1e-13)
    assert list(hist.round) == list(range(rounds + 1))


def test_gradient_descent_unequal_shards_mean_targets_worker_average():
    """With Mean on unequal shards GD follows (1/m) sum f_i, not f (DESIGN.md conventions)."""
    A, y, _ = _data("logistic", False, seed=4)
    obj = ref.NumpyObjective("logistic", A, y, 0.01)
    prob = ref.native_problem("logistic", A, y, 0.01)
    parts = [np.arange(0, 40), np.arange(40, 240)]
    x0 = np.zeros(obj.dim)
    hist = pq.simulate(prob, pq.methods.DCGD(pq.Identity()), n_workers=2, rounds=30, lr=0.5, partition=parts, x0=x0)
    x = x0.copy()
    for _ in range(30):
        x = x - 0.5 * (obj.grad(x, parts[0]).astype(np.float32).astype(np.float64)
                       + obj.grad(x, parts[1]).astype(np.float32).astype(np.float64)) / 2
    np.testing.assert_allclose(hist.x, x, rtol=1e-10, atol=1e-13)
    xw = x0.copy()
    for _ in range(30):
        xw = xw - 0.5 * obj.grad(xw)
    assert np.linalg.norm(hist.x - xw) > 1e-3  # the full-data GD path is different
