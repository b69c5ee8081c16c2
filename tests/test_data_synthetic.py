"""Synthetic generators: shapes, determinism, and the heterogeneity knob."""
import numpy as np
import pytest

from pyqsgd.data import label_skew, synthetic_least_squares, synthetic_logistic


@pytest.mark.parametrize("gen", [synthetic_logistic, synthetic_least_squares])
def test_shapes_dtypes_partition(gen):
    X, y, parts = gen(1000, 12, n_workers=7, heterogeneity=0.5, key=1)
    assert X.shape == (1000, 12) and X.dtype == np.float32 and X.flags.c_contiguous
    assert y.shape == (1000,) and y.dtype == np.float32
    assert len(parts) == 7 and all(p.dtype == np.int64 for p in parts)
    np.testing.assert_array_equal(np.concatenate(parts), np.arange(1000))  # consecutive, worker 0 first
    assert [len(p) for p in parts] == [143] * 6 + [142]
    assert len(gen(50, 3, key=0)) == 2  # no n_workers: no partition


def test_logistic_labels_pm1_and_balanced_when_iid():
    X, y, parts = synthetic_logistic(4000, 10, n_workers=8, key=0)
    assert set(np.unique(y).tolist()) == {-1.0, 1.0}
    assert abs(y.mean()) < 0.1
    assert label_skew(parts, y) < 0.05


@pytest.mark.parametrize("gen", [synthetic_logistic, synthetic_least_squares])
def test_deterministic_in_key(gen):
    a = gen(300, 5, n_workers=3, heterogeneity=1.0, key=7)
    b = gen(300, 5, n_workers=3, heterogeneity=1.0, key=7)
    c = gen(300, 5, n_workers=3, heterogeneity=1.0, key=8)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_worker_data_depends_only_on_key_worker_and_size():
    X2, y2, _ = synthetic_logistic(200, 4, n_workers=2, heterogeneity=0.7, key=3)
    X3, y3, _ = synthetic_logistic(300, 4, n_workers=3, heterogeneity=0.7, key=3)
    np.testing.assert_array_equal(X2, X3[:200])
    np.testing.assert_array_equal(y2, y3[:200])
    Xn, _ = synthetic_logistic(100, 4, heterogeneity=0.7, key=3)
    X1, _, _ = synthetic_logistic(100, 4, n_workers=1, heterogeneity=0.7, key=3)
    np.testing.assert_array_equal(Xn, X1)


def test_both_generators_share_the_design():
    Xa, _ = synthetic_logistic(100, 6, heterogeneity=0.3, key=2)
    Xb, _ = synthetic_least_squares(100, 6, heterogeneity=0.3, key=2)
    np.testing.assert_array_equal(Xa, Xb)


def test_heterogeneity_increases_label_skew_and_feature_shift():
    skews, spreads = [], []
    for h in (0.0, 0.5, 2.0):
        X, y, parts = synthetic_logistic(6000, 10, n_workers=10, heterogeneity=h, key=0)
        skews.append(label_skew(parts, y))
        means = np.stack([X[p].mean(axis=0) for p in parts])
        spreads.append(float(means.std(axis=0).mean()))
    assert skews[0] < skews[1] < skews[2]
    assert spreads[0] < 0.1 < spreads[1] < spreads[2]  # per-worker feature means move apart


def _worker_fit(X, y, parts):
    return [np.linalg.lstsq(X[p].astype(np.float64), y[p].astype(np.float64), rcond=None)[0] for p in parts]


def test_least_squares_models_shift_with_heterogeneity():
    X, y, parts = synthetic_least_squares(600, 5, n_workers=3, noise=0.0, key=4)
    w = _worker_fit(X, y, parts)
    for p, wi in zip(parts, w):  # noise=0: each shard is fit exactly by one model
        np.testing.assert_allclose(X[p] @ wi, y[p], atol=1e-4)
    assert max(np.abs(wi - w[0]).max() for wi in w) < 1e-4  # h=0: the same model everywhere
    X, y, parts = synthetic_least_squares(600, 5, n_workers=3, noise=0.0, model_shift=1.0, key=4)
    w = _worker_fit(X, y, parts)
    assert max(np.abs(wi - w[0]).max() for wi in w) > 0.1
    X, y = synthetic_least_squares(20000, 3, noise=0.5, key=1, signal=0.0)
    assert y.std() == pytest.approx(0.5, rel=0.05)


def test_skew_and_spectrum_options():
    X, _, parts = synthetic_logistic(1100, 30, n_workers=3, skew=10.0, spectrum_decay=1.2, key=0)
    assert [len(p) for p in parts] == [777, 245, 78]
    var = X.var(axis=0)
    assert var[0] == pytest.approx(1.0, rel=0.15) and var[-1] == pytest.approx(30 ** -1.2, rel=0.15)


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"n": 0}, ValueError, "n must be >= 1"),
    ({"d": 0}, ValueError, "d must be >= 1"),
    ({"n_workers": 0}, ValueError, "n_workers"),
    ({"n_workers": 101}, ValueError, "n_workers must be <= 100"),
    ({"heterogeneity": -0.1}, ValueError, "heterogeneity"),
    ({"model_shift": -1.0}, ValueError, "model_shift"),
    ({"feature_shift": "x"}, TypeError, "feature_shift"),
    ({"skew": 0.9}, ValueError, "skew"),
    ({"signal": -1.0}, ValueError, "signal"),
    ({"spectrum_decay": -1.0}, ValueError, "spectrum_decay"),
    ({"key": -3}, ValueError, "key"),
    ({"n": 10.0}, TypeError, "n must be an int"),
])
def test_bad_inputs(kwargs, exc, match):
    args = {"n": 100, "d": 3, **kwargs}
    with pytest.raises(exc, match=match):
        synthetic_logistic(**args)
    with pytest.raises(exc, match=match):
        synthetic_least_squares(**args)
    with pytest.raises(ValueError, match="noise"):
        synthetic_least_squares(10, 2, noise=-1.0)
