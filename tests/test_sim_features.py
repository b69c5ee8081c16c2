"""Local steps, server momentum, aggregation weights and batches against NumPy references.

Exact checks round the NumPy worker vectors to float32 like the wire does; then the two sides
differ only by double roundoff (rtol 1e-9) -- except if a double value falls within ~1e-16 of
a float32 rounding boundary (probability ~1e-9 per coordinate, negligible at these sizes).
"""
import os
import sys

import numpy as np
import pytest

import pyqsgd as pq

sys.path.insert(0, os.path.dirname(__file__))
import _sim_reference as ref  # noqa: E402

N, D, M = 240, 10, 4


@pytest.fixture(scope="module")
def setup():
    rng = np.random.default_rng(7)
    A = rng.standard_normal((N, D)).astype(np.float32)
    y = np.where(A @ rng.standard_normal(D) + rng.standard_normal(N) > 0, 1.0, -1.0).astype(np.float32)
    prob = pq.problems.LogisticRegression(A, y, l2=0.05)
    obj = ref.NumpyObjective("logistic", A, y, 0.05)
    parts = ref.equal_shards(N, M, key=2)
    L = float(np.linalg.eigvalsh(obj.hess_bound_matrix())[-1]) + 0.05
    return prob, obj, parts, L


def f32(v):
    return np.asarray(v, dtype=np.float32).astype(np.float64)


def test_local_steps_match_numpy_fedavg(setup):
    """Worker: H SGD steps of local_lr from x (full local batch); sends v = x - x_local;
    server: x <- x - lr * mean_i v_i (ALGORITHMS.md §3 "Local steps")."""
    prob, obj, parts, L = setup
    H, eta, lr, T = 3, 0.5 / L, 0.8, 15
    hist = pq.simulate(prob, pq.methods.DCGD(pq.Identity()), n_workers=M, rounds=T, lr=lr, partition=parts,
                       local_steps=H, local_lr=eta)
    x = np.zeros(D)
    for _ in range(T):
        vs = []
        for q in parts:
            xl = x.copy()
            for _ in range(H):
                xl = xl - eta * obj.grad(xl, q)
            vs.append(f32(x - xl))
        x = x - lr * sum(vs) / M
    np.testing.assert_allclose(hist.x, x, rtol=1e-9, atol=1e-12)


def test_one_local_step_is_the_gradient_case(setup):
    """H = 1: v_i = x - (x - local_lr g_i) = local_lr g_i (up to double roundoff), and the server
    scales by lr, so (local_steps=1, local_lr=a, lr=b) is GD with step a*b. Tolerance: computing
    v as a difference changes it by <= 2 eps |x| (double), which can move float32(v) by one ulp:
    per step <= lr (U |a g| + 2 eps |x|) per coordinate; the GD map is non-expansive (a b <= 1/L)."""
    prob, obj, parts, L = setup
    T = 25
    for a, b in ((0.5 / L, 1.0), (1.0 / L, 0.5), (0.5 / L, 0.5)):
        local = pq.simulate(prob, pq.methods.DCGD(pq.Identity()), n_workers=M, rounds=T, lr=b, partition=parts,
                            local_steps=1, local_lr=a)
        plain = pq.simulate(prob, pq.methods.DCGD(pq.Identity()), n_workers=M, rounds=T, lr=a * b, partition=parts)
        steps = a * b * np.sqrt(plain.grad_norm_sq[:-1])  # ||x_{t+1} - x_t|| of GD
        bound = np.sum(2 * ref.U32 * steps) + T * b * 4e-16 * np.abs(plain.x).max() * np.sqrt(D)
        assert np.linalg.norm(local.x - plain.x) <= bound
        assert np.linalg.norm(plain.x) > 0.1


def test_server_momentum_is_heavy_ball(setup):
    prob, obj, parts, L = setup
    beta, lr, T = 0.8, 0.2 / L, 40
    hist = pq.simulate(prob, pq.methods.DCGD(pq.Identity(), server_momentum=beta), n_workers=M, rounds=T, lr=lr,
                       partition=parts)
    x, v = np.zeros(D), np.zeros(D)
    for _ in range(T):
        g = sum(f32(obj.grad(x, q)) for q in parts) / M
        v = beta * v + lr * g
        x = x - v
    np.testing.assert_allclose(hist.x, x, rtol=1e-9, atol=1e-12)
    plain = pq.simulate(prob, pq.methods.DCGD(pq.Identity()), n_workers=M, rounds=T, lr=lr, partition=parts)
    assert hist.loss[-1] < plain.loss[-1]  # momentum speeds up this well-conditioned problem


def test_weighted_mean_explicit_weights(setup):
    prob, obj, parts, L = setup
    w = np.array([1.0, 2.0, 3.0, 4.0])
    hist = pq.simulate(prob, pq.methods.DCGD(pq.Identity(), aggregator=pq.WeightedMean(w)), n_workers=M,
                       rounds=10, lr=1.0 / L, partition=parts)
    x = np.zeros(D)
    for _ in range(10):
        x = x - (1.0 / L) * sum(wi / w.sum() * f32(obj.grad(x, q)) for wi, q in zip(w, parts))
    np.testing.assert_allclose(hist.x, x, rtol=1e-9, atol=1e-12)


def test_downlink_compression_step(setup):
    """The broadcast is C_down(float32(step)); TopK is deterministic, so NumPy can apply it."""
    prob, obj, parts, L = setup
    down = pq.TopK(k=3)
    T, lr = 12, 1.0 / L
    hist = pq.simulate(prob, pq.methods.DCGD(pq.Identity(), downlink=down), n_workers=M, rounds=T, lr=lr,
                       partition=parts)
    x = np.zeros(D)
    for _ in range(T):
        step = sum((lr / M) * f32(obj.grad(x, q)) for q in parts)
        x = x - f32(down(step.astype(np.float32)))
    np.testing.assert_allclose(hist.x, x, rtol=1e-9, atol=1e-12)
    assert np.count_nonzero(hist.x) <= 3 * T


def test_heterogeneous_batches_sizes_and_membership(setup):
    prob, obj, parts, L = setup
    method = pq.methods.DCGD(pq.Identity())
    batches = [1, 7, 30, 60]
    sim = ref.core_simulator(prob, method, parts, key=4, batch=batches, local_steps=2, local_lr=0.1)
    seen = [set() for _ in range(M)]
    for t in range(40):
        for i in range(M):
            for h in range(2):
                b = sim.batch(t, i, h)
                assert len(b) == batches[i] and len(np.unique(b)) == batches[i]  # without replacement
                assert np.isin(b, parts[i]).all()
                seen[i].update(b.tolist())
        assert not np.array_equal(sim.batch(t, 1, 0), sim.batch(t, 1, 1))  # local steps draw anew
    assert all(len(s) > 0.9 * len(parts[i]) for i, s in enumerate(seen) if batches[i] > 1)
    np.testing.assert_array_equal(np.sort(sim.batch(0, 3, 0)), parts[3])  # batch = shard: the shard


def test_batch_one_int_for_all_and_none_entries(setup):
    prob, obj, parts, L = setup
    kw = dict(n_workers=M, rounds=5, lr=0.1, partition=parts, key=3)
    a = pq.simulate(prob, pq.methods.DCGD(pq.Identity()), batch_size=8, **kw)
    b = pq.simulate(prob, pq.methods.DCGD(pq.Identity()), batch_size=[8] * M, **kw)
    np.testing.assert_array_equal(a.x, b.x)
    full = pq.simulate(prob, pq.methods.DCGD(pq.Identity()), **kw)
    c = pq.simulate(prob, pq.methods.DCGD(pq.Identity()), batch_size=[None] * M, **kw)
    np.testing.assert_array_equal(full.x, c.x)
    assert not np.array_equal(a.x, full.x)
