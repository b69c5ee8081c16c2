"""Every method in ``pyqsgd.methods.__all__`` gives a bitwise-identical history at 1, 2 and 4
OpenMP threads (DESIGN.md: "Same key => bitwise-identical hist and messages at any thread
count"), and so does the DDP hook's HookState.

Why these sizes: the engine only opens a parallel region when its work estimate reaches
``kMinParallelWork`` = 32768 operations (cpp/include/pyqsgd/parallel.hpp); below that every
thread count runs the same serial loop and the test would prove nothing. The estimates, from
cpp/src/simulator.cpp and cpp/src/problems.cpp, are checked by ``_engages`` before each run:

* gradients, parallel over workers: ``work_ = sum_i (b_i row (local steps) + 20 d)`` with
  ``row = d`` (dense) or ``0.1 d`` (CSR);
* the method's worker step, parallel over workers: ``20 m d``;
* full loss / gradient (logged every round), parallel over 2048-sample blocks: needs n > 2048
  and ``n (row + 10)`` >= 32768;
* server kernels (weighted sums, votes, the downlink compressor), parallel over 16384-element
  blocks: need d > 16384 -- only the WIDE problem (d = 40000, sparse) reaches them.

The file takes ~15-25 s on 2 shared cores.
"""
import os
import sys

import numpy as np
import pytest
import scipy.sparse as sp

import pyqsgd as pq
from pyqsgd.reference import methods as ref_methods

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from python_stages_lib import Dither, NumpyTopK, PythonWeightedSum  # noqa: E402

sys.path.pop(0)

THREADS = (1, 2, 4)
MIN_PARALLEL_WORK = 32768.0  # kMinParallelWork in cpp/include/pyqsgd/parallel.hpp
BLOCK = 1 << 14  # kBlock: elements per block of the d-parallel kernels
SAMPLE_BLOCK = 2048  # kSampleBlock in cpp/src/problems.cpp
COLUMNS = ("round", "loss", "grad_norm_sq", "bits_up", "bits_down", "uploads", "skipped", "worker_bits_up")

# Names in pyqsgd.methods.__all__ that are not runnable methods, and why.
NOT_METHODS = {
    "Method": "the abstract base: its _make raises TypeError (every concrete method is a subclass)",
    "State": "the dict of arrays a PythonMethod keeps, not a method",
}


def _dense():
    # n = 4608 > 2 sample blocks; d = 256 so that 20 m d = 40960 >= 32768 with m = 8 workers.
    rng = np.random.default_rng(0)
    A = rng.standard_normal((4608, 256), dtype=np.float32)
    y = np.where(A[:, :4].sum(1) + rng.standard_normal(4608, dtype=np.float32) > 0, 1.0, -1.0).astype(np.float32)
    return pq.problems.LogisticRegression(A, y, l2=1e-3)


def _wide():
    # d = 40000 > 2 blocks of 16384 (server kernels split 3 ways); CSR with 40 non-zeros per row.
    rng = np.random.default_rng(1)
    n, d, nnz = 2400, 40000, 40
    cols = np.concatenate([np.sort(rng.choice(d, nnz, replace=False)) for _ in range(n)])
    X = sp.csr_matrix((rng.standard_normal(n * nnz).astype(np.float32), cols, np.arange(0, n * nnz + 1, nnz)),
                      shape=(n, d))
    w = rng.standard_normal(d)
    y = np.where(X @ w + 0.3 * rng.standard_normal(n) > 0, 1.0, -1.0).astype(np.float32)
    return pq.problems.LogisticRegression(X, y, l2=1e-4)


PROBLEMS = {}


def problem(name):
    if name not in PROBLEMS:
        PROBLEMS[name] = {"dense": _dense, "wide": _wide}[name]()
    return PROBLEMS[name]


M = 8  # workers
# (id, the __all__ name it covers, method factory, problem, simulate keywords). Each factory
# makes a fresh method per run, so no state can leak between thread counts.
CASES = [
    ("dcgd-randk", "DCGD", lambda: pq.methods.DCGD(pq.RandK(ratio=0.1, shared_seed=False)), "dense",
     dict(batch_size=64)),
    ("dcgd-qsgd-downlink", "DCGD", lambda: pq.methods.DCGD(pq.QSGD(levels=4), downlink=pq.QSGD(levels=8)), "wide",
     dict(batch_size=100)),
    ("dcgd-python-compressor", "DCGD", lambda: pq.methods.DCGD(Dither(levels=4)), "dense", dict(batch_size=64)),
    ("ef-chain-momentum", "EF", lambda: pq.methods.EF(pq.chain(pq.TopK(ratio=0.2), pq.QSGD(levels=4)),
                                                       server_momentum=0.5), "dense", dict(tau=5, batch_size=48)),
    ("ef-induced-wide", "EF", lambda: pq.methods.EF(pq.induced(pq.TopK(ratio=0.01), pq.RandK(ratio=0.01))), "wide",
     dict(participation=np.linspace(0.4, 1.0, M), batch_size=50)),
    ("ef21-topk", "EF21", lambda: pq.methods.EF21(pq.TopK(ratio=0.05)), "dense", dict()),
    ("ef21-exact-init-wide", "EF21", lambda: pq.methods.EF21(pq.TopK(ratio=0.02), exact_init=True), "wide",
     dict(batch_size=[40 + 10 * i for i in range(M)])),
    ("ef21-python-aggregator", "EF21", lambda: pq.methods.EF21(NumpyTopK(k=20), aggregator=PythonWeightedSum()),
     "dense", dict(batch_size=64)),
    ("diana-natural", "DIANA", lambda: pq.methods.DIANA(pq.Natural()), "dense",
     dict(batch_size=32, local_steps=2, local_lr=0.05)),
    ("diana-terngrad-wide", "DIANA", lambda: pq.methods.DIANA(pq.TernGrad(), alpha=0.2), "wide",
     dict(participation=0.6)),
    ("efsign", "EFSignSGD", lambda: pq.methods.EFSignSGD(), "dense", dict(batch_size=64)),
    ("efsign-wide-weighted", "EFSignSGD", lambda: pq.methods.EFSignSGD(aggregator=pq.WeightedMean("data")), "wide",
     dict(batch_size=80)),
    # xi large enough that workers really skip (the lazy rule reads the step history, floats
    # that must not depend on the thread count).
    ("lesign", "LESignSGD", lambda: pq.methods.LESignSGD(D=2, xi=50.0, t_bar=3), "dense", dict(batch_size=64)),
    ("lesign-wide", "LESignSGD", lambda: pq.methods.LESignSGD(D=3, xi=5.0), "wide", dict(batch_size=80)),
    ("signsgd-mv", "SignSGDMV", lambda: pq.methods.SignSGDMV(), "dense", dict(batch_size=32)),
    ("signum-mv-wide", "SignSGDMV", lambda: pq.methods.SignSGDMV(worker_momentum=0.9, server_momentum=0.3), "wide",
     dict(batch_size=60)),
    ("signsgd-fv", "SignSGDFV", lambda: pq.methods.SignSGDFV(T_in=2), "dense", dict(batch_size=32)),
    ("signsgd-fv-per-coordinate-wide", "SignSGDFV", lambda: pq.methods.SignSGDFV(T_in=1, per_coordinate=True), "wide",
     dict(batch_size=60)),
    ("signsgd-fv-authors", "SignSGDFV", lambda: pq.methods.SignSGDFV(T_in=1, authors_compat=True, lam=0.9), "dense",
     dict(batch_size=32)),
    ("signsgd-fv-oracle", "SignSGDFV", lambda: pq.methods.SignSGDFV(oracle=True), "dense",
     dict(batch_size=[16, 16, 32, 32, 64, 64, 128, 128])),
    ("signsgd-fv-leave-one-out", "SignSGDFV", lambda: pq.methods.SignSGDFV(T_in=0, leave_one_out=True), "dense",
     dict(batch_size=32)),
    ("dagc-r", "DAGC", lambda: pq.methods.DAGC(variant="R", mean=0.1), "dense", dict(partition="skew")),
    ("dagc-r-paper-dcgd-quant", "DAGC", lambda: pq.methods.DAGC(variant="R", mean=0.05, rule="paper",
                                                                 error_feedback=False, quantizer=pq.QSGD(levels=8)),
     "dense", dict(partition="skew", batch_size=32)),
    ("dagc-a-wide", "DAGC", lambda: pq.methods.DAGC(variant="A", mean=1e-4), "wide", dict(partition="skew")),
    ("python-ef21", "PythonMethod", lambda: ref_methods.EF21(pq.TopK(ratio=0.05)), "dense", dict(batch_size=64)),
    ("python-diana-wide", "PythonMethod", lambda: ref_methods.DIANA(pq.RandK(ratio=0.05)), "wide",
     dict(participation=0.7)),
]


def _partition(prob, kind):
    if kind == "skew":  # unequal shards: DAGC's per-worker plans and WeightedMean really differ
        return pq.data.partition(prob.n_samples, M, scheme="size_skew", skew=8, key=3)
    return pq.data.partition(prob.n_samples, M, scheme="iid", key=3)


def _engages(pname, prob, parts, kw):
    """The engine's work estimates (see the module docstring) for this run, checked against the
    serial cut-off, so that a later change of sizes cannot silently make the test vacuous."""
    d = prob.dim
    row = d * (1.0 if pname == "dense" else 0.1)  # the engine's cost of one CSR row is 0.1 d
    batch = kw.get("batch_size")
    batches = batch if isinstance(batch, list) else [batch] * M
    h = kw.get("local_steps", 1)
    work = sum((b if b else len(p)) * row * h + 20.0 * d for b, p in zip(batches, parts))
    assert work >= MIN_PARALLEL_WORK, work                         # gradients over workers
    assert 20.0 * M * d >= MIN_PARALLEL_WORK                        # worker steps over workers
    assert prob.n_samples > SAMPLE_BLOCK and prob.n_samples * (row + 10) >= MIN_PARALLEL_WORK  # full loss/grad


def _run(case, n):
    _, _, make, pname, kw = case
    prob = problem(pname)
    kw = dict(kw)
    parts = _partition(prob, kw.pop("partition", "iid"))
    _engages(pname, prob, parts, kw)
    with pq.threads(n):
        assert pq.get_num_threads() == n
        # lr: small enough that sign methods on the wide problem stay finite for 12 rounds.
        return pq.simulate(prob, make(), n_workers=M, rounds=12, lr=0.05, partition=parts, key=2024, log_every=1,
                           **kw)


def _assert_same(a, b, where):
    assert a.status == b.status == "ok", (where, a.status, b.status)
    for c in COLUMNS:
        assert np.array_equal(getattr(a, c), getattr(b, c)), (where, c)
    assert a.x.tobytes() == b.x.tobytes(), where
    assert (a.vote_weights is None) == (b.vote_weights is None), where
    if a.vote_weights is not None:
        assert a.vote_weights.tobytes() == b.vote_weights.tobytes(), where
    assert sorted(a.state) == sorted(b.state), where
    for k in a.state:
        assert np.asarray(a.state[k]).tobytes() == np.asarray(b.state[k]).tobytes(), (where, k)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_method_history_is_bitwise_identical_at_1_2_4_threads(case):
    runs = {n: _run(case, n) for n in THREADS}
    assert runs[1].meta["threads"] == 1 and runs[4].meta["threads"] == 4
    for n in THREADS[1:]:
        _assert_same(runs[1], runs[n], f"{case[0]}: 1 vs {n} threads")
    # Not a frozen run: the model moved and bits were sent every round.
    assert not np.array_equal(runs[1].x, np.zeros_like(runs[1].x))
    assert np.all(np.diff(runs[1].bits_up) > 0) or case[1] == "LESignSGD"


def test_every_method_in_all_is_covered():
    covered = set()
    for cid, name, make, _, _ in CASES:
        cls = getattr(pq.methods, name)
        m = make()
        # The exact class, so that e.g. EFSignSGD (a subclass of EF) does not count as EF;
        # PythonMethod is abstract too and is covered by its concrete subclasses.
        ok = type(m) is cls or (name == "PythonMethod" and isinstance(m, cls) and type(m) is not cls)
        assert ok, (cid, name, type(m))
        covered.add(name)
    expected = set(pq.methods.__all__) - set(NOT_METHODS)
    assert covered == expected, (
        f"methods without a determinism case: {sorted(expected - covered)}; add a case to CASES (or, if the "
        f"name is not a method, to NOT_METHODS with the reason); unknown: {sorted(covered - expected)}")
    assert set(NOT_METHODS) <= set(pq.methods.__all__), "NOT_METHODS names something no longer exported"


# ---- the DDP hook -----------------------------------------------------------------------------


def _hook_methods():
    return {
        "ef-qsgd": pq.methods.EF(pq.QSGD(levels=4)),
        # k = 30000 > 16384: TopK's kept-value packing runs over two blocks
        "ef21-topk": pq.methods.EF21(pq.TopK(ratio=0.3)),
        "diana-randk": pq.methods.DIANA(pq.RandK(ratio=0.5)),
        "dcgd-induced-natural": pq.methods.DCGD(pq.induced(pq.TopK(ratio=0.2), pq.Natural())),
        "efsign": pq.methods.EFSignSGD(),
        "lesign": pq.methods.LESignSGD(D=2, xi=50.0),
        "signsgd-mv": pq.methods.SignSGDMV(worker_momentum=0.5),
        "signsgd-fv": pq.methods.SignSGDFV(T_in=1),
        "dagc-a": pq.methods.DAGC(variant="A", mean=1e-3),
        "python-ef21-dither": ref_methods.EF21(Dither(levels=4)),
    }


class _Bucket:
    """What the hook reads from a torch GradBucket: buffer(), index(), is_last(), parameters()."""

    def __init__(self, index, grad, last, params):
        self._i, self._buf, self._last, self._params = index, grad, last, params

    def buffer(self):
        return self._buf

    def index(self):
        return self._i

    def is_last(self):
        return self._last

    def parameters(self):
        return self._params


@pytest.fixture(scope="module")
def gloo_group(tmp_path_factory):
    torch = pytest.importorskip("torch", reason="the DDP hook needs PyTorch (pip install 'pyqsgd[torch]')")
    import torch.distributed as dist

    if not dist.is_available():  # pragma: no cover
        pytest.skip("torch.distributed is not available")
    if dist.is_initialized():  # pragma: no cover - someone else's group: do not take it over
        pytest.skip("a process group is already initialised in this process")
    store = dist.FileStore(str(tmp_path_factory.mktemp("gloo") / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    yield torch
    dist.destroy_process_group()


def _hook_run(torch, method, n):
    """4 steps of two buckets (d = 100000 and 40000: both above two 16384-blocks) through
    comm_hook at n threads; returns everything the hook produced, as bytes."""
    import pyqsgd.torch as pqt

    rng = np.random.default_rng(7)
    sizes = (100000, 40000)
    params = [[torch.zeros(s // 4, 4) for _ in range(1)] for s in sizes]
    grads = [[rng.standard_normal(s).astype(np.float32) for s in sizes] for _ in range(4)]
    payloads = []
    state = pqt.HookState(method, key=9, lr=0.1,
                          observer=lambda b, t, st, pl: payloads.append((b, t, tuple(st), tuple(pl))))
    out = []
    with pq.threads(n):
        for step in grads:
            for i, g in enumerate(step):
                bucket = _Bucket(i, torch.from_numpy(g.copy()), i == len(step) - 1, params[i])
                res = pqt.comm_hook(state, bucket).value()
                out.append(res.numpy().tobytes())
    sd = state.state_dict()
    arrays = {(i, k): v.numpy().tobytes() for i, b in sd["buckets"].items() for k, v in b["state"].items()}
    return out, payloads, (state.bits_sent, state.bits_received, state.bits_down, state.iteration), arrays


@pytest.mark.parametrize("name", list(_hook_methods()))
def test_hook_outputs_are_bitwise_identical_at_1_2_4_threads(gloo_group, name):
    runs = [_hook_run(gloo_group, _hook_methods()[name], n) for n in THREADS]
    out, payloads, counters, arrays = runs[0]
    assert counters[3] == 4 and counters[0] > 0 and len(payloads) == 8
    assert any(np.frombuffer(o, np.float32).any() for o in out)  # the hook returned real steps
    for n, (o, p, c, a) in zip(THREADS[1:], runs[1:]):
        assert o == out, (name, n, "returned gradients")
        assert p == payloads, (name, n, "message bytes")
        assert c == counters, (name, n, "bit counters")
        assert a == arrays, (name, n, "method state")
