"""Mistakes in user-written compressors get a TypeError/ValueError naming the class, the method
and the fix, never a crash, a hang or a wrong answer; malformed wire bytes raise."""
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from python_stages_lib import Dither, Largest  # noqa: E402

import pyqsgd as pq  # noqa: E402
from pyqsgd.reference import reseal  # noqa: E402


class Base(pq.Compressor):
    def encode(self, x, rng):
        return x.tobytes()

    def decode(self, data, d):
        return np.frombuffer(data, np.float32).copy()

    def properties(self, d):
        return pq.Properties(unbiased=True, omega=0.0, delta=1.0)


class ReturnsStr(Base):
    def encode(self, x, rng):
        return "not bytes"


class ReturnsArray(Base):
    def encode(self, x, rng):
        return x


class ReturnsBytearray(Base):
    def encode(self, x, rng):
        return bytearray(x.tobytes())


class ShortDecode(Base):
    def decode(self, data, d):
        return np.zeros(d - 1, np.float32)


class Float64Decode(Base):
    def decode(self, data, d):
        return np.frombuffer(data, np.float32).astype(np.float64)


class IntDecode(Base):
    def decode(self, data, d):
        return np.zeros(d, np.int32)


class ListDecode(Base):
    def decode(self, data, d):
        return [0.0] * d


class NanDecode(Base):
    def decode(self, data, d):
        out = np.zeros(d, np.float32)
        out[1] = np.nan
        return out


class StridedDecode(Base):
    def decode(self, data, d):  # a valid vector, just not contiguous: accepted (copied)
        return np.repeat(np.frombuffer(data, np.float32), 2)[::2]


def props(**kw):
    class Declares(Base):
        def properties(self, d):
            return pq.Properties(**kw)

    return Declares()


X = np.array([1.0, -2.0, 3.0], np.float32)


@pytest.mark.parametrize("c, exc, match", [
    (ReturnsStr(), TypeError, r"ReturnsStr.encode must return bytes .* got str; return e.g. array.tobytes\(\)"),
    (ReturnsArray(), TypeError, "ReturnsArray.encode must return bytes"),
    (ShortDecode(), ValueError, r"ShortDecode.decode must return shape \(3,\) for d=3, got shape \(2,\)"),
    (Float64Decode(), TypeError, r"Float64Decode.decode must return float32 .* got dtype float64; "
                                 r"return y.astype\(np.float32\)"),
    (IntDecode(), TypeError, "IntDecode.decode must return float32"),
    (ListDecode(), TypeError, "ListDecode.decode must return a float32 NumPy array of length d=3, got list"),
    (NanDecode(), ValueError, "NanDecode.decode returned NaN or Inf for d=3"),
])
def test_bad_encode_decode_outputs(c, exc, match):
    with pytest.raises(exc, match=match):
        c(X, key=0)
    # The same error from inside a simulation, not a crash.
    A = np.random.default_rng(0).standard_normal((40, 3)).astype(np.float32)
    prob = pq.problems.LeastSquares(A, A[:, 0])
    with pytest.raises(exc, match=match.split(" ")[0]):
        pq.simulate(prob, pq.methods.EF21(c), n_workers=2, rounds=2, lr=0.1)


def test_accepted_variants():
    np.testing.assert_array_equal(ReturnsBytearray()(X, key=0), X)
    np.testing.assert_array_equal(StridedDecode()(X, key=0), X)


@pytest.mark.parametrize("kw, match", [
    (dict(unbiased=True, omega=-0.5, delta=None), r"omega must be >= 0 .* got omega=-0.5"),
    (dict(unbiased=False, omega=None, delta=1.5), r"delta must be in \(0, 1\] .* got delta=1.5"),
    (dict(unbiased=False, omega=None, delta=0.0), r"delta must be in \(0, 1\]"),
    (dict(unbiased=True, omega=float("nan"), delta=None), "omega must be a finite number"),
    (dict(unbiased=False, omega=2.0, delta=None), "omega is the variance constant of an unbiased compressor"),
    (dict(unbiased="yes", omega=None, delta=None), "unbiased must be a bool"),
])
def test_impossible_constants(kw, match):
    c = props(**kw)
    with pytest.raises((ValueError, TypeError), match=r"Declares.properties\(64\)"):
        c._native  # built when first used: the declared constants are checked then
    with pytest.raises((ValueError, TypeError), match=match):
        pq.testing.check_compressor(c, d=8, trials=1000)


def test_properties_must_return_properties():
    class Tuple(Base):
        def properties(self, d):
            return (True, 0.0, None)

    with pytest.raises(TypeError, match=r"Tuple.properties\(64\) must return pyqsgd.Properties"):
        Tuple()(X, key=0)


def test_missing_methods():
    class Nothing(pq.Compressor):
        pass

    with pytest.raises(TypeError, match="Nothing has no native kernel: a Python compressor implements encode"):
        Nothing()(X, key=0)

    class NoDecode(pq.Compressor):
        def encode(self, x, rng):
            return b""

        def properties(self, d):
            return pq.Properties(True, 0.0, None)

    with pytest.raises(TypeError, match="NoDecode implements no decode"):
        NoDecode()(X, key=0)


def test_bad_select_outputs():
    class Unsorted(Largest):
        def select(self, x, rng):
            return b"", np.array([2, 0])

    class Bytes(Largest):
        def select(self, x, rng):
            return b""

    with pytest.raises(ValueError, match="Unsorted.select: kept coordinates must be strictly increasing"):
        pq.chain(Unsorted(k=2), pq.QSGD(levels=2))(X, key=0)
    with pytest.raises(TypeError, match=r"Bytes.select must return \(bytes, indices\)"):
        pq.chain(Bytes(k=2), pq.QSGD(levels=2))(X, key=0)


def test_malformed_wire_bytes_raise():
    c = Dither(levels=3)
    raw = c.compress(np.linspace(-1, 1, 16), key=1).to_bytes()
    for cut in (1, 8, len(raw) // 2, len(raw) - 1):
        with pytest.raises(ValueError):
            c.decompress(pq.Message.from_bytes(raw[:cut]))
    # A payload whose section is not whole bytes (a forged length): rejected before decode.
    b = bytearray(raw)
    hdr = 4 + 1 + 2 + 4 + 8 + 8 + 4 + 4 + 4 + 4  # magic .. n_sections (see message.hpp)
    b[hdr:hdr + 8] = (8 * (4 + 16) - 3).to_bytes(8, "little")
    with pytest.raises(ValueError, match="checksum"):
        c.decompress(pq.Message.from_bytes(bytes(b)))
    with pytest.raises(ValueError, match="whole bytes"):
        c.decompress(pq.Message.from_bytes(reseal(bytes(b))))
    # Forged payloads (valid checksum): the user's decode raises or returns finite floats.
    rng = np.random.default_rng(0)
    for _ in range(200):
        b = bytearray(raw)
        b[hdr + 8 + rng.integers(0, 20)] ^= 1 << int(rng.integers(0, 8))
        with pytest.raises(ValueError, match="checksum"):
            pq.Message.from_bytes(bytes(b))
        try:
            y = c.decompress(pq.Message.from_bytes(reseal(bytes(b))))
        except ValueError:
            continue
        assert y.shape == (16,) and np.isfinite(y).all()
