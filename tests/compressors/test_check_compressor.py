"""pq.testing.check_compressor: passes every built-in, and catches what it promises to catch."""
import os
import sys

import numpy as np
import pytest
from registry import CONFIGS, IDS

import pyqsgd as pq

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from python_stages_lib import Dither, Largest, NumpyRandK, NumpyTopK  # noqa: E402


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_every_builtin_passes(cfg):
    report = pq.testing.check_compressor(cfg.make(), d=max(32, cfg.min_d), trials=1000, key=1)
    assert report.passed.all()
    checks = set(report.check)
    assert {"length and dtype", "deterministic in the key", "bits equal the encoded length"} <= checks
    # The statistical checks that apply are the ones the registry says are declared.
    assert ("unbiased" in checks) == cfg.unbiased
    assert ("omega bound" in checks) == (cfg.omega is not None)
    assert ("delta bound" in checks) == (cfg.delta is not None)
    assert ("zero in, zero out" in checks) == (cfg.omega is not None or cfg.delta is not None)


@pytest.mark.parametrize("c", [NumpyTopK(k=6), NumpyRandK(k=6), Dither(levels=3), Largest(k=6),
                               pq.chain(Largest(k=6), Dither(levels=8)), pq.induced(NumpyTopK(k=4), Dither())],
                         ids=repr)
def test_python_compressors_pass(c):
    assert pq.testing.check_compressor(c, d=40, trials=1000, key=2).passed.all()


class TooSmallOmega(NumpyRandK):
    def properties(self, d):
        return pq.Properties(unbiased=True, omega=0.5 * (d / self.k - 1), delta=None)


class BiasedClaimsUnbiased(NumpyTopK):
    def properties(self, d):
        return pq.Properties(unbiased=True, omega=d / self.k - 1, delta=None)


class ScaledClaimsUnbiased(NumpyRandK):
    """RandK scaled by 1.5 d/k: random, and 50% biased (the binomial test sees the count of
    nonzeros at p0 = k/(1.5 d) instead of k/d: z ~ 6 per coordinate at T = 1000)."""

    def decode(self, data, d):
        return (1.5 * super().decode(data, d)).astype(np.float32)


class UsesTheGlobalRNG(NumpyRandK):
    def encode(self, x, rng):
        return super().encode(x, np.random.default_rng())  # fresh OS entropy: not the key


class TooLargeDelta(NumpyTopK):
    def properties(self, d):
        return pq.Properties(unbiased=False, omega=None, delta=min(1.0, 2 * self.k / d))


class WrongBits(NumpyTopK):
    """Its decode ignores half of what encode sends: bits no longer match the payload it needs."""

    def encode(self, x, rng):
        return super().encode(x, rng) + bytes(8)

    def decode(self, data, d):
        return super().decode(data[:-8], d)


class NonzeroAtZero(Dither):
    def decode(self, data, d):
        out = super().decode(data, d)
        out[0] += np.float32(1e-3)
        return out


@pytest.mark.parametrize("c, prop, declared", [
    (TooSmallOmega(k=4), "omega bound", "declared 2"),
    (BiasedClaimsUnbiased(k=4), "unbiased", "declared 0"),
    (ScaledClaimsUnbiased(k=4), "unbiased", "p >= "),
    (UsesTheGlobalRNG(k=4), "deterministic in the key", "same bytes"),
    (TooLargeDelta(k=4), "delta bound", "declared 0.4"),
    (NonzeroAtZero(levels=4), "zero in, zero out", "declared 0"),
], ids=lambda v: v if isinstance(v, str) else type(v).__name__)
def test_catches_a_wrong_declaration(c, prop, declared):
    with pytest.raises(AssertionError, match=prop) as info:
        pq.testing.check_compressor(c, d=20, trials=1000, key=3)
    msg = str(info.value)
    assert repr(c) in msg and "measured" in msg and declared in msg


def test_a_wrong_payload_size_is_still_consistent_bits():
    # bits count what encode returned (8 per byte): extra bytes are counted, not hidden.
    report = pq.testing.check_compressor(WrongBits(k=4), d=20, trials=1000)
    row = report[report.check == "bits equal the encoded length"].iloc[0]
    assert row.measured == 8 * (8 * 4 + 8)


def test_report_vectors_and_arguments():
    vectors = {"ramp": np.linspace(-1, 1, 30), "spike": np.eye(30)[3]}
    report = pq.testing.check_compressor(pq.QSGD(levels=2), trials=1000, vectors=vectors, key=4)
    assert set(report.vector) == {"ramp", "spike", "zeros"}
    assert report.attrs["compressor"] == "QSGD(levels=2)" and report.attrs["trials"] == 1000
    assert list(report.columns) == ["check", "vector", "measured", "declared", "passed", "detail"]
    again = pq.testing.check_compressor(pq.QSGD(levels=2), trials=1000, vectors=vectors, key=4)
    assert report.equals(again)  # same key, same report
    with pytest.raises(TypeError, match="pyqsgd compressor"):
        pq.testing.check_compressor("TopK")
    with pytest.raises(ValueError, match="trials"):
        pq.testing.check_compressor(pq.QSGD(levels=2), trials=10)
    with pytest.raises(ValueError, match="alpha"):
        pq.testing.check_compressor(pq.QSGD(levels=2), alpha=0.0)
    with pytest.raises(ValueError, match="nonzero"):
        pq.testing.check_compressor(pq.QSGD(levels=2), vectors=[np.zeros(4)])


def test_worst_case_vectors_attain_the_bounds_they_name():
    v = pq.testing.worst_case_vectors(64)
    assert set(v) >= {"equal", "terngrad", "natural"} and all(a.dtype == np.float32 for a in v.values())
    x = v["terngrad"].astype(np.float64)
    exact = float((np.abs(x) * np.abs(x).max() - x**2).sum() / (x @ x))  # TernGrad's variance at x
    assert exact == pytest.approx((8 - 1) / 2, rel=1e-6)
