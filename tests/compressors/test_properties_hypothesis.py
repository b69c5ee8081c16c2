"""Hypothesis properties: Top-K selection rule and quantizer codebooks."""
import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import pyqsgd as pq
import pyqsgd.reference  # noqa: F401 - pq.reference.sections_of

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])

finite = st.floats(-1e6, 1e6, allow_nan=False, width=32)
vectors = st.integers(1, 300).flatmap(lambda d: arrays(np.float32, d, elements=finite))
# Few distinct magnitudes: many exact ties, the case the index rule is for.
tied = st.integers(1, 200).flatmap(lambda d: arrays(np.float32, d, elements=st.sampled_from(
    [-3.0, -2.0, -1.0, 1.0, 2.0, 3.0])))


@SETTINGS
@given(x=st.one_of(vectors, tied), data=st.data())
def test_topk_keeps_the_k_largest_ties_to_smaller_index(x, data):
    k = data.draw(st.integers(1, x.size))
    msg = pq.TopK(k=k).compress(x, key=0)
    from pyqsgd.reference import sections_of
    from pyqsgd.reference._wire import bit_width
    bits, words = sections_of(msg)[0]
    # Decode the index section independently: list of ceil(log2 d)-bit indices, or bitmap.
    flat = np.unpackbits(words.view(np.uint8), bitorder="little")[:bits]
    if bits == x.size and k * bit_width(x.size) > x.size:
        kept = np.flatnonzero(flat)
    else:
        w = bit_width(x.size)
        kept = (flat.reshape(k, w) * (1 << np.arange(w))).sum(axis=1) if w else np.zeros(k, int)
    assert len(kept) == k and np.all(np.diff(kept) > 0)
    y = pq.TopK(k=k).decompress(msg)
    mask = np.zeros(x.size, bool)
    mask[kept] = True
    np.testing.assert_array_equal(y[mask], x[mask])
    assert not np.any(y[~mask])
    a = np.abs(x)
    if (~mask).any():
        worst_kept = a[mask].min()
        best_dropped = a[~mask].max()
        assert worst_kept >= best_dropped
        # ties: every dropped coordinate equal to the smallest kept magnitude comes after all
        # kept coordinates of that magnitude
        tie_kept = np.flatnonzero(mask & (a == worst_kept))
        tie_dropped = np.flatnonzero(~mask & (a == worst_kept))
        if tie_dropped.size:
            assert tie_kept.max() < tie_dropped.min()


nonzero_vectors = vectors.filter(lambda v: np.any(v != 0))


@SETTINGS
@given(x=nonzero_vectors, s=st.integers(1, 64), key=st.integers(0, 2**64 - 1))
# Subnormal inputs: ||x|| is subnormal too, and so is every level ||x|| l / s.
@example(x=np.array([2.885075e-39] * 2, np.float32), s=7, key=0)
@example(x=np.array([1e-45, -3e-45, 7e-40], np.float32), s=3, key=5)
@example(x=np.array([1.1754942e-38, -1e-39, 0.0], np.float32), s=64, key=9)
def test_qsgd_outputs_lie_on_the_codebook(x, s, key):
    msg = pq.QSGD(levels=s).compress(x, key=key)
    y = pq.QSGD(levels=s).decompress(msg).astype(np.float64)
    # The codebook is built on the transmitted float32 norm (section 0); it is ||x|| rounded.
    norm = float(pq.reference.sections_of(msg)[0][1].astype(np.uint32).view(np.float32)[0])
    assert norm == float(np.float32(np.linalg.norm(x.astype(np.float64))))
    level = np.round(np.abs(y) * s / norm)
    # Each output is the level l ||x|| / s rounded to float32: within one float32 spacing of it.
    # The spacing is absolute (2^-149) for subnormal outputs, so a relative tolerance would be
    # impossible there (||x|| = 4e-39 leaves about 21 significant bits).
    exact = level * norm / s
    ulp = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    assert np.all(np.abs(np.abs(y) - exact) <= ulp), (y, exact)
    # And exactly the float32 nearest to it (after the one rounding of l ||x|| / s in double):
    # the decoder is correctly rounded, subnormal outputs included.
    np.testing.assert_array_equal(np.abs(y), exact.astype(np.float32).astype(np.float64))
    assert level.max() <= s
    r = s * np.abs(x.astype(np.float64)) / norm
    assert np.all((level >= np.floor(r) - 1e-3) & (level <= np.ceil(r) + 1e-3))  # neighbours of r
    assert np.all((y == 0) | (np.sign(y) == np.sign(x)))


@SETTINGS
@given(x=nonzero_vectors, key=st.integers(0, 2**64 - 1))
def test_terngrad_outputs_are_ternary(x, key):
    y = pq.TernGrad()(x, key=key)
    s = np.abs(x).max()
    assert set(np.unique(np.abs(y))) <= {np.float32(0), s}
    assert np.all((y == 0) | (np.sign(y) == np.sign(x)))
    assert np.all(y[np.abs(x) == s] == x[np.abs(x) == s])  # probability 1 at the max


@SETTINGS
@given(x=vectors, key=st.integers(0, 2**64 - 1))
def test_natural_outputs_are_neighbouring_powers_of_two(x, key):
    y = pq.Natural()(x, key=key)
    nz = y != 0
    m, _ = np.frexp(np.abs(y[nz]))
    assert np.all(m == 0.5)  # exact powers of two
    assert np.all(np.sign(y[nz]) == np.sign(x[nz]))
    normal = (np.abs(x) >= np.finfo(np.float32).tiny)
    lo = np.exp2(np.floor(np.log2(np.abs(x[normal].astype(np.float64)))))
    assert np.all((np.abs(y[normal]) == lo) | (np.abs(y[normal]) == 2 * lo))
    assert np.all(y[x == 0] == 0)


@SETTINGS
@given(x=nonzero_vectors, key=st.integers(0, 2**64 - 1))
@example(x=np.array([1.1754944e-38] + [0.0] * 50, np.float32), key=0)  # subnormal scale ||x||_1/d
def test_sign_family(x, key):
    neg = x < 0
    np.testing.assert_array_equal(pq.Sign()(x, key=key), np.where(neg, -1.0, 1.0).astype(np.float32))
    y = pq.ScaledSign()(x, key=key)
    scale = np.abs(x.astype(np.float64)).sum() / x.size
    # The float32 scale: within 1e-6 relative, or one float32 spacing where it is subnormal
    # (there the spacing 2^-149 is absolute, and a relative bound cannot hold).
    ulp = float(np.spacing(np.float32(scale)))
    np.testing.assert_allclose(np.abs(y), scale, rtol=1e-6, atol=ulp)
