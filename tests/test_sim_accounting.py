"""Bit and upload accounting, logging cadence, participation sampling and its 1/p_i weighting."""
import math
import os
import sys

import numpy as np
import pytest

import pyqsgd as pq

sys.path.insert(0, os.path.dirname(__file__))
import _sim_reference as ref  # noqa: E402

N, D = 400, 30


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(1)
    A = rng.standard_normal((N, D)).astype(np.float32)
    b = (A @ rng.standard_normal(D)).astype(np.float32)
    return pq.problems.LeastSquares(A, b, l2=0.1)


def _msg_bits(c, d=D):
    """Encoded size of c on a generic vector (all compressors here have data-independent sizes)."""
    return c.compress(np.linspace(-1, 1, d).astype(np.float32), 0).bits


@pytest.mark.parametrize("comp", [pq.Identity(), pq.TopK(k=3), pq.RandK(k=4), pq.RandK(k=4, shared_seed=False),
                                  pq.QSGD(levels=3), pq.Natural(), pq.ScaledSign(),
                                  pq.chain(pq.TopK(k=5), pq.QSGD(levels=2)),
                                  pq.induced(pq.TopK(k=2), pq.RandK(k=3))], ids=repr)
def test_bits_up_is_messages_times_uploads(problem, comp):
    m, T = 6, 12
    hist = pq.simulate(problem, pq.methods.EF21(comp), n_workers=m, rounds=T, lr=0.05)
    per = _msg_bits(comp)
    assert np.array_equal(hist.bits_up, per * m * hist.round)
    assert np.array_equal(hist.uploads, m * hist.round)
    assert np.array_equal(hist.bits_down, 32 * D * hist.round)       # uncompressed broadcast
    assert np.array_equal(hist.worker_bits_up, np.outer(hist.round, np.full(m, per)))
    assert np.array_equal(hist.bits, hist.bits_up + hist.bits_down)


def test_downlink_bits_are_downlink_message_bits(problem):
    down = pq.QSGD(levels=5)
    hist = pq.simulate(problem, pq.methods.DCGD(pq.Identity(), downlink=down), n_workers=4, rounds=10, lr=0.05)
    assert np.array_equal(hist.bits_down, _msg_bits(down) * hist.round)
    assert _msg_bits(down) < 32 * D


def test_log_every_rows_and_last_round(problem):
    hist = pq.simulate(problem, pq.methods.DCGD(pq.TopK(k=2)), n_workers=3, rounds=25, lr=0.05, log_every=10)
    assert list(hist.round) == [0, 10, 20, 25]
    assert hist.worker_bits_up.shape == (4, 3)
    assert np.array_equal(hist.bits_up, hist.round * 3 * _msg_bits(pq.TopK(k=2)))
    full = pq.simulate(problem, pq.methods.DCGD(pq.TopK(k=2)), n_workers=3, rounds=25, lr=0.05)
    np.testing.assert_array_equal(full.loss[[0, 10, 20, 25]], hist.loss)  # logging never changes the run
    np.testing.assert_array_equal(full.x, hist.x)


def test_rounds_zero_logs_x0(problem):
    x0 = np.linspace(0, 1, D)
    hist = pq.simulate(problem, pq.methods.DCGD(pq.Identity()), n_workers=2, rounds=0, x0=x0)
    assert list(hist.round) == [0] and hist.bits_up[0] == 0
    assert hist.loss[0] == pytest.approx(problem.loss(x0), rel=1e-15)
    np.testing.assert_array_equal(hist.x, x0)


def test_uploads_match_independent_participation_draws(problem):
    m, T, key = 8, 300, 17
    p = np.linspace(0.1, 1.0, m)
    parts = pq.data.partition(N, m, scheme="iid", key=key)
    method = pq.methods.DCGD(pq.RandK(k=3))
    hist = pq.simulate(problem, method, n_workers=m, rounds=T, lr=0.01, participation=p, partition=parts, key=key)
    sim = ref.core_simulator(problem, method, parts, key=key, prob=list(p))
    masks = np.array([sim.participation(t) for t in range(T)])
    assert np.array_equal(hist.uploads[1:], np.cumsum(masks.sum(axis=1)))
    per = _msg_bits(pq.RandK(k=3))
    assert np.array_equal(hist.worker_bits_up[-1], masks.sum(axis=0) * per)
    assert masks[:, -1].all()  # p = 1 always participates


def test_participation_frequencies_are_binomial(problem):
    """Each worker's upload count over T rounds is Binomial(T, p_i): within 5 sd of p_i T, and
    the total within 5 sd of sum p_i T (independent coins)."""
    m, T = 10, 2000
    p = np.linspace(0.2, 1.0, m)
    hist = pq.simulate(problem, pq.methods.DCGD(pq.TopK(k=1)), n_workers=m, rounds=T, lr=1e-3, participation=p,
                       key=3, log_every=T)
    counts = hist.worker_bits_up[-1] / _msg_bits(pq.TopK(k=1))
    sd = np.sqrt(T * p * (1 - p))
    assert np.all(np.abs(counts - T * p) <= 5 * sd + 1e-9)
    assert abs(hist.uploads[-1] - T * p.sum()) <= 5 * math.sqrt(np.sum(T * p * (1 - p)))


def test_tau_nice_exactly_tau_uploads(problem):
    m, tau, T = 7, 3, 700
    hist = pq.simulate(problem, pq.methods.DIANA(pq.RandK(k=5)), n_workers=m, rounds=T, lr=0.01, tau=tau, key=8)
    assert np.all(np.diff(hist.uploads) == tau)
    counts = hist.worker_bits_up[-1] / _msg_bits(pq.RandK(k=5))
    # Each worker is in a uniform tau-subset w.p. tau/m: count ~ Binomial(T, 3/7) marginally.
    q = tau / m
    assert np.all(np.abs(counts - T * q) <= 5 * math.sqrt(T * q * (1 - q)))


class ConstantGradients:
    """A Python problem whose local gradient is a fixed vector per worker shard, so one round's
    step is exactly lr times the server's estimator and rounds are iid draws of it."""

    def __init__(self, G, parts):
        self.G, self.n_samples, self.dim = G, sum(len(q) for q in parts), G.shape[1]
        self.owner = np.empty(self.n_samples, dtype=np.int64)
        for i, q in enumerate(parts):
            self.owner[q] = i

    def loss(self, x):
        return 0.0

    def grad(self, x, indices):
        ids = np.unique(self.owner[np.asarray(indices)])
        return self.G[ids[0]].copy() if ids.size == 1 else self.G.mean(axis=0)


@pytest.mark.parametrize("sampling", ["independent", "tau"])
def test_partial_participation_estimator_is_unbiased(sampling):
    """E[sum_{i in S} w_i g_i / p_i] = sum_i w_i g_i. With constant gradients x_T = x0 - lr
    sum_t est_t, so (x0 - x_T)/(lr T) is a mean of T iid estimators: z-test per coordinate
    against the exact variance (independent coins: sum_i c_i^2 p_i (1 - p_i), c_i = g_i/(m p_i);
    tau-nice: computed from its pairwise inclusion probabilities)."""
    m, d, T, lr = 5, 3, 4000, 1e-3
    rng = np.random.default_rng(0)
    G = rng.standard_normal((m, d)).astype(np.float32).astype(np.float64)  # exact on the wire
    parts = [np.arange(i * 2, i * 2 + 2) for i in range(m)]
    prob = ConstantGradients(G, parts)
    if sampling == "independent":
        p = np.array([0.15, 0.3, 0.5, 0.8, 1.0])
        kw = {"participation": p}
        C = G / (m * p[:, None])
        var = np.sum(C ** 2 * (p * (1 - p))[:, None], axis=0)
    else:
        tau = 2
        p = np.full(m, tau / m)
        kw = {"tau": tau}
        C = G / (m * p[:, None])
        q2 = tau * (tau - 1) / (m * (m - 1))  # P(i and j both chosen)
        S = C.sum(axis=0)
        var = p[0] * np.sum(C ** 2, axis=0) + q2 * (S ** 2 - np.sum(C ** 2, axis=0)) - S ** 2 * p[0] ** 2
    hist = pq.simulate(prob, pq.methods.DCGD(pq.Identity()), n_workers=m, rounds=T, lr=lr, partition=parts,
                       log_every=T, key=21, **kw)
    mean_est = (0.0 - hist.x) / (lr * T)
    z = (mean_est - G.mean(axis=0)) / np.sqrt(var / T)
    assert np.all(np.abs(z) < 4.5), z
    # And the estimator is not the plain mean over participants (which would be biased here).
    assert hist.uploads[-1] < m * T
