"""The Python-problem path (objects with loss(x), grad(x, indices), n_samples), early stops
(Ctrl-C, non-finite values)."""
import os
import sys
import warnings

import numpy as np
import pytest

import pyqsgd as pq

sys.path.insert(0, os.path.dirname(__file__))
import _sim_reference as ref  # noqa: E402

N, D, M = 200, 8, 4


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    A = rng.standard_normal((N, D)).astype(np.float32)
    y = np.where(A @ rng.standard_normal(D) + rng.standard_normal(N) > 0, 1.0, -1.0).astype(np.float32)
    return A, y


def _compare(hn, hp, rtol=1e-9):
    """Same draws on both paths; gradients differ by double roundoff (1e-16 relative), which can
    move a float32 wire value by one ulp with probability ~1e-9: rtol 1e-9 on x and loss."""
    for c in ("round", "bits_up", "bits_down", "uploads", "skipped", "worker_bits_up"):
        assert np.array_equal(getattr(hn, c), getattr(hp, c)), c
    np.testing.assert_allclose(hp.loss, hn.loss, rtol=rtol)
    np.testing.assert_allclose(hp.grad_norm_sq, hn.grad_norm_sq, rtol=1e-7)
    np.testing.assert_allclose(hp.x, hn.x, rtol=rtol, atol=1e-12)


@pytest.mark.parametrize("method, kw", [
    (pq.methods.DCGD(pq.RandK(k=3, shared_seed=False)), {}),
    (pq.methods.EF21(pq.TopK(k=2)), {"batch_size": [5, 10, 20, 50]}),
    (pq.methods.DIANA(pq.QSGD(levels=8)), {"batch_size": 12, "participation": [0.3, 0.6, 0.9, 1.0]}),
    (pq.methods.EF(pq.TopK(k=3)), {"tau": 2, "batch_size": 16}),
    (pq.methods.DCGD(pq.Identity()), {"local_steps": 2, "local_lr": 0.3, "batch_size": 10}),
], ids=["dcgd", "ef21-batches", "diana-pp", "ef-tau", "local"])
def test_numpy_problem_matches_native(data, method, kw):
    A, y = data
    native = pq.problems.LogisticRegression(A, y, l2=0.02)
    mine = ref.NumpyObjective("logistic", A, y, 0.02)
    common = dict(n_workers=M, rounds=30, lr=0.5, key=9, log_every=4, **kw)
    hn = pq.simulate(native, method, **common)
    hp = pq.simulate(mine, method, **common)
    _compare(hn, hp)
    assert mine.calls > 30
    assert hn.loss[-1] < hn.loss[0]


def test_python_problem_needs_dim_or_x0(data):
    A, y = data

    class NoDim:
        n_samples = N

        def loss(self, x):
            return 0.0

        def grad(self, x, indices):
            return np.zeros(D)

    with pytest.raises(ValueError, match="x0"):
        pq.simulate(NoDim(), pq.methods.DCGD(pq.Identity()), n_workers=2, rounds=2)
    h = pq.simulate(NoDim(), pq.methods.DCGD(pq.Identity()), n_workers=2, rounds=2, x0=np.ones(D))
    np.testing.assert_array_equal(h.x, np.ones(D))


def test_torch_problem(data):
    torch = pytest.importorskip("torch")
    A, y = data

    class TorchLogistic:
        """A linear torch model; the flat parameter vector is x."""

        def __init__(self):
            self.model = torch.nn.Linear(D, 1, bias=False).double()
            self.A = torch.from_numpy(A.astype(np.float64))
            self.y = torch.from_numpy(y.astype(np.float64))
            self.n_samples, self.dim = N, D

        def _set(self, x):
            with torch.no_grad():
                self.model.weight.copy_(torch.from_numpy(np.asarray(x, dtype=np.float64)).view(1, D))

        def _loss(self, idx):
            z = self.model(self.A[idx]).squeeze(1) * self.y[idx]
            w = self.model.weight
            return torch.nn.functional.softplus(-z).mean() + 0.5 * 0.02 * (w * w).sum()

        def loss(self, x):
            self._set(x)
            with torch.no_grad():
                return float(self._loss(torch.arange(N)))

        def grad(self, x, indices):
            self._set(x)
            self.model.zero_grad()
            self._loss(torch.as_tensor(np.asarray(indices))).backward()
            return self.model.weight.grad.view(-1).numpy().copy()

    method = pq.methods.EF21(pq.TopK(k=3))
    common = dict(n_workers=M, rounds=20, lr=0.5, key=2, batch_size=25, participation=0.7)
    hn = pq.simulate(pq.problems.LogisticRegression(A, y, l2=0.02), method, **common)
    ht = pq.simulate(TorchLogistic(), method, **common)
    _compare(hn, ht, rtol=1e-8)


class Interrupting:
    """NumPy logistic problem whose grad raises KeyboardInterrupt once `k` rounds are logged."""

    def __init__(self, A, y, k):
        self.inner = ref.NumpyObjective("logistic", A, y, 0.0)
        self.n_samples, self.dim, self.k, self.logged = N, D, k, 0

    def loss(self, x):
        self.logged += 1
        return self.inner.loss(x)

    def grad(self, x, indices):
        if self.logged > self.k and len(indices) < N:  # inside round k (not the metrics call)
            raise KeyboardInterrupt
        return self.inner.grad(x, indices)


def test_ctrl_c_returns_history_so_far(data):
    A, y = data
    k = 7
    with pytest.warns(RuntimeWarning, match="interrupted"):
        hist = pq.simulate(Interrupting(A, y, k), pq.methods.EF21(pq.TopK(k=2)), n_workers=M, rounds=50, lr=0.5)
    assert hist.stopped is not None and "interrupted at round 7" in hist.stopped
    assert list(hist.round) == list(range(k + 1))
    assert hist.uploads[-1] == M * k
    assert hist.to_frame().attrs["stopped"] == hist.stopped
    assert hist.status == "stopped" == hist.to_frame().attrs["status"]
    full = pq.simulate(ref.NumpyObjective("logistic", A, y, 0.0), pq.methods.EF21(pq.TopK(k=2)), n_workers=M,
                       rounds=k, lr=0.5)
    np.testing.assert_allclose(hist.x, full.x, rtol=1e-12)  # x is the model after k full rounds


@pytest.mark.parametrize("log_every", [1, 7])
def test_non_finite_native_stops_with_warning(log_every):
    rng = np.random.default_rng(0)
    A = rng.standard_normal((100, 5)).astype(np.float32) * 10
    prob = pq.problems.LeastSquares(A, rng.standard_normal(100).astype(np.float32))
    # lr = 4/L: GD multiplies the error along the top eigenvector by |1 - 4| = 3 per round, so
    # the gradient leaves the float32 range (3.4e38) after ~80 rounds.
    lr = 4.0 / prob.smoothness()
    with pytest.warns(RuntimeWarning, match="non-finite"):
        hist = pq.simulate(prob, pq.methods.DCGD(pq.Identity()), n_workers=4, rounds=1000, lr=lr,
                           log_every=log_every)
    assert hist.stopped and "non-finite" in hist.stopped
    assert hist.status == "diverged" == hist.to_frame().attrs["status"]
    assert 40 < hist.round[-1] < 200
    assert np.all(np.diff(hist.round) > 0)
    assert np.all(np.isfinite(hist.loss[:-1]))  # history kept up to the blow-up
    assert np.all(np.diff(hist.loss[:-1]) > 0)
    assert not np.isfinite(hist.loss[-1]) or hist.loss[-1] > 1e30
    assert hist.uploads[-1] == 4 * hist.round[-1]


def test_non_finite_python_problem_stops_with_warning(data):
    A, y = data

    class Exploding(ref.NumpyObjective):
        def grad(self, x, indices=None):
            g = super().grad(x, indices)
            return g * np.inf if np.abs(x).max() > 0.5 else g

    prob = Exploding("logistic", A, y, 0.0)
    with pytest.warns(RuntimeWarning, match="non-finite"):
        hist = pq.simulate(prob, pq.methods.DCGD(pq.Identity()), n_workers=M, rounds=200, lr=0.5, log_every=5)
    assert hist.stopped and hist.round[-1] < 200
    assert hist.status == "diverged"
    assert np.isfinite(hist.x).all()


def test_no_warning_on_normal_runs(data):
    A, y = data
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        hist = pq.simulate(pq.problems.LogisticRegression(A, y), pq.methods.EF21(pq.TopK(k=2)), n_workers=M,
                           rounds=20, lr=0.5)
    assert hist.stopped is None and hist.status == "ok"


def test_python_problem_sample_count_from_len_or_partition():
    """DESIGN.md asks only for loss(x) and grad(x, indices): the sample count may come from
    __len__ or from an explicit partition instead of n_samples."""
    import pyqsgd as pq

    rng = np.random.default_rng(0)
    A = rng.standard_normal((40, 3))
    b = A @ np.array([1.0, -2.0, 0.5])

    class Minimal:
        def loss(self, x):
            return 0.5 * np.mean((A @ x - b) ** 2)

        def grad(self, x, indices):
            Ai = A[indices]
            return Ai.T @ (Ai @ x - b[indices]) / len(indices)

    class WithLen(Minimal):
        def __len__(self):
            return 40

    parts = pq.data.partition(40, 4, key=0)
    h1 = pq.simulate(Minimal(), pq.methods.DCGD(pq.Identity()), n_workers=4, rounds=5, lr=0.1, partition=parts,
                     x0=np.zeros(3))
    h2 = pq.simulate(WithLen(), pq.methods.DCGD(pq.Identity()), n_workers=4, rounds=5, lr=0.1, partition=parts,
                     x0=np.zeros(3))
    np.testing.assert_array_equal(h1.x, h2.x)
    assert h1.loss[-1] < h1.loss[0]
    with pytest.raises(TypeError, match="sample count"):
        pq.simulate(Minimal(), pq.methods.DCGD(pq.Identity()), n_workers=4, rounds=1, lr=0.1, x0=np.zeros(3))
