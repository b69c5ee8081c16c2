"""Methods and aggregators written in Python: the PythonMethod hooks and Aggregator.combine.

The acceptance test: EF21 and DIANA written with PythonMethod (pyqsgd.reference.methods)
reproduce the native pq.methods.EF21 and pq.methods.DIANA histories bit for bit.
"""
import inspect
import os
import sys
import warnings

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from python_stages_lib import Dither, Median, NumpyRandK, NumpyTopK, PythonWeightedSum  # noqa: E402

import pyqsgd as pq  # noqa: E402
from pyqsgd.reference import methods as twins  # noqa: E402

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "libsvm")


def logistic(n=300, d=12, seed=0):
    A = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return pq.problems.LogisticRegression(A, np.where(A[:, 0] + 0.3 * A[:, 1] > 0, 1.0, -1.0).astype(np.float32),
                                          l2=1e-3)


def assert_identical(a, b):
    fa, fb = a.to_frame(), b.to_frame()
    for col in ("loss", "grad_norm_sq", "bits_up", "bits_down", "uploads", "skipped"):
        np.testing.assert_array_equal(fa[col].to_numpy(), fb[col].to_numpy(), err_msg=col)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.worker_bits_up, b.worker_bits_up)


SETTINGS = {
    "full": dict(n_workers=5, rounds=40, lr=0.5),
    "minibatch+participation": dict(n_workers=6, rounds=40, lr=0.3, batch_size=16, participation=0.6),
    "tau-nice+local-steps": dict(n_workers=6, rounds=25, lr=0.5, tau=3, local_steps=2, local_lr=0.2),
    "heterogeneous-batches": dict(n_workers=4, rounds=30, lr=0.2, batch_size=[8, 16, 32, 8]),
}
PAIRS = {
    "EF21-TopK": (lambda: twins.EF21(pq.TopK(k=3)), lambda: pq.methods.EF21(pq.TopK(k=3))),
    "EF21-NumpyTopK": (lambda: twins.EF21(NumpyTopK(k=4)), lambda: pq.methods.EF21(NumpyTopK(k=4))),
    "EF21-weighted": (lambda: twins.EF21(pq.TopK(k=3), aggregator=pq.WeightedMean("data"), server_momentum=0.5),
                      lambda: pq.methods.EF21(pq.TopK(k=3), aggregator=pq.WeightedMean("data"), server_momentum=0.5)),
    "DIANA-RandK": (lambda: twins.DIANA(pq.RandK(k=3)), lambda: pq.methods.DIANA(pq.RandK(k=3))),
    "DIANA-induced": (lambda: twins.DIANA(pq.induced(pq.TopK(k=2), pq.RandK(k=3))),
                      lambda: pq.methods.DIANA(pq.induced(pq.TopK(k=2), pq.RandK(k=3)))),
    "DIANA-Dither-alpha": (lambda: twins.DIANA(Dither(levels=2), alpha=0.3),
                           lambda: pq.methods.DIANA(Dither(levels=2), alpha=0.3)),
}


@pytest.mark.parametrize("setting", list(SETTINGS))
@pytest.mark.parametrize("pair", list(PAIRS))
def test_python_twins_reproduce_native_ef21_and_diana_bit_for_bit(pair, setting):
    mine, native = PAIRS[pair]
    kw = dict(SETTINGS[setting], key=7)
    parts = pq.data.partition(300, kw["n_workers"], scheme="size_skew", skew=3, key=1)
    a = pq.simulate(logistic(), mine(), partition=parts, **kw)
    b = pq.simulate(logistic(), native(), partition=parts, **kw)
    assert_identical(a, b)
    for name, arr in b.state.items():  # the same state, under the same names
        np.testing.assert_array_equal(a.state[name], arr, err_msg=name)


@pytest.mark.data
@pytest.mark.skipif(not os.path.exists(os.path.join(DATA, "a9a.t")), reason="needs ../shared/data/libsvm/a9a.t")
def test_python_twins_on_real_data():
    X, y = pq.data.load_libsvm(os.path.join(DATA, "a9a.t"))
    prob = pq.problems.LogisticRegression(X, y, l2=1e-3)
    lr = 1.0 / prob.smoothness()
    for mine, native in (PAIRS["EF21-TopK"], PAIRS["DIANA-induced"]):
        kw = dict(n_workers=20, rounds=30, lr=lr, key=3, batch_size=64)
        assert_identical(pq.simulate(prob, mine(), **kw), pq.simulate(prob, native(), **kw))


def test_the_twins_are_short():
    # The bar: each method in at most about 40 lines with the PythonMethod base.
    for cls in (twins.EF21, twins.DIANA):
        assert len(inspect.getsource(cls).splitlines()) <= 40


class Lazy(pq.methods.PythonMethod):
    """Sends only every other round (a 1-bit flag otherwise); the server reuses the last one."""

    skip_bits = 1
    history = 3

    def init_state(self, d, m, x0):
        return pq.methods.State(last=np.zeros((m, d)), seen_steps=[])

    def worker(self, i, v, state, ctx):
        assert ctx.worker == i and ctx.key == pq.Key(seed=5, round=ctx.t, worker=i) and ctx.step_sq.size <= 6
        if ctx.t % 2 == 0:
            state.last[i] = ctx.compress(v)
            assert ctx.sent and ctx.message.bits > 0

    def server(self, state, ctx):
        state.seen_steps.append(ctx.sent.tolist())
        for i in ctx.sent:
            np.testing.assert_array_equal(ctx.decoded(int(i)), state.last[i])
        return ctx.lr * (ctx.weights @ state.last)


def test_skips_flags_contexts_and_state():
    hist = pq.simulate(logistic(), Lazy(pq.TopK(k=3)), n_workers=3, rounds=6, lr=0.5, key=5)
    df = hist.to_frame()
    msg_bits = 3 * 32 + 3 * 4  # TopK(k=3) at d=12: values + 4-bit indices
    assert df["uploads"].tolist() == [0, 3, 3, 6, 6, 9, 9]
    assert df["skipped"].tolist() == [0, 0, 3, 3, 6, 6, 9]
    assert df["bits_up"].iloc[-1] == 9 * msg_bits + 9 * 1
    assert hist.state["last"].shape == (3, 12) and "seen_steps" not in hist.state


class WrongStep(pq.methods.PythonMethod):
    def worker(self, i, v, state, ctx):
        ctx.compress(v)

    def server(self, state, ctx):
        return np.zeros(ctx.d + 1)


class ReturnsMessage(WrongStep):
    def worker(self, i, v, state, ctx):
        return ctx.compress(v)


class SendsTwice(WrongStep):
    def worker(self, i, v, state, ctx):
        ctx.compress(v)
        ctx.compress(v)


class KeepsContext(WrongStep):
    kept = []

    def worker(self, i, v, state, ctx):
        KeepsContext.kept.append(ctx)

    def server(self, state, ctx):
        return KeepsContext.kept[0].compress(np.zeros(ctx.d))


@pytest.mark.parametrize("cls, exc, match", [
    (WrongStep, ValueError, r"WrongStep.server must return a step of shape \(12,\), got shape \(13,\)"),
    (ReturnsMessage, TypeError, "ReturnsMessage.worker must return None"),
    (SendsTwice, ValueError, "at most one message per round"),
    (KeepsContext, ValueError, "finished hook call"),
])
def test_hook_mistakes_get_clear_errors(cls, exc, match):
    with pytest.raises(exc, match=match):
        pq.simulate(logistic(), cls(pq.TopK(k=2)), n_workers=2, rounds=3, lr=0.1)


def test_nan_from_a_method_stops_the_run_cleanly():
    class Diverges(WrongStep):
        def worker(self, i, v, state, ctx):
            ctx.compress(v * (1e300 if ctx.t == 2 else 1.0))

        def server(self, state, ctx):
            return ctx.lr * ctx.aggregate(ctx.weights)

    with pytest.warns(RuntimeWarning, match="non-finite"):
        hist = pq.simulate(logistic(), Diverges(pq.TopK(k=2)), n_workers=2, rounds=10, lr=0.1)
    assert hist.to_frame()["round"].iloc[-1] == 2


# ---- aggregators ----------------------------------------------------------------------------


def test_python_weighted_sum_reproduces_the_native_aggregation_bit_for_bit():
    agg = PythonWeightedSum()
    kw = dict(n_workers=4, rounds=20, lr=0.4, key=2, batch_size=20, participation=0.7)
    for make in (lambda a: pq.methods.EF21(pq.TopK(k=3), aggregator=a),
                 lambda a: pq.methods.EF(pq.QSGD(levels=4), aggregator=a),
                 lambda a: twins.EF21(pq.TopK(k=3), aggregator=a)):
        assert_identical(pq.simulate(logistic(), make(agg), **kw), pq.simulate(logistic(), make(None), **kw))
    workers, bits = agg.seen  # the last round's senders and their messages were passed
    assert workers == sorted(workers) and len(bits) == len(workers) and all(b > 0 for b in bits)


def test_median_aggregator_resists_an_outlier_worker():
    class Poisoned:  # a Python problem whose last worker sends huge gradients
        n_samples, dim = 300, 12
        prob = logistic()

        def loss(self, x):
            return self.prob.loss(x)

        def grad(self, x, idx):
            g = self.prob.grad(x, idx)
            return g if idx.min() < 225 else -1e3 * g

    parts = [np.arange(75 * i, 75 * (i + 1)) for i in range(4)]
    kw = dict(n_workers=4, rounds=40, lr=0.5, partition=parts)
    robust = pq.simulate(Poisoned(), pq.methods.DCGD(pq.Identity(), aggregator=Median()), **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the mean may diverge: that is the point
        mean = pq.simulate(Poisoned(), pq.methods.DCGD(pq.Identity()), **kw)
    assert robust.loss[-1] < 0.8 * robust.loss[0]
    assert not np.isfinite(mean.loss[-1]) or mean.loss[-1] > robust.loss[0]


def test_diana_shift_stays_the_exact_mean_under_a_custom_aggregator():
    hist = pq.simulate(logistic(), pq.methods.DIANA(NumpyRandK(k=4), aggregator=Median()), n_workers=3,
                       rounds=15, lr=0.2)
    np.testing.assert_allclose(hist.state["h"], hist.state["h_workers"].mean(axis=0), rtol=1e-12, atol=1e-15)


def test_aggregators_that_cannot_apply_and_bad_outputs():
    with pytest.raises(TypeError, match="LESignSGD: aggregates in its own way"):
        pq.methods.LESignSGD(aggregator=Median())

    class Wrong(pq.Aggregator):
        def combine(self, vectors, weights):
            return vectors[:, :-1].sum(axis=0)

    with pytest.raises(ValueError, match=r"Wrong.combine must return shape \(12,\)"):
        pq.simulate(logistic(), pq.methods.DCGD(pq.TopK(k=2), aggregator=Wrong()), n_workers=2, rounds=2, lr=0.1)

    class Listy(pq.Aggregator):
        def combine(self, vectors, weights):
            return list(vectors.sum(axis=0))

    with pytest.raises(TypeError, match="Listy.combine must return a float NumPy array"):
        Listy().aggregate([[1.0, 2.0]])
    assert Median().aggregate([[1.0, 5.0], [2.0, -1.0], [10.0, 0.0]]).tolist() == [2.0, 0.0]
