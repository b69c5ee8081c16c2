"""Bad parameters, bad inputs and foreign messages raise ValueError / TypeError naming the
culprit; nothing crashes."""
import numpy as np
import pytest
from registry import CONFIGS, IDS

import pyqsgd as pq


@pytest.mark.parametrize("make, exc, name", [
    (lambda: pq.TopK(k=0), ValueError, "k"),
    (lambda: pq.TopK(k=-3), ValueError, "k"),
    (lambda: pq.TopK(k=2.0), TypeError, "k"),
    (lambda: pq.TopK(k=True), TypeError, "k"),
    (lambda: pq.TopK(), ValueError, "k and ratio"),
    (lambda: pq.TopK(k=3, ratio=0.5), ValueError, "k and ratio"),
    (lambda: pq.TopK(ratio=0.0), ValueError, "ratio"),
    (lambda: pq.TopK(ratio=1.5), ValueError, "ratio"),
    (lambda: pq.TopK(ratio=float("nan")), ValueError, "ratio"),
    (lambda: pq.TopK(ratio="0.1"), TypeError, "ratio"),
    (lambda: pq.RandK(k=0), ValueError, "k"),
    (lambda: pq.RandK(ratio=-0.1), ValueError, "ratio"),
    (lambda: pq.RandK(k=3, shared_seed="yes"), TypeError, "shared_seed"),
    (lambda: pq.QSGD(levels=0), ValueError, "levels"),
    (lambda: pq.QSGD(levels=2.5), TypeError, "levels"),
    (lambda: pq.QSGD(levels=2**40), ValueError, "levels"),
    (lambda: pq.QSGD(), TypeError, "levels"),
    (lambda: pq.TopK(3), TypeError, "positional"),  # keyword-only
    (lambda: pq.chain(pq.TopK(k=3), "QSGD"), TypeError, "b"),
    (lambda: pq.chain(pq.QSGD(levels=2), pq.TopK(k=3)), ValueError, "first stage"),
    (lambda: pq.induced(pq.TopK(k=3), pq.TopK(k=3)), ValueError, "unbiased"),
    (lambda: pq.induced(None, pq.RandK(k=3)), TypeError, "c1"),
])
def test_bad_parameters(make, exc, name):
    with pytest.raises(exc, match=name):
        make()


@pytest.mark.parametrize("make", [lambda: pq.TopK(k=11), lambda: pq.RandK(k=11),
                                  lambda: pq.chain(pq.TopK(k=11), pq.QSGD(levels=2)),
                                  lambda: pq.induced(pq.TopK(k=3), pq.RandK(k=11))])
def test_k_larger_than_d_names_k(make):
    with pytest.raises(ValueError, match=r"k must be in \[1, d\], got k=11 for d=10"):
        make().compress(np.ones(10), key=0)


@pytest.fixture(params=CONFIGS, ids=IDS)
def comp(request):
    return request.param.make()


@pytest.mark.parametrize("x, exc, what", [
    (np.ones((4, 5)), ValueError, "1-D"),
    (np.ones(0), ValueError, "non-empty"),
    (np.array([1.0, np.nan] * 10), ValueError, "NaN or Inf"),
    (np.array([1.0, -np.inf] * 10), ValueError, "NaN or Inf"),
    (np.array([True, False] * 10), TypeError, "dtype bool"),
    (np.ones(20, complex), TypeError, "complex"),
    (np.array([object()] * 20), TypeError, "dtype object"),
    (["a"] * 20, TypeError, "dtype"),
    (3.0, ValueError, "1-D"),
])
def test_bad_x(comp, x, exc, what):
    with pytest.raises(exc, match=what):
        comp.compress(x, key=0)


@pytest.mark.parametrize("key, exc", [(-1, ValueError), (2**64, ValueError), (1.5, TypeError), ("0", TypeError),
                                      (True, TypeError)])
def test_bad_key(key, exc):
    with pytest.raises(exc, match="key"):
        pq.QSGD(levels=2).compress(np.ones(8), key=key)


def test_large_finite_input_is_rejected_not_overflowed():
    big = np.full(8, 3e38, np.float32)
    with pytest.raises(ValueError, match="rescale x"):
        pq.RandK(k=1).compress(big, key=0)  # (d/k) x_j overflows float32
    with pytest.raises(ValueError, match="rescale x"):
        pq.QSGD(levels=2).compress(big, key=0)  # ||x|| overflows float32
    with pytest.raises(ValueError, match="rescale x"):
        pq.Natural().compress(big, key=0)  # rounding up to 2^128 overflows


def test_integer_and_float64_input_are_converted_once():
    c = pq.TopK(k=2)
    np.testing.assert_array_equal(c([3, -5, 1, 4], key=0), np.array([0, -5, 0, 4], np.float32))
    np.testing.assert_array_equal(c(np.array([3.0, -5.0, 1.0, 4.0]), key=0), c([3, -5, 1, 4], key=0))


def test_decompress_rejects_non_messages(comp):
    with pytest.raises(TypeError, match="Message"):
        comp.decompress(b"PQSG")


def test_decompress_rejects_foreign_messages():
    x = np.random.default_rng(0).standard_normal(30)
    for a, b in [(pq.TopK(k=3), pq.TopK(k=4)), (pq.QSGD(levels=2), pq.QSGD(levels=3)), (pq.Sign(), pq.ScaledSign()),
                 (pq.RandK(k=3), pq.RandK(k=3, shared_seed=False)),
                 (pq.chain(pq.TopK(k=3), pq.QSGD(levels=2)), pq.induced(pq.TopK(k=3), pq.QSGD(levels=2)))]:
        with pytest.raises(ValueError, match="not produced by this compressor"):
            b.decompress(a.compress(x, key=0))


def test_decompress_out_validation():
    c = pq.Sign()
    msg = c.compress(np.ones(10), key=0)
    with pytest.raises(ValueError, match="length 9"):
        c.decompress(msg, out=np.empty(9, np.float32))
    with pytest.raises(TypeError, match="float32"):
        c.decompress(msg, out=np.empty(10, np.float64))
    with pytest.raises(TypeError, match="float32"):
        c.decompress(msg, out=np.empty(20, np.float32)[::2])
    with pytest.raises(TypeError, match="out"):
        c.decompress(msg, out=[0.0] * 10)


def test_properties_bad_d():
    with pytest.raises(ValueError, match="d must be >= 1"):
        pq.QSGD(levels=2).properties(0)
    with pytest.raises(ValueError, match="k must be in"):
        pq.TopK(k=5).properties(4)
