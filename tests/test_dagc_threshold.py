"""Threshold (hard threshold HT_tau, the DAGC-A compressor): contract, wire format, bad input."""
import math
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import pyqsgd as pq
from pyqsgd import _core
from pyqsgd.reference import reseal


def reference(x, tau):
    """NumPy twin: the kept set |x_j| >= tau, compared in double on the float32 input."""
    x = np.asarray(x, dtype=np.float32)
    keep = np.abs(x.astype(np.float64)) >= tau
    return np.where(keep, x, np.float32(0)), np.flatnonzero(keep)


def expected_bits(k, d):
    if k == 0:
        return 32
    return 32 + min(k * math.ceil(math.log2(d)) if d > 1 else 0, d) + 32 * k


def test_definition_and_bits_formula():
    rng = np.random.default_rng(0)
    for d in (1, 2, 7, 64, 65, 1000, 40000):
        x = rng.standard_normal(d).astype(np.float32)
        for tau in (0.0, 0.5, 1.0, 2.5, 10.0):
            c = pq.Threshold(tau=tau)
            msg = c.compress(x, key=0)
            y, kept = reference(x, tau)
            np.testing.assert_array_equal(c.decompress(msg), y)
            assert msg.bits == expected_bits(kept.size, d), (d, tau)


def test_bitmap_when_smaller_and_count_only_when_empty():
    x = np.ones(100, dtype=np.float32)
    assert pq.Threshold(tau=1.0).compress(x, key=0).bits == 32 + 100 + 3200  # 100 * 7 > 100: bitmap
    x[:3] = 5.0
    assert pq.Threshold(tau=2.0).compress(x, key=0).bits == 32 + 3 * 7 + 96
    assert pq.Threshold(tau=6.0).compress(x, key=0).bits == 32


def test_zero_vector_and_ties_at_tau():
    assert pq.Threshold(tau=0.1)(np.zeros(5), key=0).tolist() == [0.0] * 5
    # tau = 0 keeps everything, zeros included (|0| >= 0)
    assert pq.Threshold(tau=0.0).compress(np.zeros(5), key=0).bits == 32 + 5 + 5 * 32
    x = np.array([0.25, -0.25, 0.2499], dtype=np.float32)
    assert pq.Threshold(tau=0.25)(x, key=0).tolist() == [0.25, -0.25, 0.0]


def test_properties_and_error_bound():
    c = pq.Threshold(tau=0.3)
    p = c.properties(10)
    assert p.unbiased is False and p.omega is None and p.delta is None
    rng = np.random.default_rng(1)
    for _ in range(20):
        x = rng.standard_normal(50).astype(np.float32) * 0.3
        err = float(np.sum((c(x, key=0).astype(np.float64) - x) ** 2))
        assert err <= c.error_bound(50)


def test_repr_pickle_params():
    c = pq.Threshold(tau=0.125)
    assert repr(c) == "Threshold(tau=0.125)"
    assert eval(repr(c), {"Threshold": pq.Threshold}) == c
    c2 = pickle.loads(pickle.dumps(c))
    x = np.linspace(-1, 1, 33)
    assert c2.compress(x, key=0).to_bytes() == c.compress(x, key=0).to_bytes()
    assert c.get_params() == {"tau": 0.125}
    assert c.set_params(tau=0.5).tau == 0.5 and c._native.tau == 0.5
    assert c._native.name == "Threshold(tau=0.5)"


def test_wire_round_trip_and_determinism_across_threads():
    x = np.random.default_rng(2).standard_normal(100_000).astype(np.float32)
    c = pq.Threshold(tau=1.5)
    with pq.threads(1):
        m1 = c.compress(x, key=7)
    with pq.threads(2):
        m2 = c.compress(x, key=7)
    assert m1.to_bytes() == m2.to_bytes()
    back = pq.Message.from_bytes(m1.to_bytes())
    np.testing.assert_array_equal(c.decompress(back), reference(x, 1.5)[0])


def test_chain_quantizes_kept_values():
    x = np.random.default_rng(3).standard_normal(500).astype(np.float32)
    kept = reference(x, 1.0)[1]
    ch = pq.chain(pq.Threshold(tau=1.0), pq.QSGD(levels=4))
    msg = ch.compress(x, key=0)
    y = ch.decompress(msg)
    assert set(np.flatnonzero(y)) <= set(kept)
    assert msg.bits == 32 + min(kept.size * 9, 500) + 32 + kept.size * (1 + 3)
    assert repr(ch) == "chain(Threshold(tau=1.0), QSGD(levels=4))"
    # nothing kept: only the count goes on the wire, and it decodes to zeros
    empty = ch.compress(np.full(10, 0.5), key=0)
    assert empty.bits == 32 and ch.decompress(empty).tolist() == [0.0] * 10
    p = ch.properties(100)
    assert p.unbiased is False and p.delta is None


def test_bad_parameters_and_input():
    for tau in (-0.1, math.inf, math.nan):
        with pytest.raises(ValueError, match="tau"):
            pq.Threshold(tau=tau)
    for tau in ("1", None, True):
        with pytest.raises(TypeError, match="tau"):
            pq.Threshold(tau=tau)
    with pytest.raises(TypeError):
        pq.Threshold(0.1)  # keyword-only
    with pytest.raises(ValueError, match="tau"):
        _core.Threshold(tau=-1.0)
    c = pq.Threshold(tau=0.1)
    with pytest.raises(ValueError, match="NaN"):
        c.compress(np.array([1.0, np.nan]), key=0)
    with pytest.raises(ValueError, match="1-D"):
        c.compress(np.ones((2, 2)), key=0)
    with pytest.raises(ValueError, match="non-empty"):
        c.compress(np.array([]), key=0)
    with pytest.raises(ValueError):
        c.decompress(pq.TopK(k=1).compress(np.ones(3), key=0))


def _corrupt(msg, section, word, value):
    """Rewrites one payload word of a message's to_bytes() image."""
    buf = bytearray(msg.to_bytes())
    n_sections = msg_sections(msg)
    header = 4 + 1 + 2 + 4 + 8 + 20 + 4 + 8 * n_sections
    offsets = np.cumsum([0] + [(b + 63) // 64 for b in section_bits(msg)])
    pos = header + 8 * (offsets[section] + word)
    buf[pos:pos + 8] = int(value).to_bytes(8, "little")
    return reseal(bytes(buf))  # a forgery with a valid checksum: the decoder itself must catch it


def msg_sections(msg):
    return len(section_bits(msg))


def section_bits(msg):
    buf = msg.to_bytes()
    n = int.from_bytes(buf[39:43], "little")
    return [int.from_bytes(buf[43 + 8 * i:51 + 8 * i], "little") for i in range(n)]


def test_decoder_rejects_malformed_messages():
    c = pq.Threshold(tau=1.0)
    x = np.array([3.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 5.0] * 4, dtype=np.float32)  # d = 32, k = 12
    msg = c.compress(x, key=0)
    assert section_bits(msg) == [32, 12 * 5 if 12 * 5 < 32 else 32, 12 * 32]
    with pytest.raises(ValueError, match="malformed|bits"):  # count larger than d
        c.decompress(pq.Message.from_bytes(_corrupt(msg, 0, 0, 33)))
    with pytest.raises(ValueError, match="malformed|bits|entries"):  # count disagrees with the rest
        c.decompress(pq.Message.from_bytes(_corrupt(msg, 0, 0, 11)))
    # index list (not bitmap): d = 1000, 3 kept -> 3 * 10 bits
    y = np.zeros(1000, dtype=np.float32)
    y[[5, 50, 500]] = 2.0
    m2 = c.compress(y, key=0)
    assert section_bits(m2) == [32, 30, 96]
    with pytest.raises(ValueError, match="increasing|range"):
        c.decompress(pq.Message.from_bytes(_corrupt(m2, 1, 0, 5 | (5 << 10) | (9 << 20))))
    with pytest.raises(ValueError, match="increasing|range"):
        c.decompress(pq.Message.from_bytes(_corrupt(m2, 1, 0, 5 | (50 << 10) | (1010 << 20))))


@settings(max_examples=60, deadline=None)
@given(x=hnp.arrays(np.float32, st.integers(1, 300),
                    elements=st.floats(-1e6, 1e6, width=32, allow_nan=False, allow_infinity=False)),
       tau=st.floats(0.0, 1e3, allow_nan=False))
def test_keeps_exactly_the_large_entries(x, tau):
    c = pq.Threshold(tau=tau)
    msg = c.compress(x, key=0)
    y, kept = reference(x, tau)
    out = c.decompress(pq.Message.from_bytes(msg.to_bytes()))
    np.testing.assert_array_equal(out, y)
    assert msg.bits == expected_bits(kept.size, x.size)


@settings(max_examples=60, deadline=None)
@given(data=st.binary(min_size=0, max_size=200))
def test_decoding_random_bytes_never_crashes(data):
    c = pq.Threshold(tau=1.0)
    base = c.compress(np.array([2.0, 0.0, 3.0, 0.0], dtype=np.float32), key=0).to_bytes()
    buf = reseal(base[:43] + data + bytes(4))  # valid checksum: the structure checks must hold
    try:
        c.decompress(pq.Message.from_bytes(buf))
    except ValueError:
        pass
