"""An independent NumPy replay of DCGD, EF, EF21 and DIANA (ALGORITHMS.md §3).

The replay (tests/_sim_reference.py) calls the same public compressor objects with the same
keys, Key(seed=key, round=t, worker=i), on float32 of the same double vectors, and takes the
same participation/batch draws from the engine's own sampler. Given identical inputs every
floating-point operation is the same one the engine performs, in the same order, so x must
agree to a few ulps per round (rtol 1e-10 leaves room for compiler FMA contraction) and the
bit counts must agree exactly.
"""
import os
import sys

import numpy as np
import pytest

import pyqsgd as pq

sys.path.insert(0, os.path.dirname(__file__))
import _sim_reference as ref  # noqa: E402

N, D, M = 300, 24, 5


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((N, D)).astype(np.float32)
    y = np.where(A @ rng.standard_normal(D) + rng.standard_normal(N) > 0, 1.0, -1.0).astype(np.float32)
    return pq.problems.LogisticRegression(A, y, l2=0.01)


COMPRESSORS = {
    "topk": pq.TopK(k=4),
    "randk_idx": pq.RandK(k=5, shared_seed=False),
    "randk_shared": pq.RandK(k=5),
    "qsgd": pq.QSGD(levels=4),
    "chain": pq.chain(pq.TopK(k=6), pq.QSGD(levels=2)),
    "induced": pq.induced(pq.TopK(k=3), pq.RandK(k=4, shared_seed=False)),
    "natural": pq.Natural(),
    "scaledsign": pq.ScaledSign(),
}
UNBIASED = ["randk_idx", "randk_shared", "qsgd", "induced", "natural"]
CASES = ([("DCGD", c) for c in ("randk_idx", "qsgd", "induced", "topk")]
         + [("EF", c) for c in ("topk", "randk_idx", "chain", "scaledsign")]
         + [("EF21", c) for c in ("topk", "randk_idx", "chain", "induced")]
         + [("DIANA", c) for c in UNBIASED])


def _method(kind, comp, **kw):
    return {"DCGD": pq.methods.DCGD, "EF": pq.methods.EF, "EF21": pq.methods.EF21,
            "DIANA": pq.methods.DIANA}[kind](comp, **kw)


def _run_and_replay(problem, kind, comp, rounds=25, lr=0.4, key=11, batch=None, participation=None,
                    tau=None, parts=None, aggregator=None, per_worker=False, momentum=0.0, downlink=None):
    parts = parts if parts is not None else pq.data.partition(N, M, scheme="iid", key=3)
    comps = [comp] * M
    if per_worker:
        comps = [pq.TopK(k=2 + i) for i in range(M)]
        comp = comps
    kw = {}
    if aggregator is not None:
        kw["aggregator"] = aggregator
    if momentum:
        kw["server_momentum"] = momentum
    if downlink is not None:
        kw["downlink"] = downlink
    method = _method(kind, comp, **kw)
    hist = pq.simulate(problem, method, n_workers=M, rounds=rounds, lr=lr, batch_size=batch, partition=parts,
                       participation=participation, tau=tau, key=key)
    probs = None if participation is None else ([participation] * M if np.isscalar(participation)
                                                else list(participation))
    if tau is not None:
        probs = [tau / M] * M
    bs = None if batch is None else ([batch] * M if np.isscalar(batch) else list(batch))
    sim = ref.core_simulator(problem, method, parts, key=key, batch=bs, prob=probs, tau=tau)
    active = None if (participation is None and tau is None) else sim.participation

    def local(x, t, i):
        return problem.grad(x, sim.batch(t, int(i), 0))

    sizes = [len(p) for p in parts]
    alpha = method.resolved_alpha(D) if kind == "DIANA" else None
    rep = ref.replay(kind, comps, local, np.zeros(D), rounds, lr, key, method.worker_weights(sizes), probs=probs,
                     active=active, alpha=alpha, momentum=momentum, downlink=downlink)
    return hist, rep


def _check(hist, rep):
    np.testing.assert_allclose(hist.x, rep["x"], rtol=1e-10, atol=1e-13)
    assert np.array_equal(hist.bits_up[1:], np.cumsum(rep["bits"]))
    assert hist.bits_up[0] == 0 and hist.uploads[0] == 0 and hist.bits_down[0] == 0
    assert np.array_equal(hist.uploads[1:], np.cumsum(rep["uploads"]))
    assert np.array_equal(hist.bits_down[1:], np.cumsum(rep["down_bits"]))
    assert np.array_equal(hist.worker_bits_up[-1], rep["worker_bits"])
    assert np.array_equal(hist.worker_bits_up.sum(axis=1), hist.bits_up)
    assert np.all(hist.skipped == 0)


@pytest.mark.parametrize("kind, cname", CASES)
def test_replay_full_batch(problem, kind, cname):
    hist, rep = _run_and_replay(problem, kind, COMPRESSORS[cname])
    _check(hist, rep)
    if kind in ("EF", "EF21") and cname == "randk_idx":
        # RandK with its d/k scaling is not contractive: EF/EF21 may blow up here (outside the
        # theory); the replay must still match step for step.
        assert np.isfinite(hist.loss).all()
    else:
        assert hist.loss[-1] < hist.loss[0]
    state = hist.state
    name = {"EF": "error", "EF21": "g_workers", "DIANA": "h_workers"}.get(kind)
    if name:
        np.testing.assert_allclose(state[name], rep["state"], rtol=1e-10, atol=1e-13)
    if kind in ("EF21", "DIANA"):
        np.testing.assert_allclose(state["g" if kind == "EF21" else "h"], rep["server"], rtol=1e-10, atol=1e-13)
        # The server's tracked vector is the (weighted) mean of the workers' vectors.
        np.testing.assert_allclose(rep["server"], rep["state"].mean(axis=0), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("kind, cname", [("DCGD", "randk_idx"), ("EF", "topk"), ("EF21", "topk"),
                                         ("DIANA", "induced"), ("DIANA", "qsgd")])
def test_replay_batches_and_participation(problem, kind, cname):
    hist, rep = _run_and_replay(problem, kind, COMPRESSORS[cname], batch=[5, 10, 20, 40, 60],
                                participation=[0.2, 0.4, 0.6, 0.8, 1.0], rounds=40, lr=0.2)
    _check(hist, rep)
    assert rep["uploads"] != [M] * 40  # someone really sat out


@pytest.mark.parametrize("kind", ["DCGD", "EF21", "DIANA"])
def test_replay_tau_nice(problem, kind):
    hist, rep = _run_and_replay(problem, kind, COMPRESSORS["randk_idx"], tau=2, batch=16, rounds=30, lr=0.2)
    _check(hist, rep)
    assert rep["uploads"] == [2] * 30


def test_replay_weighted_mean_unequal_shards(problem):
    parts = [np.arange(0, 20), np.arange(20, 60), np.arange(60, 120), np.arange(120, 200), np.arange(200, 300)]
    for kind in ("DCGD", "EF21"):
        hist, rep = _run_and_replay(problem, kind, COMPRESSORS["randk_idx"], parts=parts,
                                    aggregator=pq.WeightedMean("data"))
        _check(hist, rep)


def test_replay_per_worker_compressors(problem):
    hist, rep = _run_and_replay(problem, "EF21", None, per_worker=True)
    _check(hist, rep)
    # TopK(k) of d=24 sends 32k values + min(k*ceil(log2 24), 24) index bits (list or bitmap).
    assert list(hist.worker_bits_up[-1]) == [25 * (32 * k + min(5 * k, 24)) for k in range(2, 7)]


def test_replay_server_momentum_and_downlink(problem):
    hist, rep = _run_and_replay(problem, "DCGD", COMPRESSORS["qsgd"], momentum=0.7)
    _check(hist, rep)
    down = pq.TopK(k=8)
    hist, rep = _run_and_replay(problem, "EF21", COMPRESSORS["topk"], momentum=0.5, downlink=down)
    _check(hist, rep)
    # Downlink accounting equals the downlink message bits: 32*8 values + a 24-bit bitmap.
    assert hist.bits_down[-1] == 25 * (32 * 8 + 24)


def test_ef_invariant(problem):
    """sum_t Delta_i^t + e_i = sum_t lr g_i^t for every worker (ALGORITHMS.md §3)."""
    lr = 0.4
    hist, rep = _run_and_replay(problem, "EF", COMPRESSORS["topk"], lr=lr, rounds=30, batch=12)
    _check(hist, rep)
    lhs = rep["deltas"] + hist.state["error"]
    # Roundoff: each round adds <= a few ulps of |lr g| + |e| to both sides.
    np.testing.assert_allclose(lhs, rep["lr_grads"], rtol=1e-9, atol=1e-12 * np.abs(rep["lr_grads"]).max())
    assert np.abs(hist.state["error"]).max() > 1e-3  # the memory really holds something


def test_ef_invariant_one_worker(problem):
    """With one worker the model moves by exactly the sum of uploads: x0 - x_T = sum Delta, so
    x0 - x_T + e_T = lr sum_t g(x_t); g(x_t) from our own NumPy gradient at the replayed iterates."""
    A = problem._init_args[0][0]
    obj = ref.NumpyObjective("logistic", A, problem.y, 0.01)
    lr, T = 0.3, 20
    x0 = np.full(D, 0.05)
    hist = pq.simulate(problem, pq.methods.EF(pq.TopK(k=3)), n_workers=1, rounds=T, lr=lr, x0=x0, key=2)
    # Walk the iterates with our own gradients and the same TopK (deterministic).
    x, e, total = x0.copy(), np.zeros(D), np.zeros(D)
    for t in range(T):
        g = obj.grad(x)
        total += lr * g
        p = lr * g + e
        delta = pq.TopK(k=3)(p.astype(np.float32)).astype(np.float64)
        e = p - delta
        x = x - delta
    np.testing.assert_allclose(x0 - hist.x + hist.state["error"], total, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(hist.x, x, rtol=1e-7, atol=1e-12)


def test_ef21_first_upload_is_compressed_gradient(problem):
    parts = pq.data.partition(N, M, scheme="iid", key=3)
    c = pq.TopK(k=4)
    hist = pq.simulate(problem, pq.methods.EF21(c), n_workers=M, rounds=1, lr=0.1, partition=parts, key=9)
    x0 = np.zeros(D)
    for i in range(M):
        expect = c(problem.grad(x0, parts[i]).astype(np.float32), pq.Key(seed=9, round=0, worker=i))
        np.testing.assert_array_equal(hist.state["g_workers"][i], expect.astype(np.float64))
    # exact_init: the first upload is the uncompressed gradient (32 d bits each).
    hist = pq.simulate(problem, pq.methods.EF21(c, exact_init=True), n_workers=M, rounds=2, lr=0.1, partition=parts)
    assert hist.bits_up[1] == M * 32 * D
    assert hist.bits_up[2] - hist.bits_up[1] == M * (32 * 4 + 4 * 5)
