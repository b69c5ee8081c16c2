"""simulate() surface: History, to_frame, progress, method state, and bad input."""
import numpy as np
import pytest

import pyqsgd as pq

N, D = 60, 5


@pytest.fixture(scope="module")
def prob():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((N, D)).astype(np.float32)
    return pq.problems.LogisticRegression(A, np.where(A[:, 0] > 0, 1.0, -1.0).astype(np.float32))


def test_history_frame_and_meta(prob):
    method = pq.methods.EF21(pq.TopK(k=2))
    with pq.threads(1):
        hist = pq.simulate(prob, method, n_workers=3, rounds=12, lr=0.5, key=42, log_every=5)
    df = hist.to_frame()
    for c in ("round", "loss", "grad_norm_sq", "bits_up", "bits_down", "uploads", "skipped", "bits"):
        assert c in df.columns
    assert list(df["round"]) == [0, 5, 10, 12] and len(hist) == 4
    assert df.attrs["method"] == repr(method) == "EF21(TopK(k=2))"
    assert df.attrs["key"] == 42 and df.attrs["threads"] == 1
    assert df.attrs["version"] == pq.__version__
    assert "stopped" not in df.attrs and df.attrs["status"] == hist.status == "ok"
    assert df.attrs["dataset"] is None and df.attrs["dataset_hash"] == prob.data_hash
    assert (df.attrs["dataset_n"], df.attrs["dataset_d"]) == prob.shape
    r = repr(hist)
    assert "EF21(TopK(k=2))" in r and "4 rows" in r and "round 12" in r
    assert hist.x.dtype == np.float64 and hist.x.shape == (D,)
    assert pq.simulate(prob, method, n_workers=3, rounds=2, dtype="float32").x.dtype == np.float32


def test_method_state_attribute(prob):
    method = pq.methods.DIANA(pq.RandK(k=2))
    hist = pq.simulate(prob, method, n_workers=3, rounds=5, lr=0.1)
    assert set(method.state_) == {"h_workers", "h"} == set(hist.state)
    assert method.state_["h_workers"].shape == (3, D)
    np.testing.assert_array_equal(method.state_["h"], hist.state["h"])
    # A second run starts from zeroed state (the method object is a parameter record).
    again = pq.simulate(prob, method, n_workers=3, rounds=5, lr=0.1)
    np.testing.assert_array_equal(again.x, hist.x)


def test_progress_bar(prob, capsys):
    pytest.importorskip("tqdm")
    a = pq.simulate(prob, pq.methods.DCGD(pq.Identity()), n_workers=2, rounds=30, lr=0.3, progress=True)
    b = pq.simulate(prob, pq.methods.DCGD(pq.Identity()), n_workers=2, rounds=30, lr=0.3)
    np.testing.assert_array_equal(a.loss, b.loss)
    assert "DCGD" in capsys.readouterr().err


M2 = pq.methods.DCGD(pq.Identity())


@pytest.mark.parametrize("kwargs, exc, words", [
    (dict(lr=0.0), ValueError, "lr"),
    (dict(lr=-1.0), ValueError, "lr"),
    (dict(lr=float("nan")), ValueError, "lr"),
    (dict(n_workers=0), ValueError, "n_workers"),
    (dict(n_workers=N + 1), ValueError, "n_workers"),
    (dict(n_workers=2.5), TypeError, "n_workers"),
    (dict(rounds=-1), ValueError, "rounds"),
    (dict(log_every=0), ValueError, "log_every"),
    (dict(participation=0.0), ValueError, "participation"),
    (dict(participation=1.5), ValueError, "participation"),
    (dict(participation=[0.5, 0.5]), ValueError, "participation"),
    (dict(participation=0.5, tau=2), ValueError, "tau"),
    (dict(tau=5), ValueError, "tau"),
    (dict(tau=0), ValueError, "tau"),
    (dict(batch_size=N), ValueError, "batch_size"),
    (dict(batch_size=0), ValueError, "batch_size"),
    (dict(batch_size=[2, 2]), ValueError, "batch_size"),
    (dict(local_steps=2), ValueError, "local_lr"),
    (dict(local_lr=0.1), ValueError, "local_steps"),
    (dict(local_steps=2, local_lr=0.0), ValueError, "local_lr"),
    (dict(x0=np.zeros(D + 1)), ValueError, "x0"),
    (dict(x0=np.full(D, np.nan)), ValueError, "x0"),
    (dict(partition=[np.arange(10), np.arange(10, 20)]), ValueError, "partition"),
    (dict(partition=[np.arange(10), np.arange(10, 20), np.array([], np.int64), np.arange(20, 60)]), ValueError,
     "empty shard"),
    (dict(partition=[np.arange(10), np.arange(10, 20), np.arange(20, 30), np.arange(30, N + 1)]), ValueError,
     "outside"),
    (dict(key=-1), ValueError, "key"),
    (dict(key=1.5), TypeError, "key"),
    (dict(dtype="int8"), ValueError, "dtype"),
])
def test_bad_simulate_arguments(prob, kwargs, exc, words):
    args = dict(n_workers=4, rounds=3, lr=0.1)
    args.update(kwargs)
    with pytest.raises(exc) as info:
        pq.simulate(prob, M2, **args)
    assert words in str(info.value)


def test_partition_by_scheme_name(prob):
    """A scheme name is pyqsgd.data.partition with that scheme's defaults; a misspelt one, or one
    that needs a parameter a name cannot carry, says what to do instead."""
    args = dict(n_workers=4, rounds=5, lr=0.5, key=3)
    named = pq.simulate(prob, M2, partition="iid", **args)
    default = pq.simulate(prob, M2, **args)
    explicit = pq.simulate(prob, M2, partition=pq.data.partition(N, 4, scheme="iid", key=3), **args)
    np.testing.assert_array_equal(named.loss, default.loss)
    np.testing.assert_array_equal(named.x, explicit.x)
    with pytest.raises(ValueError) as info:
        pq.simulate(prob, M2, partition="dirichlett", **args)
    assert "unknown partition scheme 'dirichlett'; choose iid, dirichlet, size_skew" in str(info.value)
    with pytest.raises(ValueError, match=r"partition='dirichlet' needs a parameter .*alpha.*"
                                         r"pq\.data\.partition\(y, n_workers, scheme='dirichlet', alpha="):
        pq.simulate(prob, M2, partition="dirichlet", **args)
    with pytest.raises(ValueError, match=r"partition='size_skew' needs a parameter .*skew.*"
                                         r"pq\.data\.partition\(n_samples, n_workers, scheme='size_skew', skew="):
        pq.simulate(prob, M2, partition="size_skew", **args)
    # What the message suggests works.
    labels = np.where(np.arange(N) % 3 == 0, 1.0, -1.0)
    parts = pq.data.partition(labels, 4, scheme="dirichlet", alpha=0.5, key=0)
    assert len(pq.simulate(prob, M2, partition=parts, **args)) == 6


def test_bad_method_and_problem(prob):
    with pytest.raises(TypeError, match="method"):
        pq.simulate(prob, pq.TopK(k=2), n_workers=2, rounds=2)
    with pytest.raises(TypeError, match="method"):
        pq.simulate(prob, "EF21", n_workers=2, rounds=2)
    with pytest.raises(TypeError, match="problem"):
        pq.simulate(np.zeros(3), M2, n_workers=2, rounds=2)
    with pytest.raises(ValueError, match="compressors for 3 workers"):
        pq.simulate(prob, pq.methods.EF21([pq.TopK(k=1), pq.TopK(k=2)]), n_workers=3, rounds=2)
    with pytest.raises(ValueError, match="unbiased"):
        pq.methods.DIANA(pq.TopK(k=2))
    with pytest.raises(ValueError, match="unbiased"):
        pq.methods.DIANA([pq.RandK(k=2), pq.ScaledSign()])
    with pytest.raises(ValueError, match="alpha"):
        pq.methods.DIANA(pq.RandK(k=2), alpha=1.5)
    with pytest.raises(TypeError, match="compressor"):
        pq.methods.EF("topk")
    with pytest.raises(TypeError, match="aggregator"):
        pq.methods.EF(pq.TopK(k=1), aggregator="mean")
    with pytest.raises(ValueError, match="server_momentum"):
        pq.methods.EF(pq.TopK(k=1), server_momentum=1.0)
    with pytest.raises(ValueError, match="k must be"):
        pq.simulate(prob, pq.methods.EF21(pq.TopK(k=D + 1)), n_workers=2, rounds=2)
    with pytest.raises(ValueError, match="WeightedMean"):
        pq.simulate(prob, pq.methods.EF21(pq.TopK(k=1), aggregator=pq.WeightedMean([1.0, 2.0])), n_workers=3,
                    rounds=2)


def test_python_problem_bad_n_samples():
    class P:
        n_samples = 0
        dim = 3

        def loss(self, x):
            return 0.0

        def grad(self, x, idx):
            return np.zeros(3)

    with pytest.raises(TypeError, match="n_samples"):
        pq.simulate(P(), M2, n_workers=1, rounds=1)
