"""Independent NumPy references for the simulation tests (imported by tests/test_sim_*.py).

Nothing here calls the library's loss or gradient code: objectives are written from the
formulas in DESIGN.md, and the method replays follow ALGORITHMS.md §3 line by line, calling only
the public compressor objects (``c.compress(v.astype(np.float32), pq.Key(...))``) so that the
replay and the simulator see the same random draws.
"""
from __future__ import annotations

import functools

import numpy as np
import pytest
import scipy.optimize
import scipy.sparse as sp
from scipy.special import expit, logsumexp

import pyqsgd as pq
from pyqsgd import _core

# Unit roundoff of float32 (round to nearest): |float32(v) - v| <= U32 |v|.
U32 = 2.0 ** -24


# ---- objectives ---------------------------------------------------------------------------------

class NumpyObjective:
    """f(x) = (1/|S|) sum_{i in S} phi_i(x) + (l2/2)||x||^2, written in NumPy.

    Doubles as a "Python problem" for ``pq.simulate``: ``loss(x)``, ``grad(x, indices)``,
    ``n_samples`` and ``dim``.
    """

    def __init__(self, kind, X, y, l2=0.0, n_classes=None):
        self.kind = kind
        # float64 copy of the float32 values the native problem stores.
        X32 = X.astype(np.float32)
        self.X = sp.csr_matrix(X32, dtype=np.float64) if sp.issparse(X) else np.asarray(X32, dtype=np.float64)
        if kind == "softmax":
            self.y = np.asarray(y, dtype=np.int64)
            self.C = int(n_classes if n_classes is not None else self.y.max() + 1)
        else:
            self.y = np.asarray(y, dtype=np.float32).astype(np.float64)
        self.l2 = float(l2)
        self.n_samples = self.X.shape[0]
        self.d = self.X.shape[1]
        self.dim = self.d * (self.C if kind == "softmax" else 1)
        self.calls = 0

    def _rows(self, idx):
        if idx is None:
            return self.X, self.y
        idx = np.asarray(idx, dtype=np.int64)
        return self.X[idx], self.y[idx]

    def loss(self, x, indices=None):
        X, y = self._rows(indices)
        x = np.asarray(x, dtype=np.float64)
        reg = 0.5 * self.l2 * float(x @ x)
        if self.kind == "ls":
            r = X @ x - y
            return 0.5 * float(np.mean(r * r)) + reg
        if self.kind == "logistic":
            return float(np.mean(np.logaddexp(0.0, -y * (X @ x)))) + reg
        Z = np.asarray(X @ x.reshape(self.C, self.d).T)
        return float(np.mean(logsumexp(Z, axis=1) - Z[np.arange(len(y)), y])) + reg

    def grad(self, x, indices=None):
        self.calls += 1
        X, y = self._rows(indices)
        x = np.asarray(x, dtype=np.float64)
        n = X.shape[0]
        if self.kind == "ls":
            g = X.T @ (X @ x - y) / n
        elif self.kind == "logistic":
            g = X.T @ (-y * expit(-y * (X @ x))) / n
        else:
            Z = np.asarray(X @ x.reshape(self.C, self.d).T)
            P = np.exp(Z - logsumexp(Z, axis=1, keepdims=True))
            P[np.arange(n), y] -= 1.0
            g = np.asarray(X.T @ P).T.ravel() / n
        return np.asarray(g).ravel() + self.l2 * x

    def hess_bound_matrix(self):
        """sup phi'' times A^T A / n (the smoothness matrix without l2)."""
        A = self.X.toarray() if sp.issparse(self.X) else self.X
        c = {"ls": 1.0, "logistic": 0.25, "softmax": 0.5}[self.kind]
        return c * (A.T @ A) / A.shape[0]


def native_problem(kind, X, y, l2=0.0, n_classes=None):
    if kind == "ls":
        return pq.problems.LeastSquares(X, y, l2=l2)
    if kind == "logistic":
        return pq.problems.LogisticRegression(X, y, l2=l2)
    return pq.problems.SoftmaxRegression(X, y, n_classes=n_classes, l2=l2)


def lbfgs_optimum(obj, x0=None):
    """argmin and min of a NumpyObjective by SciPy L-BFGS on our own loss/grad."""
    x0 = np.zeros(obj.dim) if x0 is None else x0
    res = scipy.optimize.minimize(lambda x: (obj.loss(x), obj.grad(x)), x0, jac=True, method="L-BFGS-B",
                                  options={"maxiter": 10000, "gtol": 1e-12, "ftol": 1e-16, "maxcor": 30})
    return res.x, obj.loss(res.x)


# ---- data ---------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _libsvm(name, n_features):
    path = pq.data.find_libsvm(name)
    if path is None:
        return None
    return pq.data.load_libsvm(path, n_features=n_features)


def libsvm_or_skip(name="a9a.t", n_features=123):
    data = _libsvm(name, n_features)
    if data is None:
        pytest.skip(f"shared LIBSVM file {name!r} not on this machine (../shared/data/libsvm or $PYQSGD_DATA)")
    return data


@functools.lru_cache(maxsize=None)
def a9a_optimum(l2):
    """(x*, f*) of l2-regularised logistic regression on a9a.t, from our NumPy loss + L-BFGS."""
    X, y = libsvm_or_skip("a9a.t", 123)
    obj = NumpyObjective("logistic", X, y, l2)
    xs, fs = lbfgs_optimum(obj)
    # Certify: the gradient norm at x* bounds the suboptimality by ||g||^2 / (2 l2).
    g = obj.grad(xs)
    assert g @ g / (2 * l2) < 1e-12 * max(1.0, abs(fs))
    return xs, fs


def equal_shards(n, m, key=0):
    """m disjoint shards of exactly n // m samples each (a random permutation)."""
    perm = np.random.default_rng(key).permutation(n)
    k = n // m
    return [np.sort(perm[i * k:(i + 1) * k]) for i in range(m)]


# ---- a bare native simulator, for its participation and batch draws -----------------------------

def core_simulator(problem, method, parts, key=0, batch=None, prob=None, tau=None, local_steps=0, local_lr=0.0):
    m = len(parts)
    cfg = _core.SimConfig()
    cfg.m = m
    cfg.rounds = 1
    cfg.lr = 1.0
    cfg.key = _core.Key(seed=key)
    cfg.parts = [np.ascontiguousarray(p, dtype=np.int64) for p in parts]
    cfg.batch = [0] * m if batch is None else list(batch)
    cfg.prob = [1.0] * m if prob is None else list(prob)
    cfg.tau = 0 if tau is None else tau
    cfg.local_steps = local_steps
    cfg.local_lr = local_lr
    cfg.weights = [1.0] * m
    d = problem.dim
    return _core.Simulator(problem._native, method.build(d, m), cfg, np.zeros(d))


# ---- method replay (ALGORITHMS.md §3) -------------------------------------------------------------

def normalised(weights):
    """The engine's normalisation w_i / sum w (sum taken left to right)."""
    s = 0.0
    for w in weights:
        s += float(w)
    return [float(w) / s for w in weights]


def replay(kind, comps, local, x0, rounds, lr, key, weights, probs=None, active=None, alpha=None,
           momentum=0.0, downlink=None):
    """Runs DCGD / EF / EF21 / DIANA in NumPy.

    comps: one compressor per worker; local(x, t, i) -> worker i's local vector at round t;
    active(t) -> bool mask of participants (None = all); probs: p_i for the 1/p_i estimator.
    Returns dict(x, bits (per round, summed over senders), worker_bits (m), uploads (per round),
    state, deltas (per worker, summed uploads), lr_grads (EF: sum of lr g_i)).
    """
    m, d = len(comps), x0.shape[0]
    w = normalised(weights)
    p = [1.0] * m if probs is None else list(probs)
    x = x0.astype(np.float64).copy()
    e = np.zeros((m, d))          # EF error / EF21 g_i / DIANA h_i
    g_srv = np.zeros(d)           # EF21 g / DIANA h
    mom = np.zeros(d)
    out = {"bits": [], "uploads": [], "worker_bits": np.zeros(m, dtype=np.int64), "down_bits": [],
           "deltas": np.zeros((m, d)), "lr_grads": np.zeros((m, d))}
    for t in range(rounds):
        mask = np.ones(m, bool) if active is None else np.asarray(active(t), bool)
        dec = {}
        bits = 0
        for i in np.flatnonzero(mask):
            v = np.asarray(local(x, t, i), dtype=np.float64)
            if kind == "EF":
                v = lr * v + e[i]
                out["lr_grads"][i] += lr * np.asarray(local(x, t, i), dtype=np.float64)
            elif kind in ("EF21", "DIANA"):
                v = v - e[i]
            c = comps[i]
            msg = c.compress(v.astype(np.float32), pq.Key(seed=key, round=t, worker=int(i)))
            y = np.asarray(c.decompress(msg), dtype=np.float64)
            bits += msg.bits
            out["worker_bits"][i] += msg.bits
            dec[i] = y
            out["deltas"][i] += y
            if kind == "EF":
                e[i] = v - y
            elif kind == "EF21":
                e[i] = e[i] + y
            elif kind == "DIANA":
                e[i] = e[i] + alpha * y

        def wsum(coef):
            s = np.zeros(d)
            for i in sorted(dec):
                s += coef(i) * dec[i]
            return s

        if kind == "DCGD":
            step = wsum(lambda i: lr * (w[i] / p[i]))
        elif kind == "EF":
            step = wsum(lambda i: w[i] / p[i])
        elif kind == "EF21":
            g_srv = g_srv + wsum(lambda i: w[i])
            step = lr * g_srv
        else:
            est = wsum(lambda i: w[i] / p[i])
            tmp = wsum(lambda i: w[i])
            step = lr * (g_srv + est)
            g_srv = g_srv + alpha * tmp
        if momentum > 0:
            mom = momentum * mom + step
            step = mom
        if downlink is not None:
            dmsg = downlink.compress(step.astype(np.float32), 0)  # deterministic downlink only
            step = np.asarray(downlink.decompress(dmsg), dtype=np.float64)
            out["down_bits"].append(dmsg.bits)
        else:
            out["down_bits"].append(32 * d)
        x = x - step
        out["bits"].append(bits)
        out["uploads"].append(int(mask.sum()))
    out["x"] = x
    out["state"] = e
    out["server"] = g_srv
    return out
