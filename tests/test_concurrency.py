"""Python threads sharing pyqsgd objects: 8 threads compress, decompress and simulate with the
SAME compressor (and method) objects at once, and get bit for bit what a serial run gets.

What may be shared (DESIGN.md: compressors are stateless, const, thread-safe):

* compressors, built-in or written in Python: yes. Native ones are immutable C++ objects (their
  native pipeline is cached on first use; two threads racing to cache it build equal objects).
  A Python compressor gets a fresh key-derived generator per call (a per-thread pool in
  pyqsgd/python_stages.py), so it is shared safely as long as its own encode/decode keep no
  per-call state.
* methods: ``simulate`` builds a fresh native method (zeroed state) per run, so the run's
  history is its own. But a run also writes ``method.state_`` (the final state, for
  convenience): with a shared method object that attribute holds whichever run finished last;
  read ``hist.state`` instead. ``Method.build`` passes the shard sizes to ``compressors_for``
  in a per-thread slot, so a DAGC object may be shared by runs with different shards
  (``test_shared_dagc_method_plans_from_its_own_shard_sizes``).
* ``set_num_threads`` sets the process-wide count; ``pq.threads(n)`` overrides it for the
  calling thread only, so blocks in different Python threads keep their own counts (and the
  count never changes results; see the last tests).
"""
import os
import sys
import threading

import numpy as np
import pytest

import pyqsgd as pq

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, "compressors")]
from python_stages_lib import Dither, Largest, NumpyRandK, NumpyTopK  # noqa: E402
from registry import CONFIGS  # noqa: E402  (the compressor registry of the contract suite)

del sys.path[:2]

N_THREADS = 8
TIMEOUT = 120  # seconds for a whole concurrent phase; a deadlock fails instead of hanging
D = 40000  # > 2 blocks of 16384: at 2 OpenMP threads the kernels split inside each call


def concurrently(jobs, n_threads=N_THREADS):
    """Runs ``jobs`` (callables) on n_threads daemon threads released together by a barrier;
    thread j takes jobs j, j + n, ... Returns the results in job order; re-raises the first
    exception; fails if a thread is still running after TIMEOUT (a deadlock)."""
    results, errors = [None] * len(jobs), []
    barrier = threading.Barrier(n_threads)

    def work(j0):
        try:
            barrier.wait(TIMEOUT)
            for j in range(j0, len(jobs), n_threads):
                results[j] = jobs[j]()
        except BaseException as e:  # noqa: BLE001 - reported below, on the test's thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(j,), daemon=True) for j in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    assert not any(t.is_alive() for t in threads), "a thread did not finish: deadlock or livelock"
    if errors:
        raise errors[0]
    return results


# ---- compress / decompress ------------------------------------------------------------------

def _compressors():
    """Every registry compressor plus the kinds the registry leaves out (TNQ, Threshold,
    blockwise, Python-defined stages), each ONE object shared by all threads."""
    out = {c.id: c.make() for c in CONFIGS}
    out.update({
        "TruncatedQuantizer": pq.TruncatedQuantizer(bits=3),
        "NonUniformQuantizer": pq.NonUniformQuantizer(bits=2),
        "Threshold": pq.Threshold(tau=1.0),
        "blockwise-TopK-QSGD": pq.blockwise(pq.chain(pq.TopK(ratio=0.1), pq.QSGD(levels=4)), [D // 2, D // 4, D // 4]),
        "py-NumpyTopK": NumpyTopK(k=300),
        "py-NumpyRandK": NumpyRandK(k=50),
        "py-Dither": Dither(levels=4),
        "chain-py-Largest-QSGD": pq.chain(Largest(k=50), pq.QSGD(levels=4)),
        "induced-TopK-py-Dither": pq.induced(pq.TopK(k=50), Dither(levels=2)),
        "blockwise-py-Dither": pq.blockwise(Dither(levels=4), [D // 2, D // 2]),
    })
    return out


def _work_items(comps, n_vectors=3):
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal(D).astype(np.float32) for _ in range(n_vectors)]
    keys = [pq.Key(seed=5, round=r, worker=w) for r, w in ((0, 0), (3, 1), (7, 6))]
    return [(name, c, i, x, keys[i]) for name, c in comps.items() for i, x in enumerate(xs)]


def _codec(c, x, key):
    msg = c.compress(x, key=key)
    wire = msg.to_bytes()
    back = pq.Message.from_bytes(wire)
    return wire, msg.bits, c.decompress(back).tobytes()


@pytest.mark.parametrize("omp", [1, 2])
def test_threads_sharing_compressors_get_the_serial_bytes(omp):
    comps = _compressors()
    items = _work_items(comps)
    with pq.threads(omp):
        serial = [_codec(c, x, k) for _, c, _, x, k in items]
        # Reversed and interleaved: each thread meets every compressor, while others use it.
        order = list(range(len(items)))[::-1]
        got = concurrently([lambda j=j: _codec(items[j][1], items[j][3], items[j][4]) for j in order])
    for j, g in zip(order, got):
        assert g == serial[j], (items[j][0], items[j][2])


# ---- simulate -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def prob():
    # n = 4608 > two 2048-sample blocks and 20 m d = 40960 >= 32768 (m = 8, d = 256): every
    # parallel region of the engine opens at OpenMP threads > 1 (tests/test_determinism_methods.py).
    rng = np.random.default_rng(1)
    A = rng.standard_normal((4608, 256), dtype=np.float32)
    y = np.where(A[:, 0] - A[:, 1] + rng.standard_normal(4608, dtype=np.float32) > 0, 1.0, -1.0).astype(np.float32)
    return pq.problems.LogisticRegression(A, y, l2=1e-3)


SIM = dict(n_workers=8, rounds=15, lr=0.3, log_every=1)
COLUMNS = ("loss", "grad_norm_sq", "bits_up", "bits_down", "uploads", "skipped", "worker_bits_up")


def _shared_compressors():
    return {"topk": pq.TopK(ratio=0.05), "randk": pq.RandK(ratio=0.1, shared_seed=False),
            "qsgd-chain": pq.chain(pq.TopK(ratio=0.2), pq.QSGD(levels=4)), "natural": pq.Natural(),
            "py-dither": Dither(levels=4), "py-topk": NumpyTopK(k=12),
            "py-chain": pq.chain(Largest(k=12), pq.QSGD(levels=4))}


def _method_factories(c):
    """Method classes wrapped around ONE shared compressor object ``c`` (fresh method per run)."""
    out = [lambda: pq.methods.EF21(c["topk"]), lambda: pq.methods.DCGD(c["randk"]),
           lambda: pq.methods.EF(c["qsgd-chain"], server_momentum=0.3), lambda: pq.methods.DIANA(c["natural"]),
           lambda: pq.methods.DIANA(c["py-dither"]), lambda: pq.methods.EF21(c["py-topk"]),
           lambda: pq.methods.EF(c["py-chain"])]
    return out


def _sim_fingerprint(h):
    """The whole history as bytes: x, every per-round column and the final method state."""
    return (h.status, h.x.tobytes(), tuple(np.asarray(getattr(h, k)).tobytes() for k in COLUMNS),
            tuple((k, np.asarray(v).tobytes()) for k, v in sorted(h.state.items())))


@pytest.mark.parametrize("omp", [1, 2])
def test_threads_sharing_compressors_simulate_like_serial(prob, omp):
    comps = _shared_compressors()
    makes = _method_factories(comps)
    jobs = [(make, key, batch) for make in makes for key, batch in ((0, None), (1, 32))]

    def run(make, key, batch):
        return _sim_fingerprint(pq.simulate(prob, make(), key=key, batch_size=batch, **SIM))

    with pq.threads(omp):
        serial = [run(*job) for job in jobs]
        got = concurrently([lambda job=job: run(*job) for job in jobs])
    for job, s, g in zip(jobs, serial, got):
        assert s[0] == "ok" and g == s, job[1:]


def test_threads_sharing_method_objects_simulate_like_serial(prob):
    # The per-run state lives in the native method each run builds, so a method object shared
    # between threads gives each run its own history. Equal shards (iid, 4608 / 8) keep DAGC
    # out of the shard-size race (see the next test).
    shared = {"ef21": pq.methods.EF21(pq.TopK(ratio=0.05)), "diana-py": pq.methods.DIANA(Dither(levels=4)),
              "lesign": pq.methods.LESignSGD(D=2, xi=50.0), "fv": pq.methods.SignSGDFV(T_in=2),
              "dagc-r": pq.methods.DAGC(variant="R", mean=0.1)}
    jobs = [(name, key) for name in shared for key in range(4)]

    def run(name, key):
        return pq.simulate(prob, shared[name], key=key, batch_size=32, **SIM)

    with pq.threads(2):
        serial = [_sim_fingerprint(run(*job)) for job in jobs]
        hists = concurrently([lambda job=job: run(*job) for job in jobs])
    for job, s, h in zip(jobs, serial, hists):
        assert _sim_fingerprint(h) == s, job
    # method.state_ is the state of whichever run of that object finished last: one of its
    # runs' hist.state, not necessarily the caller's (documented above; use hist.state).
    for name, method in shared.items():
        states = [tuple((k, np.asarray(v).tobytes()) for k, v in sorted(h.state.items()))
                  for (n, _), h in zip(jobs, hists) if n == name]
        assert tuple((k, np.asarray(v).tobytes()) for k, v in sorted(method.state_.items())) in states


def _require(ok, what):
    """A precondition of a regression test: pytest.fail, so that a broken setup reads as such and
    not as the bug coming back."""
    if not ok:
        pytest.fail(f"precondition failed: {what}")


class _DAGCWithPause(pq.methods.DAGC):
    """DAGC whose ``_make`` (the step between ``Method.build`` storing the shard sizes on the
    object and ``_native_compressors`` reading them back) waits on the first thread until a
    second run on the same object has finished. It changes only the timing, making
    deterministic an interleaving the GIL allows at any bytecode boundary."""

    def _make(self, d, m):
        hold = self.__class__.hold
        if threading.current_thread() is hold["first"]:
            hold["first_paused"].set()
            _require(hold["other_done"].wait(TIMEOUT), "the second run finished")
        return super()._make(d, m)


# Regression: Method.build once passed the shard sizes through an attribute of the (shared)
# method object; a second thread's build overwrote it and the first run planned DAGC for equal
# sizes. They now travel in a per-thread slot (pyqsgd/methods/base.py, _BUILDING).
def test_shared_dagc_method_plans_from_its_own_shard_sizes(prob):
    parts = pq.data.partition(prob.n_samples, 8, scheme="size_skew", skew=8, key=0)
    method = _DAGCWithPause(variant="R", mean=0.1)
    kw = dict(SIM, rounds=3, partition=parts)
    _DAGCWithPause.hold = {"first": None, "first_paused": threading.Event(), "other_done": threading.Event()}
    serial = pq.simulate(prob, method, key=0, **kw)
    out = {}

    def first():
        out["first"] = pq.simulate(prob, method, key=0, **kw)

    def second():
        try:
            out["second"] = pq.simulate(prob, method, key=0, **kw)
        finally:
            _DAGCWithPause.hold["other_done"].set()

    t1 = threading.Thread(target=first, daemon=True)
    _DAGCWithPause.hold["first"] = t1
    t1.start()
    _require(_DAGCWithPause.hold["first_paused"].wait(TIMEOUT), "first run paused")  # sizes stored, not read
    t2 = threading.Thread(target=second, daemon=True)
    t2.start()
    t1.join(TIMEOUT)
    t2.join(TIMEOUT)
    _require(not t1.is_alive() and not t2.is_alive() and "first" in out and "second" in out, "both runs ended")
    _require(out["second"].worker_bits_up.tobytes() == serial.worker_bits_up.tobytes(), "second run undisturbed")
    # Unequal shards give unequal TopK sizes: the serial plan is not uniform.
    _require(len(set(serial.worker_bits_up[-1].tolist())) > 1, "unequal per-worker plan")
    got, want = out["first"].worker_bits_up[-1].tolist(), serial.worker_bits_up[-1].tolist()
    assert got == want, f"per-worker uplink bits {got}, serial run {want}"
    assert _sim_fingerprint(out["first"]) == _sim_fingerprint(serial)


# ---- OpenMP thread count and Python threads ---------------------------------------------------

def test_python_threads_with_different_openmp_counts_still_match_serial(prob):
    # Each job runs inside its own `with pq.threads(n)`, n in (1, 2, 4), while others change the
    # process-wide count underneath it: the count a run actually gets varies, its results not.
    comps = _shared_compressors()
    makes = _method_factories(comps)
    jobs = [(make, n) for make in makes for n in (1, 2, 4)]

    def run(make, n):
        with pq.threads(n):
            return _sim_fingerprint(pq.simulate(prob, make(), key=3, batch_size=48, **SIM))

    before = pq.get_num_threads()
    serial = [run(*job) for job in jobs]
    try:
        got = concurrently([lambda job=job: run(*job) for job in jobs])
    finally:
        pq.set_num_threads(before)
    assert got == serial
    # the thread count is not part of the result: all three counts gave one history per method
    assert all(len({s for (mk, _), s in zip(jobs, serial) if mk is make}) == 1 for make in makes)


# Regression: pq.threads(n) once saved and restored one process-wide count, so overlapping
# blocks in two Python threads saw each other's count; the override is now per thread
# (cpp/src/parallel.cpp, t_threads).
def test_overlapping_threads_blocks_restore_the_setting():
    before = pq.get_num_threads()
    a_in, b_in, a_left = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def a():
        with pq.threads(1):
            a_in.set()
            b_in.wait(TIMEOUT)  # b enters its block while a is inside its own
            seen["a_inside"] = pq.get_num_threads()
        a_left.set()

    def b():
        a_in.wait(TIMEOUT)
        with pq.threads(3):
            b_in.set()
            a_left.wait(TIMEOUT)  # a leaves first, b last: the exits are not in LIFO order

    try:
        pq.set_num_threads(2)
        ts = [threading.Thread(target=f, daemon=True) for f in (a, b)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(TIMEOUT)
        _require(not any(t.is_alive() for t in ts) and "a_inside" in seen, "both threads ran their blocks")
        after = pq.get_num_threads()
    finally:
        pq.set_num_threads(before)
    # a's block should run with 1 thread and the setting be 2 again after both blocks
    assert (seen["a_inside"], after) == (1, 2), f"a's block ran with {seen['a_inside']} threads; {after} after"
