"""The memory-lean simulator: workers streamed a chunk at a time, and float32 method state.

Streaming (``simulate(streaming=True)``, the default) takes the workers in chunks of
``max(8, 4 x threads)`` and adds each chunk's decoded messages to the server's weighted sums in
worker order: the same floating-point operations as the buffered path, so every history column
and the state must be *bitwise* equal to ``streaming=False``. 37 workers make 5 chunks at one
thread and 3 at four, the last one partial.

float32 state (``state_dtype="float32"``) rounds only the stored per-worker rows. After one
round from zero state the float32 rows are exactly the float64 rows rounded to float32 (both
compute the same float64 value before storing it); later rounds differ by float32 rounding.
"""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import pyqsgd as pq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from python_stages_lib import NumpyTopK  # noqa: E402

sys.path.pop(0)

M = 37
COLUMNS = ("round", "loss", "grad_norm_sq", "bits_up", "bits_down", "uploads", "skipped", "worker_bits_up")


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((1200, 60), dtype=np.float32)
    y = np.where(A[:, :3].sum(1) > 0, 1.0, -1.0).astype(np.float32)
    return pq.problems.LogisticRegression(A, y, l2=1e-3)


def _methods():
    return {
        "DCGD+RandK": pq.methods.DCGD(pq.RandK(k=6)),
        "EF+TopK": pq.methods.EF(pq.TopK(k=6)),
        "EF21+TopK": pq.methods.EF21(pq.TopK(k=6)),
        "EF21 exact_init": pq.methods.EF21(pq.TopK(k=6), exact_init=True),
        "DIANA+QSGD": pq.methods.DIANA(pq.QSGD(levels=4)),
        "LESignSGD": pq.methods.LESignSGD(D=3, xi=50.0),
        "EF-SignSGD": pq.methods.EFSignSGD(),
        "DAGC-R": pq.methods.DAGC("R", mean=0.2),
        "EF21 momentum+downlink": pq.methods.EF21(pq.TopK(k=6), server_momentum=0.5, downlink=pq.QSGD(levels=8)),
    }


FEATURES = {
    "full": {},
    "partial+batches": {"participation": 0.6, "batch_size": [4 + (i % 5) for i in range(M)]},
    "tau+local steps": {"tau": 11, "local_steps": 2, "local_lr": 0.05, "batch_size": 8},
}


def _run(problem, method, threads, **kw):
    with pq.threads(threads):
        return pq.simulate(problem, method, n_workers=M, rounds=12, lr=0.2, key=5, **kw)


def _assert_identical(a, b):
    fa, fb = a.to_frame(), b.to_frame()
    for col in COLUMNS:
        if col in fa:
            np.testing.assert_array_equal(np.stack(fa[col].to_numpy()), np.stack(fb[col].to_numpy()), err_msg=col)
    np.testing.assert_array_equal(a.x, b.x)
    assert a.state.keys() == b.state.keys()
    for k in a.state:
        np.testing.assert_array_equal(a.state[k], b.state[k], err_msg=k)


@pytest.mark.parametrize("feature", list(FEATURES))
@pytest.mark.parametrize("name", list(_methods()))
def test_streamed_equals_buffered_bitwise(problem, name, feature):
    kw = FEATURES[feature]
    method = _methods()[name]
    buffered = _run(problem, method, 1, streaming=False, **kw)
    assert buffered.meta["streaming"] is False
    for threads in (1, 4):
        streamed = _run(problem, method, threads, **kw)
        assert streamed.meta["streaming"] is True, name
        _assert_identical(streamed, buffered)


class Quadratic:
    """A Python problem without grad_batch (one grad call per worker)."""

    n_samples, dim = 400, 30

    def __init__(self):
        self.b = np.random.default_rng(1).standard_normal((400, 30))

    def loss(self, x):
        return 0.5 * float(np.mean(np.sum((x - self.b) ** 2, axis=1)))

    def grad(self, x, idx):
        return x - self.b[idx].mean(0)


def test_python_problem_streams_identically(problem):
    # The external path (gradients from Python) gives the buffered path's results.
    q = Quadratic()
    for method in (pq.methods.EF21(pq.TopK(k=3)), pq.methods.LESignSGD(D=2, xi=10.0)):
        a = pq.simulate(q, method, n_workers=M, rounds=8, lr=0.3, batch_size=5, participation=0.7, key=2)
        b = pq.simulate(q, method, n_workers=M, rounds=8, lr=0.3, batch_size=5, participation=0.7, key=2,
                        streaming=False)
        assert a.meta["streaming"] and not b.meta["streaming"]
        _assert_identical(a, b)


class _BatchedQuadratic:
    """A Python problem with grad_batch, recording how many workers each call covers."""

    n_samples, dim = 400, 30

    def __init__(self):
        self.b = np.random.default_rng(1).standard_normal((400, 30))
        self.calls = []

    def loss(self, x):
        return 0.5 * float(np.mean(np.sum((x - self.b) ** 2, axis=1)))

    def grad(self, x, idx):
        return x - self.b[idx].mean(0)

    def grad_batch(self, x, batches):
        self.calls.append(len(batches))
        X = np.broadcast_to(x, (len(batches), self.dim))
        return np.stack([X[j] - self.b[idx].mean(0) for j, idx in enumerate(batches)])


@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("kw", [{}, {"local_steps": 2, "local_lr": 0.1}], ids=["gradients", "local steps"])
def test_python_problems_are_asked_for_windows_of_workers(monkeypatch, batched, kw):
    # The streamed Python path never holds all m local vectors: the simulator asks for them a
    # window at a time (here 5 workers), with the same result as one window of all workers.
    simulate_module = sys.modules["pyqsgd.simulate"]  # the module; pq.simulate is the function

    method = pq.methods.EF21(pq.TopK(k=3))
    common = dict(n_workers=M, rounds=6, lr=0.3, batch_size=5, participation=0.7, key=2, **kw)
    make = _BatchedQuadratic if batched else Quadratic
    whole = pq.simulate(make(), method, streaming=False, **common)
    monkeypatch.setattr(simulate_module, "WINDOW_BYTES", 8 * 30 * 5)
    q = make()
    windowed = pq.simulate(q, method, **common)
    assert windowed.meta["streaming"]
    _assert_identical(windowed, whole)
    if batched:
        assert q.calls and max(q.calls) <= 5  # participants of one window per call
        assert len(q.calls) >= 6 * (M // 5)  # every round took several windows


def test_methods_that_need_every_row_stay_buffered(problem):
    # A vote reads all signs at once; a Python aggregator sees every decoded message.
    for method in (pq.methods.SignSGDMV(), pq.methods.SignSGDFV(T_in=2)):
        assert pq.simulate(problem, method, n_workers=M, rounds=3, lr=0.01).meta["streaming"] is False


def test_divergence_leaves_the_same_history_on_both_paths(problem):
    # A run that blows up mid-round: the round is not counted on either path.
    kw = dict(n_workers=M, rounds=40, lr=1e6, key=3)
    with pytest.warns(RuntimeWarning):
        a = pq.simulate(problem, pq.methods.EF(pq.TopK(k=6)), **kw)
    with pytest.warns(RuntimeWarning):
        b = pq.simulate(problem, pq.methods.EF(pq.TopK(k=6)), streaming=False, **kw)
    assert a.status == b.status == "diverged"
    _assert_identical(a, b)


SHARD = 10  # contiguous shards: worker i holds samples [10 i, 10 i + 10)
FAILING_WORKER, FAILING_ROUND = 20, 3  # chunk 3 of 5 at one thread (8 slots)


class _InfForOneWorker:
    """A Python problem whose gradient for one worker's batch becomes inf in one round."""

    n_samples, dim = M * SHARD, 12

    def __init__(self):
        self.b = np.random.default_rng(4).standard_normal((self.n_samples, self.dim))
        self.calls = 0

    def loss(self, x):
        return 0.5 * float(np.mean(np.sum((x - self.b) ** 2, axis=1)))

    def grad(self, x, idx):
        g = x - self.b[idx].mean(0)
        if idx.size < self.n_samples and idx.min() // SHARD == FAILING_WORKER:
            self.calls += 1
            if self.calls == FAILING_ROUND + 1:
                g[0] = np.inf
        return g


def _partition():
    return [np.arange(SHARD * i, SHARD * (i + 1)) for i in range(M)]


def test_a_worker_failing_mid_run_leaves_the_same_state_on_both_paths():
    # The failing worker sits in a middle chunk: the streamed path must still run the later
    # chunks' worker steps (as the buffered parallel loop does) and count no bit of the round.
    runs = []
    for streaming in (True, False):
        with pytest.warns(RuntimeWarning, match="non-finite"):
            runs.append(pq.simulate(_InfForOneWorker(), pq.methods.EF(pq.TopK(k=3)), n_workers=M, rounds=6,
                                    lr=0.1, partition=_partition(), key=0, streaming=streaming))
    a, b = runs
    assert a.meta["streaming"] and not b.meta["streaming"]
    assert a.status == b.status == "diverged" and a.round[-1] == FAILING_ROUND
    _assert_identical(a, b)
    # Every worker but the failing one took its step in the failed round: errors of the last
    # chunk's workers changed after the last completed round.
    assert np.abs(a.state["error"][M - 1]).sum() > 0


class _RaisingTopK(NumpyTopK):
    """NumpyTopK that raises on one call (worker FAILING_WORKER of round FAILING_ROUND)."""

    def __init__(self, *, k):
        super().__init__(k=k)
        self.calls = 0

    def encode(self, x, rng):
        self.calls += 1
        if self.calls == FAILING_ROUND * M + FAILING_WORKER + 1:
            raise RuntimeError("compressor failed")
        return super().encode(x, rng)


def test_a_python_compressor_raising_stops_both_paths_at_the_same_worker(problem):
    # Python code runs on one thread in worker order and is not called again after it raised:
    # workers before the failing one took their step, the ones after did not, on both paths.
    hists = []
    for streaming in (True, False):
        comp = _RaisingTopK(k=3)
        with pytest.raises(RuntimeError, match="compressor failed") as err:
            pq.simulate(problem, pq.methods.EF21(comp), n_workers=M, rounds=6, lr=0.1, key=0, streaming=streaming)
        assert comp.calls == FAILING_ROUND * M + FAILING_WORKER + 1
        hists.append(err.value.history)
    a, b = hists
    assert a.meta["streaming"] and not b.meta["streaming"]
    _assert_identical(a, b)
    assert a.round[-1] == FAILING_ROUND  # the last completed round is logged
    # Against the same rounds without the failure: the failing worker and those after it had not
    # stepped in the failed round, every worker before it had.
    clean = pq.simulate(problem, pq.methods.EF21(_RaisingTopK(k=3)), n_workers=M, rounds=FAILING_ROUND, lr=0.1,
                        key=0)
    g, g0 = a.state["g_workers"], clean.state["g_workers"]
    np.testing.assert_array_equal(g[FAILING_WORKER:], g0[FAILING_WORKER:])
    assert all(not np.array_equal(g[i], g0[i]) for i in range(FAILING_WORKER))


def test_a_run_whose_state_was_taken_cannot_continue(problem):
    cfg = pq._core.SimConfig()
    cfg.m, cfg.rounds, cfg.lr, cfg.key = 2, 2, 0.1, pq._core.Key(seed=0)
    cfg.parts = [np.arange(0, 600), np.arange(600, 1200)]
    cfg.batch, cfg.prob, cfg.weights = [0, 0], [1.0, 1.0], [1.0, 1.0]
    method = pq.methods.EF(pq.TopK(k=3)).build(problem.dim, 2, sizes=np.array([600.0, 600.0]))
    sim = pq._core.Simulator(problem._native, method, cfg, np.zeros(problem.dim))
    assert sim.run(1)
    state = sim.take_method_state()
    assert state["error"].shape == (2, problem.dim)
    with pytest.raises(ValueError, match="method state was taken"):
        sim.run(1)


STATE_METHODS = {
    "EF": (lambda: pq.methods.EF(pq.TopK(k=6)), ["error"]),
    "EF21": (lambda: pq.methods.EF21(pq.TopK(k=6)), ["g_workers"]),
    "DIANA": (lambda: pq.methods.DIANA(pq.QSGD(levels=4)), ["h_workers"]),
    "LESignSGD": (lambda: pq.methods.LESignSGD(D=3, xi=50.0), ["g_hat", "error"]),
    "Signum": (lambda: pq.methods.SignSGDMV(worker_momentum=0.9), ["momentum"]),
}


@pytest.mark.parametrize("name", list(STATE_METHODS))
def test_float32_state_after_one_round_is_the_float64_state_rounded(problem, name):
    make, rows = STATE_METHODS[name]
    h64 = pq.simulate(problem, make(), n_workers=M, rounds=1, lr=0.2, key=1, batch_size=16)
    h32 = pq.simulate(problem, make(), n_workers=M, rounds=1, lr=0.2, key=1, batch_size=16, state_dtype="float32")
    assert h32.meta["state_dtype"] == "float32" and h64.meta["state_dtype"] == "float64"
    for r in rows:
        assert h64.state[r].dtype == np.float64 and h32.state[r].dtype == np.float32, r
        assert h32.state[r].shape == (M, problem.dim)
        np.testing.assert_array_equal(h32.state[r], h64.state[r].astype(np.float32), err_msg=r)
    # The small server-side arrays (d or m entries) stay float64.
    for k in set(h32.state) - set(rows):
        assert h32.state[k].dtype == np.float64, k


@pytest.mark.parametrize("name", list(STATE_METHODS))
def test_float32_state_tracks_the_float64_run(problem, name):
    # Each stored value carries a relative rounding error <= 2^-24 ~ 6e-8; over 40 contracting
    # rounds (a strongly convex problem, lr below 1/L) the losses stay within 1e-5 relative.
    # Compressors whose output jumps with the input (TopK ties, QSGD's random rounding) can
    # amplify a rounding difference, hence far more than 6e-8, but far less than any real effect.
    make, _ = STATE_METHODS[name]
    kw = dict(n_workers=M, rounds=40, lr=0.2, key=1, batch_size=16)
    h64 = pq.simulate(problem, make(), **kw)
    h32 = pq.simulate(problem, make(), state_dtype="float32", **kw)
    np.testing.assert_allclose(h32.loss, h64.loss, rtol=1e-5)
    assert h32.bits_up[-1] == h64.bits_up[-1] or name in ("LESignSGD",)  # skips may shift by a round


def test_state_dtype_bad_input(problem):
    with pytest.raises(ValueError, match="state_dtype must be 'float64' or 'float32'"):
        pq.simulate(problem, pq.methods.EF(pq.TopK(k=2)), n_workers=4, rounds=1, state_dtype="float16")
    with pytest.raises(TypeError, match="streaming must be a bool"):
        pq.simulate(problem, pq.methods.EF(pq.TopK(k=2)), n_workers=4, rounds=1, streaming="yes")

    class Plain(pq.methods.PythonMethod):
        def init_state(self, d, m, x0):
            return {}

        def worker(self, i, v, state, ctx):
            return ctx.compress(v)

        def server(self, state, ctx):
            return ctx.lr * ctx.mean()

    with pytest.raises(ValueError, match="PythonMethod keeps its own state"):
        pq.simulate(problem, Plain(pq.TopK(k=2)), n_workers=4, rounds=1, state_dtype="float32")


# Peak memory of a streamed float32 EF run against the documented formula (docs/guides/memory.md):
# s m d b (state) + S d (8 + 4 + scratch) for S = max(8, 4 threads) chunk slots. Here 114 MiB
# of state and 21 MiB of slots; float64 state would add 114 MiB (60% over the bound), the
# buffered path 12 m d plus per-worker scratch (5x the bound).
MEMORY_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np, scipy.sparse as sp
    import pyqsgd as pq

    def status(field):  # KiB; VmHWM belongs to this process image (ru_maxrss keeps the parent's)
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))

    m, d, dtype, streaming = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4] == "1"
    rng = np.random.default_rng(0)
    n, nnz = 4 * m, 8
    rows = np.repeat(np.arange(n), nnz)
    X = sp.csr_matrix((np.ones(n * nnz, np.float32), (rows, rng.integers(0, d, n * nnz))), shape=(n, d))
    prob = pq.problems.LogisticRegression(X, np.where(rng.random(n) < 0.5, -1.0, 1.0))
    pq.set_num_threads(1)
    pq.simulate(prob, pq.methods.EF(pq.TopK(k=16)), n_workers=8, rounds=1, lr=0.1)  # warm-up
    with open("/proc/self/clear_refs", "w") as f:  # the peak restarts from the current RSS
        f.write("5")
    before = status("VmRSS")
    h = pq.simulate(prob, pq.methods.EF(pq.TopK(k=16)), n_workers=m, rounds=2, lr=0.1, state_dtype=dtype,
                    streaming=streaming)
    print(json.dumps({"kib": status("VmHWM") - before, "dtype": str(h.state["error"].dtype),
                      "streaming": h.meta["streaming"]}))
""")


def _peak_kib(m, d, dtype, streaming, cwd):
    # cwd outside the repository: `python -c` puts it first on sys.path, where the source
    # folder pyqsgd/ (no compiled _core) would shadow the installed package.
    out = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(m), str(d), dtype, "1" if streaming else "0"],
                         capture_output=True, text=True, timeout=600, cwd=cwd,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux /proc peak-RSS reset")
@pytest.mark.skipif("asan" in os.environ.get("LD_PRELOAD", ""), reason="ASan's shadow memory and quarantine change RSS")
def test_streamed_float32_run_fits_the_memory_formula(tmp_path):
    m, d = 300, 100_000
    res = _peak_kib(m, d, "float32", True, tmp_path)
    assert res["dtype"] == "float32" and res["streaming"] is True
    state = 4 * m * d  # one float32 error row per worker
    slots = 8 * d * (8 + 4 + 16)  # 8 chunk slots: local vector, decoded message, method/TopK scratch
    bound = 1.1 * (state + slots) + 8 * 2**20  # + allocator slack (measured: within 2% of state + slots)
    assert res["kib"] * 1024 <= bound, (res, bound)
    # The buffered float64 path really is bigger: the bound above is not vacuous.
    buffered = _peak_kib(m, d, "float64", False, tmp_path)
    assert buffered["kib"] * 1024 > 2 * bound, (buffered, bound)
