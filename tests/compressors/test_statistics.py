"""Statistical suite: unbiasedness, variance constants omega, contraction delta, worst cases.

Fixed seeds; tolerances come from the derivations in stats.py and the comments below.
"""
import math

import numpy as np
import pytest
from registry import BY_ID, UNBIASED
from pyqsgd.testing._stats import ALPHA, mean_ci, relative_errors, samples, unbiasedness_pvalue

import pyqsgd as pq

D = 16
T = 4000


def generic_x(d=D, seed=0):
    # Signs mixed, magnitudes within a factor 3: no coordinate is negligible in the norm.
    rng = np.random.default_rng(seed)
    return (rng.choice([-1.0, 1.0], d) * rng.uniform(0.3, 1.0, d)).astype(np.float32)


@pytest.mark.parametrize("cfg", UNBIASED, ids=[c.id for c in UNBIASED])
def test_unbiased(cfg):
    x = generic_x()
    y = samples(cfg.make(), x, T, seed=1)
    assert unbiasedness_pvalue(y, x, cfg.omega(D)) > ALPHA


def test_topk_fails_the_test_that_induced_topk_randk_passes():
    # Same x, same trials, same variance budget omega: TopK drops coordinates deterministically
    # (bias), the induced compressor repairs it with RandK on the residual.
    x = generic_x(seed=3)
    induced = pq.induced(pq.TopK(k=5), pq.RandK(k=5))
    omega = BY_ID["induced-TopK-RandK"].omega(D)
    assert unbiasedness_pvalue(samples(pq.TopK(k=5), x, T, seed=2), x, omega) < 1e-12
    assert unbiasedness_pvalue(samples(induced, x, T, seed=2), x, omega) > ALPHA


def test_unbiasedness_test_detects_a_small_bias():
    # Power check: QSGD scaled by 1.05 (a 5% bias) must be rejected with the same T.
    x = generic_x(seed=4)
    y = 1.05 * samples(pq.QSGD(levels=4), x, T, seed=5)
    assert unbiasedness_pvalue(y, x, BY_ID["QSGD-4"].omega(D)) < 1e-6


@pytest.mark.parametrize("cfg", UNBIASED, ids=[c.id for c in UNBIASED])
def test_empirical_omega_within_declared(cfg):
    # One-sided: the lower confidence bound of E||C(x)-x||^2/||x||^2 must not exceed omega.
    x = generic_x(seed=6)
    m, h = mean_ci(relative_errors(samples(cfg.make(), x, 2000, seed=7), x), sided=1)
    assert m - h <= cfg.omega(D) + 1e-9


def omega_equal(c, x, expected, trials=3000, seed=8):
    m, h = mean_ci(relative_errors(samples(c, x, trials, seed), x))
    assert abs(m - expected) <= h + 1e-9 * expected, (m, h, expected)
    return m, h


def test_randk_omega_is_attained_for_every_x():
    # ||C(x) - x||^2 = (d/k - 1)^2 sum_S x_j^2 + sum_{not S} x_j^2 has mean (d/k - 1)||x||^2.
    for seed in (9, 10):
        x = np.random.default_rng(seed).standard_normal(24).astype(np.float32)
        omega_equal(pq.RandK(k=6), x, 24 / 6 - 1)
        omega_equal(pq.RandK(k=6, shared_seed=False), x, 3.0)


def test_terngrad_worst_case_attains_omega():
    d = 64
    t = 1 / (math.sqrt(d) + 1)
    x = np.full(d, t, np.float32)
    x[0] = 1.0
    # Exact variance: sum_j (s|x_j| - x_j^2) with s = 1, relative to ||x||^2.
    xd = x.astype(np.float64)
    exact = float((np.abs(xd) - xd**2).sum() / (xd @ xd))
    assert exact == pytest.approx((math.sqrt(d) - 1) / 2, rel=1e-6)
    omega_equal(pq.TernGrad(), x, exact)


def test_natural_worst_case_attains_one_eighth():
    # |x_j| = (4/3) 2^a: rounds up w.p. 1/3, variance (2/9) 4^a = (1/8) x_j^2 per coordinate.
    a = np.arange(-6, 10)
    x = ((4 / 3) * 2.0**a * np.where(a % 2, -1, 1)).astype(np.float32)
    m, _ = omega_equal(pq.Natural(), x, 1 / 8)
    assert pq.Natural().properties(x.size).omega == 1 / 8


def test_induced_topk_randk_omega_equality_when_all_magnitudes_equal():
    # ||x - TopK(x)||^2 = (1 - k1/d)||x||^2 exactly, and RandK attains its omega on the residual.
    d, k1, k2 = 20, 4, 5
    x = np.random.default_rng(11).choice([-1.0, 1.0], d).astype(np.float32)
    omega_equal(pq.induced(pq.TopK(k=k1), pq.RandK(k=k2)), x, (d / k2 - 1) * (1 - k1 / d))


def test_topk_contraction():
    rng = np.random.default_rng(12)
    for d, k in [(10, 1), (50, 7), (1000, 100)]:
        c = pq.TopK(k=k)
        for _ in range(20):
            x = (rng.standard_normal(d) * rng.exponential(size=d)).astype(np.float64)
            err = float(((c(x, key=0) - x.astype(np.float32)) ** 2).sum())
            assert err <= (1 - k / d) * float(x @ x) * (1 + 1e-6)
        ones = rng.choice([-1.0, 1.0], d)  # all |x_j| equal: the bound is attained
        err = float(((c(ones, key=0) - ones) ** 2).sum())
        assert err == pytest.approx((1 - k / d) * d, rel=1e-12)


def test_scaled_sign_exact_error():
    rng = np.random.default_rng(13)
    for d in (1, 17, 1000, 40_000):
        x = (rng.standard_normal(d) * rng.exponential(size=d)).astype(np.float32)
        xd = x.astype(np.float64)
        err = float(((pq.ScaledSign()(x, key=0) - xd) ** 2).sum())
        exact = float(xd @ xd - np.abs(xd).sum() ** 2 / d)
        # float32 scale: |scale - ||x||_1/d| <= 2^-24 scale, so the error moves by at most
        # 2 * 2^-24 ||x||_1^2/d + (2^-24)^2 ...: 1e-6 ||x||^2 covers it.
        assert abs(err - exact) <= 1e-6 * float(xd @ xd)
        assert 0 <= exact <= (1 - 1 / d) * float(xd @ xd) * (1 + 1e-9)  # delta >= 1/d


@pytest.mark.parametrize("cid", ["chain-TopK-QSGD", "chain-TopKratio-Natural"])
def test_chain_contraction_within_declared(cid):
    cfg = BY_ID[cid]
    x = generic_x(seed=14)
    m, h = mean_ci(relative_errors(samples(cfg.make(), x, 2000, seed=15), x), sided=1)
    assert m - h <= 1 - cfg.delta(D)


def test_measure_reports_omega_and_bias():
    x = generic_x(d=20, seed=16)
    m = pq.measure(pq.RandK(k=5), x, trials=2000, key=3, confidence=0.999)
    assert m.omega_ci[0] <= 3.0 <= m.omega_ci[1]  # d/k - 1, attained exactly
    assert m.bias_p > ALPHA and m.trials == 2000 and m.bits_mean == 32 * 5
    top = pq.measure(pq.TopK(k=5), x, trials=50, key=3)
    xd = x.astype(np.float64)
    dropped = np.sort(xd**2)[:15].sum() / (xd @ xd)
    assert top.bias_p < 1e-12  # deterministic drop: zero spread, nonzero bias
    assert top.omega == pytest.approx(dropped, rel=1e-6) and top.delta == pytest.approx(1 - dropped, rel=1e-6)
    assert top.omega_ci[1] - top.omega_ci[0] == 0.0


def test_measure_validates():
    with pytest.raises(ValueError, match="nonzero"):
        pq.measure(pq.RandK(k=1), np.zeros(4), trials=10)
    with pytest.raises(ValueError, match="trials"):
        pq.measure(pq.RandK(k=1), np.ones(4), trials=1)
    with pytest.raises(ValueError, match="confidence"):
        pq.measure(pq.RandK(k=1), np.ones(4), trials=10, confidence=1.5)
