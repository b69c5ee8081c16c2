"""Compressors written in Python run everywhere a built-in does (issue: open toolkit)."""
import os
import pickle
import subprocess
import sys
import threading

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from python_stages_lib import Dither, Largest, NumpyRandK, NumpyTopK  # noqa: E402

import pyqsgd as pq  # noqa: E402


def vec(d, seed=0):
    return np.random.default_rng(seed).standard_normal(d).astype(np.float32)


def logistic(n=300, d=12, seed=0):
    A = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return pq.problems.LogisticRegression(A, np.where(A[:, 0] + 0.3 * A[:, 1] > 0, 1.0, -1.0).astype(np.float32),
                                          l2=1e-3)


def same_history(a, b, bits=True):
    fa, fb = a.to_frame(), b.to_frame()
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(fa["loss"].to_numpy(), fb["loss"].to_numpy())
    if bits:
        np.testing.assert_array_equal(fa["bits_up"].to_numpy(), fb["bits_up"].to_numpy())


# ---- the protocol -------------------------------------------------------------------------


def test_message_bits_wire_round_trip_and_fingerprint():
    c, x = Dither(levels=3), vec(40)
    msg = c.compress(x, key=5)
    assert msg.bits == 8 * len(c.encode(x, pq.generator_for(pq.Key(seed=5)))) == 8 * (4 + 40)
    assert msg.section_bits == [msg.bits] and msg.d == 40 and msg.tag == 15
    wire = pq.Message.from_bytes(msg.to_bytes())
    assert wire == msg and pickle.loads(pickle.dumps(msg)) == msg
    np.testing.assert_array_equal(c.decompress(wire), c(x, key=5))
    y = c.decompress(msg, out=np.empty(40, np.float32))
    assert y.dtype == np.float32 and y.shape == (40,)
    with pytest.raises(ValueError, match="not produced by this compressor"):
        Dither(levels=4).decompress(msg)  # other parameters, other fingerprint
    with pytest.raises(ValueError, match="not produced by this compressor"):
        pq.QSGD(levels=3).decompress(msg)


def test_rng_is_the_key_generator_and_nothing_else():
    c, x = NumpyRandK(k=4), vec(30, 1)
    key = pq.Key(seed=7, round=3, worker=2, stream=0)
    idx = np.sort(pq.generator_for(key).choice(30, 4, replace=False))
    y = c(x, key=key)
    np.testing.assert_array_equal(np.flatnonzero(y), idx)
    np.testing.assert_array_equal(y, c(x, key=key))
    assert not np.array_equal(y, c(x, key=pq.Key(seed=7, round=3, worker=3)))


def test_same_key_same_bytes_in_another_process(tmp_path):
    here = os.path.dirname(os.path.abspath(__file__))
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import numpy as np, pyqsgd as pq; "
            "from python_stages_lib import Dither; x = np.linspace(-1, 2, 50, dtype=np.float32); "
            "sys.stdout.write(Dither(levels=5).compress(x, key=pq.Key(seed=9, round=4)).to_bytes().hex())")
    out = subprocess.check_output([sys.executable, "-c", code, here], cwd=tmp_path, text=True)
    x = np.linspace(-1, 2, 50, dtype=np.float32)
    assert out == Dither(levels=5).compress(x, key=pq.Key(seed=9, round=4)).to_bytes().hex()


def test_parameters_repr_pickle_get_set_params_nested():
    c = pq.chain(pq.TopK(k=3), Dither(levels=2))
    assert repr(c) == "chain(TopK(k=3), Dither(levels=2))"
    assert eval(repr(c), {**vars(pq), "Dither": Dither}) == c  # noqa: S307 - the contract is exactly this
    restored = pickle.loads(pickle.dumps(c))
    x = vec(20)
    np.testing.assert_array_equal(restored(x, key=1), c(x, key=1))
    assert c.get_params()["b__levels"] == 2
    c.set_params(b__levels=6)
    assert c.b.levels == 6 and repr(c) == "chain(TopK(k=3), Dither(levels=6))"
    np.testing.assert_array_equal(c(x, key=1), pq.chain(pq.TopK(k=3), Dither(levels=6))(x, key=1))
    assert repr(Dither()) == "Dither()" and Dither() == Dither(levels=4)


def test_measure_on_a_python_compressor():
    x = vec(20, 2)
    m = pq.measure(NumpyRandK(k=5), x, trials=2000, key=3, confidence=0.999)
    assert m.omega_ci[0] <= 3.0 <= m.omega_ci[1] and m.bits_mean == 8 * 5 * 8


# ---- combinators on either side -----------------------------------------------------------


def test_python_first_stage_of_chain_matches_native_topk():
    x = vec(64, 3)
    for b in (pq.QSGD(levels=4), pq.Natural(), Dither(levels=3)):
        mine, ref = pq.chain(Largest(k=6), b), pq.chain(pq.TopK(k=6), b)
        # Same selection and the same key child for b: identical values decoded.
        np.testing.assert_array_equal(mine(x, key=11), ref(x, key=11))
        msg = mine.compress(x, key=11)
        assert msg.bits == 6 * 32 + b.compress(np.ones(6, np.float32), key=0).bits  # 6 uint32 indices + b's
        assert pq.Message.from_bytes(msg.to_bytes()) == msg
    # A selecting stage on its own: the selection, then the kept values as float32.
    np.testing.assert_array_equal(Largest(k=6)(x, key=0), pq.TopK(k=6)(x, key=0))
    assert Largest(k=6).compress(x, key=0).bits == 8 * (8 + 6 * 4 + 6 * 4)


def test_python_second_stage_of_chain_and_induced_both_sides():
    x = vec(50, 4)
    np.testing.assert_array_equal(pq.induced(NumpyTopK(k=5), pq.RandK(k=5))(x, key=2),
                                  pq.induced(pq.TopK(k=5), pq.RandK(k=5))(x, key=2))
    y = pq.chain(pq.TopK(k=5), Dither(levels=2))(x, key=2)
    assert np.count_nonzero(y) <= 5
    ind = pq.induced(pq.TopK(k=5), NumpyRandK(k=5))
    assert ind.properties(50).omega == pytest.approx((50 / 5 - 1) * (1 - 5 / 50))
    pq.testing.check_compressor(ind, d=50, trials=1500)
    with pytest.raises(ValueError, match="second compressor must be unbiased"):
        pq.induced(pq.TopK(k=5), NumpyTopK(k=5))
    with pytest.raises(ValueError, match="select/selection"):
        pq.chain(Dither(), pq.QSGD(levels=2))


# ---- inside methods, simulate, sweeps and threads ------------------------------------------


def test_numpy_topk_reproduces_native_topk_in_ef21_bit_for_bit():
    prob = logistic()
    kw = dict(n_workers=5, rounds=25, lr=0.5, key=3, batch_size=40, participation=0.8)
    mine = pq.simulate(prob, pq.methods.EF21(NumpyTopK(k=3)), **kw)
    ref = pq.simulate(prob, pq.methods.EF21(pq.TopK(k=3)), **kw)
    same_history(mine, ref, bits=False)
    df = mine.to_frame()
    assert (df["bits_up"] == df["uploads"] * 8 * 8 * 3).all()  # 3 uint32 indices + 3 float32 values


@pytest.mark.parametrize("make", [
    lambda: pq.methods.DCGD(Dither(levels=4)),
    lambda: pq.methods.EF(NumpyTopK(k=3)),
    lambda: pq.methods.EF21(pq.chain(Largest(k=4), pq.QSGD(levels=4))),
    lambda: pq.methods.DIANA(NumpyRandK(k=4)),
    lambda: pq.methods.DIANA(pq.induced(NumpyTopK(k=2), Dither(levels=4))),
    lambda: pq.methods.DAGC(variant="R", mean=0.3, quantizer=Dither(levels=8)),
    lambda: pq.methods.EFSignSGD(downlink=Dither(levels=16)),
    lambda: pq.methods.LESignSGD(downlink=Dither(levels=16)),
], ids=["DCGD", "EF", "EF21-chain", "DIANA", "DIANA-induced", "DAGC", "EFSignSGD-down", "LESign-down"])
def test_every_method_runs_a_python_compressor_deterministically(make):
    prob = logistic()
    parts = pq.data.partition(300, 4, scheme="size_skew", skew=4, key=0)
    kw = dict(n_workers=4, rounds=30, lr=0.2, key=1, partition=parts, batch_size=20)
    with pq.threads(1):
        a = pq.simulate(prob, make(), **kw)
    with pq.threads(2):
        b = pq.simulate(prob, make(), **kw)
    same_history(a, b)
    df = a.to_frame()
    assert df["loss"].iloc[-1] < df["loss"].iloc[0] and (df["bits_up"] > 0).iloc[1:].all()


def test_python_problem_with_python_compressor():
    prob = logistic(n=120, d=6)

    class Wrapped:  # a Python problem: loss/grad through NumPy
        n_samples, dim = prob.n_samples, prob.dim

        def loss(self, x):
            return prob.loss(x)

        def grad(self, x, idx):
            return prob.grad(x, idx)

    kw = dict(n_workers=3, rounds=15, lr=0.5, key=2, batch_size=10)
    same_history(pq.simulate(Wrapped(), pq.methods.EF21(Dither(levels=4)), **kw),
                 pq.simulate(prob, pq.methods.EF21(Dither(levels=4)), **kw))


def test_sweep_in_worker_processes(tmp_path):
    spec = pq.Spec(pq.ProblemSpec("logistic", "breast_cancer", l2=1e-2), pq.methods.EF21(NumpyTopK(k=3)),
                   n_workers=4, rounds=10, lr_factor=1.0, log_every=5)
    grid = {"method__compressor__k": [2, 4]}
    serial = pq.sweep(spec, grid=grid, seeds=[0, 1], progress=False)
    parallel = pq.sweep(spec, grid=grid, seeds=[0, 1], n_jobs=2, out=tmp_path / "p.parquet", progress=False)
    assert (parallel["status"] == "ok").all(), parallel["error"].tolist()
    cols = ["run_id", "round", "loss", "bits_up"]
    pd.testing.assert_frame_equal(serial[cols], parallel[cols], check_dtype=False)
    assert set(serial["method__compressor__k"]) == {2, 4}


def test_python_threads_share_a_compressor_without_deadlock_or_cross_talk():
    prob = logistic()
    method = pq.methods.DIANA(Dither(levels=4))
    kw = dict(n_workers=4, rounds=20, lr=0.3, batch_size=30)
    serial = [pq.simulate(prob, method, key=k, **kw) for k in range(4)]
    results = [None] * 4

    def run(k):
        results[k] = pq.simulate(prob, method, key=k, **kw)

    with pq.threads(2):
        ts = [threading.Thread(target=run, args=(k,)) for k in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(timeout=120)
    assert not any(t.is_alive() for t in ts)
    for a, b in zip(serial, results):
        same_history(a, b)


# ---- errors from user code ----------------------------------------------------------------


class Boom(RuntimeError):
    pass


class ExplodesAtRound(pq.Compressor):
    def __init__(self, *, round=5):
        self.round = round

    def encode(self, x, rng):
        if self._calls() >= self.round:
            raise Boom("user encode failed")
        return x.tobytes()

    def _calls(self):
        n = self.__dict__.get("_n", 0)
        self.__dict__["_n"] = n + 1
        return n // 3  # three workers: one call per worker per round

    def decode(self, data, d):
        return np.frombuffer(data, np.float32).copy()

    def properties(self, d):
        return pq.Properties(True, 0.0, 1.0)


def test_exception_in_user_code_reaches_the_caller_with_traceback_and_history():
    prob = logistic()
    with pytest.raises(Boom, match="user encode failed") as info:
        pq.simulate(prob, pq.methods.DCGD(ExplodesAtRound(round=5)), n_workers=3, rounds=20, lr=0.1)
    tb = "".join(__import__("traceback").format_tb(info.value.__traceback__))
    assert "in encode" in tb  # the user's frame is in the traceback
    hist = info.value.history
    assert hist.to_frame()["round"].tolist() == [0, 1, 2, 3, 4, 5]
    assert "history so far" in "".join(getattr(info.value, "__notes__", []))


def test_keyboard_interrupt_in_user_code_stops_cleanly():
    class Interrupts(ExplodesAtRound):
        def encode(self, x, rng):
            if self._calls() >= 3:
                raise KeyboardInterrupt
            return x.tobytes()

    with pytest.warns(RuntimeWarning, match="interrupted at round 3"):
        hist = pq.simulate(logistic(), pq.methods.EF(Interrupts()), n_workers=3, rounds=20, lr=0.1)
    assert hist.to_frame()["round"].iloc[-1] == 3


def test_native_pipelines_keep_their_python_stages_alive():
    # A native object holds its Python stages strongly: a pipeline built from temporaries, or
    # per-worker compressors made inside compressors_for, keeps working after the Python
    # objects go out of scope.
    import gc

    native = pq.chain(Largest(k=2), pq.QSGD(levels=2))._native
    gc.collect()
    assert native.compress(vec(6), pq.Key(seed=0)).d == 6

    class FreshPerWorker(pq.methods.DCGD):
        def compressors_for(self, sizes, d):
            return [NumpyTopK(k=2 + i) for i in range(len(sizes))]

    hist = pq.simulate(logistic(), FreshPerWorker(NumpyTopK(k=2)), n_workers=3, rounds=4, lr=0.1)
    assert hist.worker_bits_up[-1].tolist() == [4 * 64 * (2 + i) for i in range(3)]


def test_set_params_on_a_stage_reaches_the_pipeline_and_memory_addresses_are_refused():
    stage = Largest(k=3)
    c = pq.chain(stage, pq.Identity())
    x = vec(10)
    assert np.count_nonzero(c(x, key=0)) == 3
    stage.set_params(k=5)
    assert np.count_nonzero(c(x, key=0)) == 5 and "k=5" in c._native.name

    class Opaque:
        pass

    with pytest.raises(TypeError, match="memory address"):
        Dither(levels=Opaque())(x, key=0)
    with pytest.raises(TypeError, match="subclass pyqsgd.Compressor directly"):
        class MyQSGD(pq.QSGD):
            def encode(self, x, rng):
                return b""


def test_rng_spawn_is_key_derived():
    class Spawns(Dither):
        def encode(self, x, rng):
            child = rng.spawn(1)[0]
            return np.float32(child.random()).tobytes() + bytes(x.size)

    a = Spawns().compress(vec(4), key=pq.Key(seed=1, round=2)).to_bytes()
    b = Spawns().compress(vec(4), key=pq.Key(seed=1, round=2)).to_bytes()
    c = Spawns().compress(vec(4), key=pq.Key(seed=1, round=3)).to_bytes()
    assert a == b and a != c
    g = pq.generator_for(pq.Key(seed=1, round=2))
    assert g.spawn(1)[0].random() == pq.generator_for(pq.Key(seed=1, round=2)).spawn(1)[0].random()


def test_masked_arrays_do_not_smuggle_nan():
    class Masked(Dither):
        def decode(self, data, d):
            y = super().decode(data, d)
            y[0] = np.nan
            return np.ma.masked_invalid(y)

    with pytest.raises(ValueError, match="NaN or Inf"):
        Masked()(vec(5), key=0)
