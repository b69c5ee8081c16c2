"""Partitions: disjoint, covering, pure functions of the key; skew knobs do what they say."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pyqsgd as pq
from pyqsgd.data import label_skew, partition

SETTINGS = settings(max_examples=60, deadline=None)


def _assert_valid(parts, n, m):
    assert isinstance(parts, list) and len(parts) == m
    for p in parts:
        assert p.dtype == np.int64 and p.ndim == 1
        assert np.all(np.diff(p) > 0)  # sorted, no repeats
    np.testing.assert_array_equal(np.sort(np.concatenate(parts)), np.arange(n))


def _labels(n_classes=10, per_class=200, key=0):
    return np.random.default_rng(key).permutation(np.repeat(np.arange(n_classes), per_class))


@st.composite
def _problem(draw):
    n = draw(st.integers(1, 300))
    m = draw(st.integers(1, n))
    n_classes = draw(st.integers(1, 6))
    labels = np.array(draw(st.lists(st.integers(0, n_classes - 1), min_size=n, max_size=n)))
    return n, m, labels, draw(st.integers(0, 2**32))


@SETTINGS
@given(_problem(), st.sampled_from(["iid", "dirichlet", "size_skew", "size_skew+alpha"]),
       st.floats(0.01, 100.0), st.floats(1.0, 50.0))
def test_disjoint_covering_deterministic(problem, scheme, alpha, skew):
    n, m, labels, key = problem
    kwargs = {"iid": {}, "dirichlet": {"alpha": alpha}, "size_skew": {"skew": skew},
              "size_skew+alpha": {"skew": skew, "alpha": alpha}}[scheme]
    parts = partition(labels, m, scheme=scheme.split("+")[0], key=key, **kwargs)
    _assert_valid(parts, n, m)
    assert min(len(p) for p in parts) >= 1  # min_size=1 default
    again = partition(labels, m, scheme=scheme.split("+")[0], key=key, **kwargs)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))


@SETTINGS
@given(st.integers(1, 500), st.data())
def test_iid_near_equal_shards(n, data):
    m = data.draw(st.integers(1, n))
    parts = partition(n, m, key=data.draw(st.integers(0, 1000)))
    _assert_valid(parts, n, m)
    sizes = [len(p) for p in parts]
    assert sizes == [n // m + (i < n % m) for i in range(m)]


def test_different_keys_differ_and_key_objects():
    a, b = partition(100, 4, key=0), partition(100, 4, key=1)
    assert not all(np.array_equal(x, y) for x, y in zip(a, b))
    same = partition(100, 4, key=pq.Key(seed=0))
    assert all(np.array_equal(x, y) for x, y in zip(a, same))
    other = partition(100, 4, key=pq.Key(seed=0, worker=1))
    assert not all(np.array_equal(x, y) for x, y in zip(a, other))


def test_iid_ignores_labels():
    labels = _labels(3, 30)
    a, b = partition(labels, 4, key=5), partition(labels.size, 4, key=5)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_dirichlet_skew_grows_as_alpha_shrinks():
    labels = _labels()
    skews = [np.mean([label_skew(partition(labels, 10, "dirichlet", alpha=a, key=k), labels) for k in range(4)])
             for a in (100.0, 1.0, 0.1)]
    assert skews[0] < 0.1 and skews[2] > 0.5
    assert skews[0] < skews[1] < skews[2]


def test_dirichlet_accepts_any_label_type():
    labels = np.array(["cat", "dog", "cat", "emu"] * 25)
    parts = partition(labels, 3, "dirichlet", alpha=0.5, key=2)
    _assert_valid(parts, 100, 3)
    pm1 = np.where(np.arange(100) % 3 == 0, 1.0, -1.0).astype(np.float32)
    _assert_valid(partition(pm1, 7, "dirichlet", alpha=0.1, key=0), 100, 7)


def test_min_size_repair_and_zero():
    labels = _labels(10, 30)
    parts = partition(labels, 50, "dirichlet", alpha=0.01, min_size=4, key=3)
    _assert_valid(parts, labels.size, 50)
    assert min(len(p) for p in parts) >= 4
    unrepaired = partition(labels, 50, "dirichlet", alpha=0.01, min_size=0, key=3)
    _assert_valid(unrepaired, labels.size, 50)
    assert min(len(p) for p in unrepaired) == 0  # tiny alpha leaves shards empty without repair
    full = partition(10, 5, min_size=2)
    assert [len(p) for p in full] == [2] * 5


@pytest.mark.parametrize("n, m, skew", [(1000, 10, 10.0), (997, 7, 3.5), (100_000, 3, 100.0), (64, 8, 1.0),
                                        (12, 4, 2.0)])
def test_size_skew_volumes(n, m, skew):
    parts = partition(n, m, "size_skew", skew=skew, key=0)
    _assert_valid(parts, n, m)
    sizes = np.array([len(p) for p in parts])
    assert np.all(np.diff(sizes) <= 0)  # worker 0 largest
    v = skew ** (np.arange(m - 1, -1, -1) / (m - 1))
    target = n * v / v.sum()
    assert np.all(np.abs(sizes - target) < 1)
    assert (target[0] - 1) / (target[-1] + 1) <= sizes[0] / sizes[-1] <= (target[0] + 1) / (target[-1] - 1)


def test_size_skew_ratio_close_to_skew():
    sizes = [len(p) for p in partition(100_000, 20, "size_skew", skew=10.0)]
    assert sizes[0] / sizes[-1] == pytest.approx(10.0, rel=1e-3)


def test_size_skew_with_dirichlet_labels():
    labels = _labels()
    plain = [len(p) for p in partition(labels, 10, "size_skew", skew=8.0, key=1)]
    skews = []
    for a in (100.0, 1.0, 0.1):
        runs = [partition(labels, 10, "size_skew", skew=8.0, alpha=a, key=k) for k in range(4)]
        for parts in runs:
            _assert_valid(parts, labels.size, 10)
            assert [len(p) for p in parts] == plain  # volumes are exact whatever alpha
        skews.append(np.mean([label_skew(parts, labels) for parts in runs]))
    assert skews[0] < skews[1] < skews[2]


def test_size_skew_min_size_keeps_order():
    sizes = [len(p) for p in partition(40, 10, "size_skew", skew=1000.0, min_size=2)]
    assert sum(sizes) == 40 and min(sizes) >= 2 and sizes == sorted(sizes, reverse=True)


@pytest.mark.parametrize("args, kwargs, exc, match", [
    ((10, 0), {}, ValueError, "n_workers must be >= 1"),
    ((10, 11), {}, ValueError, "n_workers must be <= the number of samples"),
    ((10, 2.0), {}, TypeError, "n_workers"),
    ((0, 1), {}, ValueError, "n_or_labels"),
    ((5.0, 1), {}, TypeError, "n_or_labels"),
    ((None, 1), {}, TypeError, "n_or_labels"),
    (([], 1), {}, ValueError, "non-empty"),
    ((np.zeros((4, 2)), 2), {}, ValueError, "1-D"),
    (([0.0, np.nan, 1.0], 2), {}, ValueError, "NaN"),
    ((10, 2), {"scheme": "zipf"}, ValueError, "unknown scheme 'zipf'"),
    ((10, 2), {"scheme": 1}, TypeError, "scheme"),
    (([0, 1] * 5, 2), {"scheme": "dirichlet"}, ValueError, "needs alpha"),
    (([0, 1] * 5, 2), {"scheme": "dirichlet", "alpha": 0.0}, ValueError, "alpha must be > 0"),
    (([0, 1] * 5, 2), {"scheme": "dirichlet", "alpha": -1.0}, ValueError, "alpha"),
    (([0, 1] * 5, 2), {"scheme": "dirichlet", "alpha": "big"}, TypeError, "alpha"),
    (([0, 1] * 5, 2), {"scheme": "dirichlet", "alpha": 1.0, "skew": 2.0}, ValueError, "skew is not used"),
    ((10, 2), {"scheme": "dirichlet", "alpha": 1.0}, ValueError, "needs labels"),
    ((10, 2), {"scheme": "size_skew"}, ValueError, "needs skew"),
    ((10, 2), {"scheme": "size_skew", "skew": 0.5}, ValueError, "skew must be >= 1"),
    ((10, 2), {"scheme": "size_skew", "skew": 2.0, "alpha": 1.0}, ValueError, "needs labels"),
    ((10, 2), {"alpha": 1.0}, ValueError, "alpha is not used by scheme='iid'"),
    ((10, 2), {"skew": 2.0}, ValueError, "skew is not used by scheme='iid'"),
    ((10, 3), {"min_size": 4}, ValueError, "min_size=4 is impossible"),
    ((10, 3), {"min_size": -1}, ValueError, "min_size"),
    ((10, 3), {"key": -1}, ValueError, "key"),
    ((10, 3), {"key": "seed"}, TypeError, "key"),
])
def test_bad_inputs(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        partition(*args, **kwargs)


def test_reachable_from_top_level_package():
    assert pq.data.partition is partition
    assert set(pq.data.__all__) >= {"load_libsvm", "find_libsvm", "load_bundled", "synthetic_logistic",
                                    "synthetic_least_squares", "partition", "summarize_partition", "label_skew"}
