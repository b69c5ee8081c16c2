"""Regressions for problems found in review: vote inversion, lost histories on overflow, long
lazy windows, hangs and silent acceptance of bad input."""
import numpy as np
import pytest

import pyqsgd as pq
import pyqsgd.reference  # noqa: F401 - pq.reference.reseal


@pytest.fixture(scope="module")
def cancer():
    X, y = pq.data.load_bundled("breast_cancer", add_bias=True)
    return pq.problems.LogisticRegression(X, y, l2=1e-2)


@pytest.mark.parametrize("meth, m", [
    (pq.methods.SignSGDFV(T_in=0), 5),
    (pq.methods.SignSGDFV(T_in=5), 4),
    (pq.methods.SignSGDFV(leave_one_out=True, T_in=5), 4),
    (pq.methods.SignSGDFV(per_coordinate=True, T_in=5), 4),
])
def test_federated_vote_does_not_invert(cancer, meth, m):
    """Before the fix, ties counted as disagreements (and all-zero weights before any count)
    drove every weight negative, so the vote became sign ascent and the loss grew."""
    h = pq.simulate(cancer, meth, n_workers=m, rounds=300, lr=0.01, batch_size=16, key=3, log_every=50)
    mv = pq.simulate(cancer, pq.methods.SignSGDMV(), n_workers=m, rounds=300, lr=0.01, batch_size=16, key=3,
                     log_every=50)
    assert h.loss[-1] < h.loss[0]
    assert h.loss[-1] < 1.5 * mv.loss[-1]
    assert np.mean(h.vote_weights[-1]) > 0


def test_federated_vote_ties_are_not_counted():
    """Two workers that always disagree: every vote coordinate is a tie, so nothing is counted
    and the weights stay 0 (before the fix both were driven to -W)."""
    rng = np.random.default_rng(0)
    fv = pq.FederatedVote(T_in=0)
    for _ in range(5):
        v = rng.standard_normal(100)
        fv.aggregate([pq.Sign().compress(v, key=0), pq.Sign().compress(-v, key=0)])
    np.testing.assert_array_equal(fv.N, 0.0)
    np.testing.assert_array_equal(fv.weights, 0.0)


@pytest.mark.parametrize("c", [pq.RandK(k=1), pq.QSGD(levels=1)])
def test_overflowing_compressor_stops_cleanly(c):
    """A diverging run whose compressor overflows float32 (RandK's d/k scaling, QSGD's norm)
    stops with a warning and keeps its history instead of raising."""
    A = np.random.default_rng(0).standard_normal((40, 30)).astype(np.float32)
    prob = pq.problems.LeastSquares(A, np.ones(40, dtype=np.float32))
    with pytest.warns(RuntimeWarning, match="stopped early"):
        h = pq.simulate(prob, pq.methods.DCGD(c), n_workers=2, rounds=2000, lr=10.0, key=0)
    assert h.stopped is not None and h.status == "diverged" and len(h) >= 2
    with pytest.raises(ValueError, match="overflows float32"):
        pq.RandK(k=1).compress(np.full(31, 3e37, dtype=np.float32), key=0)


def test_lazy_window_longer_than_the_trimmed_history(cancer):
    """LE-SignGD with D = 600 sums the last 600 step norms even after the simulator trims its
    history buffer: a NumPy replay doing the same float operations matches bit for bit (sign
    compression is discontinuous, so any rounding difference would eventually flip a sign)."""
    D, T, m, lr, xi = 600, 1300, 3, 0.05, 50.0
    h = pq.simulate(cancer, pq.methods.LESignSGD(D=D, xi=xi, t_bar=10**6), n_workers=m, rounds=T, lr=lr, key=0,
                    log_every=T)
    parts = pq.data.partition(cancer.n_samples, m, key=0)
    x = np.zeros(cancer.dim)
    gh = np.zeros((m, cancer.dim))
    e = np.zeros((m, cancer.dim))
    steps, skipped = [], 0
    c = pq.ScaledSign()
    G = np.zeros(cancer.dim)  # the server's running mean of gh_i, updated as the engine does
    for t in range(T):
        moves = np.zeros(cancer.dim)
        for i in range(m):
            g = cancer.grad(x, parts[i])
            moved = sum(steps[-D:])
            if t >= D and np.sum((g - gh[i]) ** 2) <= xi / (D * lr * lr) * moved:
                skipped += 1
            else:
                u = g - gh[i] + e[i]
                ci = c(u.astype(np.float32), key=pq.Key(seed=0, round=t, worker=i)).astype(np.float64)
                e[i] = u - ci
                gh[i] += ci
                moves += (1.0 / m) * ci  # the engine's weight w_i = 1/m, multiplied: bit-exact
        G += moves
        step = lr * G
        x = x - step
        steps.append(float(step @ step))
    assert h.skipped[-1] == skipped
    np.testing.assert_array_equal(h.x, x)


def test_chunk_and_partition_validation(cancer):
    meth = pq.methods.DCGD(pq.Identity())
    with pytest.raises(ValueError, match="chunk"):
        pq.simulate(cancer, meth, n_workers=2, rounds=3, chunk=0)
    with pytest.raises(TypeError, match="chunk"):
        pq.simulate(cancer, meth, n_workers=2, rounds=3, chunk=1.5)
    n = cancer.n_samples
    with pytest.raises(TypeError, match="integer index array"):
        pq.simulate(cancer, meth, n_workers=2, rounds=1, partition=[np.arange(10) + 0.5, np.arange(10, 20.0)])
    with pytest.raises(TypeError, match="flatnonzero"):
        pq.simulate(cancer, meth, n_workers=2, rounds=1, partition=[np.ones(n, bool), np.zeros(n, bool)])
    with pytest.raises(ValueError, match="disjoint"):
        pq.simulate(cancer, meth, n_workers=2, rounds=1, partition=[np.arange(10), np.arange(5, 15)])


def test_truncate_rejects_nonfinite_payload():
    c = pq.Truncate(threshold=1.0)
    raw = bytearray(c.compress(np.array([0.0, 1.0, 2.0, 3.0], dtype=np.float32), key=0).to_bytes())
    raw[-8:-4] = np.array([np.nan], dtype=np.float32).tobytes()  # the last value (before the CRC)
    msg = pq.Message.from_bytes(pq.reference.reseal(bytes(raw)))
    with pytest.raises(ValueError, match="NaN or Inf"):
        c.decompress(msg)


def test_float64_beyond_float32_is_named():
    with pytest.raises(ValueError, match="beyond float32"):
        pq.Identity().compress(np.array([1e300, 3.0]), key=0)


def test_step_external_checks_rows(cancer):
    cfg = pq._core.SimConfig()
    cfg.m, cfg.rounds, cfg.lr, cfg.key = 2, 1, 0.1, pq.Key(seed=0)
    cfg.parts = pq.data.partition(cancer.n_samples, 2, key=0)
    cfg.batch, cfg.prob, cfg.weights = [0, 0], [1.0, 1.0], [1.0, 1.0]
    sim = pq._core.Simulator(None, pq.methods.DCGD(pq.Identity()).build(cancer.dim, 2), cfg, np.zeros(cancer.dim))
    with pytest.raises(ValueError, match="n_workers"):
        sim.step_external(np.zeros((1, cancer.dim)))


def test_numpy_scalars_and_arrays_in_parameters():
    """Grid values often come from np.linspace: reprs must still evaluate without NumPy, and
    equal objects must hash equally."""
    c = pq.TopK(ratio=np.float64(0.1))
    assert repr(c) == "TopK(ratio=0.1)"
    assert eval(repr(c), vars(pq)) == c  # noqa: S307
    assert pq.TopK(k=np.int64(3)) == pq.TopK(k=3) and hash(pq.TopK(k=np.int64(3))) == hash(pq.TopK(k=3))
    m = pq.methods.DAGC(variant="R", mean=0.1, volumes=np.array([3.0, 2.0, 1.0]))
    assert "volumes=[3.0, 2.0, 1.0]" in repr(m)
    assert m == pq.methods.DAGC(variant="R", mean=0.1, volumes=[3.0, 2.0, 1.0])


def test_set_params_is_all_or_nothing():
    c = pq.chain(pq.TopK(k=3), pq.QSGD(levels=4))
    with pytest.raises(ValueError):
        c.set_params(a__k=0)
    assert c == pq.chain(pq.TopK(k=3), pq.QSGD(levels=4))
    x = np.arange(10.0)
    assert c.compress(x, key=0).bits > 0
    t = pq.TopK(k=2)
    with pytest.raises(ValueError):
        t.set_params(k=0)
    assert t.k == 2


def test_spec_configure_does_not_edit_the_callers_method():
    spec = pq.Spec(pq.ProblemSpec("logistic", "breast_cancer"), pq.methods.DCGD(pq.Identity()), n_workers=2,
                   rounds=1)
    mine = pq.methods.EF(pq.TopK(k=1))
    out = spec.configure(method=mine, method__compressor__k=7)
    assert mine == pq.methods.EF(pq.TopK(k=1))
    assert out.method == pq.methods.EF(pq.TopK(k=7))


def test_synthetic_data_never_leaves_a_worker_empty():
    X, y, parts = pq.data.synthetic_logistic(20, 3, n_workers=10, skew=1e4, key=0)
    assert all(len(p) >= 1 for p in parts) and sum(len(p) for p in parts) == 20


def test_ddp_hook_state_plans_dagc_from_shard_sizes():
    pytest.importorskip("torch")
    import pyqsgd.torch as pqt

    method = pq.methods.DAGC(variant="R", mean=0.25)
    state = pqt.HookState(method, world_size=3, shard_sizes=[27, 8, 1])
    runner_sizes = []
    original = method.build

    def spy(d, m, sizes=None):
        runner_sizes.append(sizes)
        return original(d, m, sizes=sizes)

    method.build = spy
    state._new_runner(0, 100)
    assert len(runner_sizes) == 1 and list(np.asarray(runner_sizes[0], dtype=float)) == [27.0, 8.0, 1.0]
