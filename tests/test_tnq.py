"""TNQSGD compressors (ALGORITHMS.md §4.4): closed forms, wire format, contract, bad input.

Statistical checks (unbiasedness, MSE against theory and baselines, threshold optimality) are in
test_tnq_stats.py.
"""
import math
import pickle
import struct

import numpy as np
import pytest
from scipy import integrate, optimize, special

import pyqsgd as pq
from pyqsgd import _core, tnq
from pyqsgd.reference import reseal

F32_EPS = 2.0**-24  # float32 rounding of a double: relative error <= 2^-24


def laplace(d, seed=0, scale=1.0):
    return np.random.default_rng(seed).laplace(scale=scale, size=d).astype(np.float32)


# Every TNQ-family configuration the contract tests run over.
CONFIGS = [
    pq.TruncatedQuantizer(bits=1),
    pq.TruncatedQuantizer(bits=3),
    pq.TruncatedQuantizer(bits=8, gamma="median"),
    pq.TruncatedUniformQuantizer(bits=3),
    pq.NonUniformQuantizer(bits=3),
    pq.NonUniformQuantizer(bits=2, density="uniform"),
    pq.NonUniformQuantizer(bits=2, levels=[-1.0, 0.0, 1.0]),
    pq.NonUniformQuantizer(bits=3, gamma="median"),
    pq.Truncate(threshold=1.0),
    pq.Truncate(threshold="laplace", bits=3),
    pq.chain(pq.Truncate(threshold=1.0), pq.NonUniformQuantizer(bits=3)),
    pq.chain(pq.Truncate(threshold="laplace_uniform", bits=2, gamma="median"),
             pq.NonUniformQuantizer(bits=2, density="uniform")),
]
IDS = [repr(c) for c in CONFIGS]


def expected_bits(c, d):
    if isinstance(c, (pq.TruncatedQuantizer, pq.TruncatedUniformQuantizer)):
        return 32 + d * c.bits
    if isinstance(c, pq.NonUniformQuantizer):
        return (64 if c.levels is None and c.density in (None, "laplace") else 32) + d * c.bits
    if isinstance(c, pq.Truncate):
        return 32 * d
    return expected_bits(c.b, d)  # chain(Truncate, q): Truncate adds nothing


# ---- closed forms ---------------------------------------------------------------------------

def test_k_star():
    assert tnq.K_STAR == pytest.approx(3.674234614174767, rel=1e-15)
    assert _core.TNQ_K_STAR == pytest.approx(tnq.K_STAR, rel=1e-15)


@pytest.mark.parametrize("bits, expected", [(2, [0.487, 1.791]), (3, [0.295, 0.990, 1.896, 3.199])])
def test_levels_quoted_in_algorithms_md(bits, expected):
    lv = tnq.laplace_levels(bits, 1.0)
    half = np.array(expected)
    # The spec quotes three decimals: |error| <= 5e-4 plus float noise.
    np.testing.assert_allclose(lv, np.concatenate([-half[::-1], half]), atol=5e-4 + 1e-12, rtol=0)
    np.testing.assert_array_equal(lv, -lv[::-1])


def _quantile_levels_by_integration(s, gamma, alpha):
    """Independent reference: solve F(l) = j/s for the CDF of exp(-|g|/(3 gamma)) on [-alpha, alpha]
    by numerical integration and root finding (no closed form used)."""
    dens = lambda g: math.exp(-abs(g) / (3.0 * gamma))  # noqa: E731
    total = integrate.quad(dens, -alpha, alpha, points=[0.0], epsabs=0, epsrel=1e-13)[0]

    def cdf(t):
        return integrate.quad(dens, -alpha, t, points=[0.0] if t > 0 else None, epsabs=0, epsrel=1e-13)[0] / total

    out = [-alpha]
    for j in range(1, s):
        out.append(optimize.brentq(lambda t: cdf(t) - j / s, -alpha, alpha, xtol=1e-14, rtol=1e-14))
    return np.array(out + [alpha])


@pytest.mark.parametrize("bits", [2, 3, 4])
@pytest.mark.parametrize("gamma", [1.0, 0.37])
def test_level_tables_against_independent_quantiles(bits, gamma):
    s = 2**bits - 1
    alpha = tnq.optimal_threshold(bits, gamma)
    ref = _quantile_levels_by_integration(s, gamma, alpha)
    np.testing.assert_allclose(tnq.laplace_levels(bits, gamma), ref, rtol=1e-9, atol=1e-12)
    # Native table (what both ends use): the float32 rounding of the same numbers.
    native = pq.TruncatedQuantizer(bits=bits).levels_for_gamma(gamma)
    g32 = float(np.float32(gamma))
    ref32 = _quantile_levels_by_integration(s, g32, tnq.optimal_threshold(bits, g32))
    assert native.dtype == np.float32 and native.shape == (s + 1,)
    np.testing.assert_allclose(native, ref32, rtol=2 * F32_EPS, atol=0)
    # Uniform-truncation table.
    lu = pq.TruncatedUniformQuantizer(bits=bits).levels_for_gamma(gamma)
    np.testing.assert_allclose(lu, tnq.uniform_levels(bits, tnq.uniform_threshold(bits, g32)), rtol=2 * F32_EPS)


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 6, 10, 16])
def test_thresholds_minimise_the_bounds(bits):
    s = 2**bits - 1

    def f_nonuniform(a):  # 27 A^3/s^2 + 2 e^-a, gamma = 1
        return 27.0 * (-math.expm1(-a / 3.0)) ** 3 / s**2 + 2.0 * math.exp(-a)

    def f_uniform(a):
        return a * a / s**2 + 2.0 * math.exp(-a)

    for f, got in [(f_nonuniform, tnq.optimal_threshold(bits)), (f_uniform, tnq.uniform_threshold(bits))]:
        res = optimize.minimize_scalar(f, bounds=(1e-3, 60.0), method="bounded", options={"xatol": 1e-10})
        # A flat minimum: compare the objective, then the location to the optimiser's resolution.
        assert f(got) <= res.fun * (1 + 1e-12)
        assert got == pytest.approx(res.x, rel=1e-5)
    assert tnq.optimal_threshold(bits, 2.5) == pytest.approx(7.5 * math.log1p(s / tnq.K_STAR), rel=1e-15)
    assert tnq.uniform_threshold(bits, 2.5) == pytest.approx(2.5 * special.lambertw(s * s).real, rel=1e-14)
    assert _core.tnq_threshold(bits, 2.5, False) == pytest.approx(tnq.optimal_threshold(bits, 2.5), rel=1e-15)
    assert _core.tnq_threshold(bits, 2.5, True) == pytest.approx(tnq.uniform_threshold(bits, 2.5), rel=1e-14)


def test_alpha_star_values():
    # alpha* = 3 ln(1 + s/k*) for gamma = 1, from ALGORITHMS.md's quoted outer levels.
    assert tnq.optimal_threshold(2) == pytest.approx(1.791, abs=5e-4)
    assert tnq.optimal_threshold(3) == pytest.approx(3.199, abs=5e-4)
    assert tnq.optimal_threshold(4) == pytest.approx(3 * math.log(1 + 15 / (3 * math.sqrt(6) / 2)), rel=1e-15)


@pytest.mark.parametrize("gamma", [0.3, 1.0, 2.5])
def test_error_bound_identity(gamma):
    """27 gamma^2/(s + k*)^2 = variance bound 27 gamma^2 A^3/s^2 + truncation MSE 2 gamma^2 e^(-alpha*/gamma):
    exact, because A = s/(s + k*) and 2 k*^3 = 27 k* at alpha*."""
    for bits in range(1, 17):
        s = 2**bits - 1
        t = tnq.theory(bits, gamma)
        assert t.alpha == pytest.approx(tnq.optimal_threshold(bits, gamma), rel=1e-15)
        assert t.bias_sq == pytest.approx(2 * gamma**2 * (tnq.K_STAR / (s + tnq.K_STAR)) ** 3, rel=1e-12)
        assert t.variance == pytest.approx(27 * gamma**2 * s / (s + tnq.K_STAR) ** 3, rel=1e-12)
        assert t.total == pytest.approx(27 * gamma**2 / (s + tnq.K_STAR) ** 2, rel=1e-13)
        assert t.bound == t.total or t.bound == pytest.approx(t.total, rel=1e-13)
        # Any other alpha gives a larger bound.
        for a in (0.9 * t.alpha, 1.1 * t.alpha):
            assert tnq.theory(bits, gamma, alpha=a).total > t.total
    assert 2 * tnq.K_STAR**3 == pytest.approx(27 * tnq.K_STAR, rel=1e-14)


def test_lambert_w():
    xs = np.concatenate([[0.0, 1e-300, 1e-8, 0.5, 1.0, math.e, 3.0], 4.0 ** np.arange(1, 17) ** 1.0, [1e300]])
    ref = special.lambertw(xs).real
    np.testing.assert_allclose(tnq.lambert_w(xs), ref, rtol=1e-14, atol=1e-300)
    for x, r in zip(xs, ref):
        assert _core.lambert_w0(float(x)) == pytest.approx(r, rel=1e-14, abs=1e-300)
    with pytest.raises(ValueError):
        tnq.lambert_w(-1.0)
    with pytest.raises(ValueError):
        _core.lambert_w0(float("nan"))


def test_expected_mse_helper():
    e = tnq.expected_mse([0.5, 3.0, -2.0], [-1.0, 0.0, 1.0])
    assert e.bias_sq == pytest.approx((0 + 4 + 1) / 3)
    assert e.variance == pytest.approx(0.25 / 3)  # only 0.5 is rounded: 0.5 * 0.5
    assert e.total == pytest.approx(e.bias_sq + e.variance)


# ---- contract: bits, wire, codebook, repr/pickle, threads -------------------------------------

@pytest.mark.parametrize("d", [1, 63, 64, 65, 1000])
@pytest.mark.parametrize("c", CONFIGS, ids=IDS)
def test_bits_formula_and_shape(c, d):
    x = laplace(d, seed=d)
    m = c.compress(x, key=3)
    assert m.bits == expected_bits(c, d)
    y = c.decompress(m)
    assert y.dtype == np.float32 and y.shape == (d,) and np.all(np.isfinite(y))


@pytest.mark.parametrize("bits", range(1, 17))
def test_bits_exactly_32_plus_db(bits):
    d = 1001
    x = laplace(d, seed=bits)
    for c in (pq.TruncatedQuantizer(bits=bits), pq.TruncatedUniformQuantizer(bits=bits)):
        m = c.compress(x, key=0)
        assert m.bits == 32 + d * bits
        assert m.section_bits == [32, d * bits]
        y = c.decompress(m)
        assert np.isin(y, c.codebook(m)).all()
    # The matched QSGD baseline: s = 2**(b-1) - 1 gives 1 + ceil(log2(s + 1)) = b bits per coordinate.
    if bits >= 2:
        assert pq.QSGD(levels=2 ** (bits - 1) - 1).compress(x, key=0).bits == 32 + d * bits


@pytest.mark.parametrize("c", CONFIGS, ids=IDS)
def test_wire_roundtrip_and_pickle(c):
    x = laplace(777, seed=1)
    m = c.compress(x, key=pq.Key(seed=5, round=2, worker=1))
    y = c.decompress(m)
    m2 = pq.Message.from_bytes(m.to_bytes())
    assert m2 == m and m2.bits == m.bits
    np.testing.assert_array_equal(c.decompress(m2), y)
    np.testing.assert_array_equal(c.decompress(pickle.loads(pickle.dumps(m))), y)
    # Same key -> same message; another key -> (almost surely) another message for random ones.
    assert c.compress(x, key=pq.Key(seed=5, round=2, worker=1)) == m


@pytest.mark.parametrize("c", CONFIGS, ids=IDS)
def test_repr_pickle_params(c):
    r = repr(c)
    c2 = eval(r, vars(pq))  # noqa: S307
    assert repr(c2) == r and c2 == c
    c3 = pickle.loads(pickle.dumps(c))
    assert c3 == c and repr(c3) == r
    x = laplace(300, seed=2)
    assert c3.compress(x, key=1) == c.compress(x, key=1)


def test_get_set_params():
    c = pq.TruncatedQuantizer(bits=3)
    assert c.get_params() == {"bits": 3, "gamma": "mean"}
    c.set_params(bits=5, gamma="median")
    assert repr(c) == "TruncatedQuantizer(bits=5, gamma='median')"
    assert c.compress(np.ones(10), key=0).bits == 32 + 50
    ch = pq.chain(pq.Truncate(threshold=2.0), pq.NonUniformQuantizer(bits=2))
    ch.set_params(b__bits=4, a__threshold=0.5)
    assert repr(ch) == "chain(Truncate(threshold=0.5), NonUniformQuantizer(bits=4))"
    assert np.abs(ch(laplace(100), key=0)).max() <= 0.5
    with pytest.raises(ValueError, match="bits"):
        c.set_params(bits=17)
    q = pq.NonUniformQuantizer(bits=2, levels=np.array([-1.0, -0.5, 0.5, 1.0]))
    assert repr(q) == "NonUniformQuantizer(bits=2, levels=(-1.0, -0.5, 0.5, 1.0))"


@pytest.mark.parametrize("c", CONFIGS, ids=IDS)
def test_deterministic_across_thread_counts(c):
    x = laplace(100_003, seed=7)
    with pq.threads(1):
        m1 = c.compress(x, key=11)
        y1 = c.decompress(m1)
    with pq.threads(2):
        m2 = c.compress(x, key=11)
        y2 = c.decompress(m2)
    assert m1.to_bytes() == m2.to_bytes()
    np.testing.assert_array_equal(y1, y2)


@pytest.mark.parametrize("bits", [1, 2, 3, 5, 16])
@pytest.mark.parametrize("gamma", ["mean", "median"])
def test_gamma_hat_and_codebook(bits, gamma):
    x = laplace(10_001, seed=bits, scale=0.01)
    xd = np.abs(x.astype(np.float64))
    g = np.mean(xd) if gamma == "mean" else np.median(xd) / math.log(2)
    c = pq.TruncatedQuantizer(bits=bits, gamma=gamma)
    m = c.compress(x, key=0)
    cb = c.codebook(m)
    np.testing.assert_array_equal(cb, c.levels_for_gamma(np.float32(g)))
    np.testing.assert_allclose(cb, tnq.laplace_levels(bits, float(np.float32(g))), rtol=3 * F32_EPS, atol=0)
    y = c.decompress(m)
    assert np.isin(y, cb).all()
    # Neighbouring levels only: each decoded value brackets the clipped input.
    h = np.clip(x, cb[0], cb[-1])
    i = np.searchsorted(cb[1:-1], h, side="right")
    assert np.all((y == cb[i]) | (y == cb[i + 1]))


def _section_offsets(msg):
    """Byte offset of each section's words in msg.to_bytes() (format in message.hpp)."""
    off = 43 + 8 * len(msg.section_bits)
    out = []
    for b in msg.section_bits:
        out.append(off)
        off += 8 * ((b + 63) // 64)
    return out


def _with_section(msg, i, words):
    raw = bytearray(msg.to_bytes())
    off = _section_offsets(msg)[i]
    raw[off:off + 8 * len(words)] = np.asarray(words, dtype="<u8").tobytes()
    return pq.Message.from_bytes(reseal(bytes(raw)))


def _pack(codes, width):
    nbits = len(codes) * width
    words = np.zeros((nbits + 63) // 64, dtype=np.uint64)
    for j, v in enumerate(codes):
        pos = j * width
        words[pos // 64] |= np.uint64((int(v) << (pos % 64)) & (2**64 - 1))
        if pos % 64 + width > 64:
            words[pos // 64 + 1] |= np.uint64(int(v) >> (64 - pos % 64))
    return words


@pytest.mark.parametrize("c", [pq.TruncatedQuantizer(bits=3), pq.TruncatedUniformQuantizer(bits=5),
                               pq.NonUniformQuantizer(bits=3), pq.NonUniformQuantizer(bits=2, density="uniform")],
                         ids=repr)
def test_every_code_decodes_to_its_level(c):
    d = 200
    x = laplace(d, seed=3)
    m = c.compress(x, key=0)
    codes = np.arange(d) % (2**c.bits)
    m2 = _with_section(m, len(m.section_bits) - 1, _pack(codes, c.bits))
    np.testing.assert_array_equal(c.decompress(m2), c.codebook(m)[codes])


def test_table_codes_outside_codebook_rejected():
    c = pq.NonUniformQuantizer(bits=2, levels=[-1.0, 0.0, 1.0])  # code 3 is not a level
    m = c.compress(laplace(10), key=0)
    np.testing.assert_array_equal(c.decompress(_with_section(m, 1, _pack([0, 1, 2] * 3 + [2], 2))),
                                  np.float32(np.abs(laplace(10)).max()) * np.array([-1, 0, 1] * 3 + [1], np.float32))
    with pytest.raises(ValueError, match="codebook"):
        c.decompress(_with_section(m, 1, _pack([0] * 9 + [3], 2)))


@pytest.mark.parametrize("c", [pq.TruncatedQuantizer(bits=3), pq.NonUniformQuantizer(bits=3)], ids=repr)
def test_malformed_scale_rejected(c):
    m = c.compress(laplace(50), key=0)
    for bad in (float("nan"), float("inf"), -1.0):
        word = struct.unpack("<I", struct.pack("<f", bad))[0]
        with pytest.raises(ValueError, match="malformed"):
            c.decompress(_with_section(m, 0, [word]))
    # A huge but finite gamma-hat whose levels overflow float32.
    word = struct.unpack("<I", struct.pack("<f", 3e38))[0]
    if isinstance(c, pq.TruncatedQuantizer):
        with pytest.raises(ValueError, match="malformed"):
            c.decompress(_with_section(m, 0, [word]))


def test_random_bytes_never_crash():
    rng = np.random.default_rng(0)
    for c in [pq.TruncatedQuantizer(bits=3), pq.NonUniformQuantizer(bits=2, levels=[-1.0, 0.0, 1.0]),
              pq.chain(pq.Truncate(threshold=1.0), pq.NonUniformQuantizer(bits=3))]:
        good = c.compress(laplace(70), key=0).to_bytes()
        for t in range(200):
            raw = bytearray(good)
            # Corrupt the section table and payload (bytes 43+; the header's d is shared context).
            for _ in range(1 + t % 4):
                raw[int(rng.integers(43, len(raw)))] = int(rng.integers(256))
            if t % 5 == 0:
                raw = raw[: int(rng.integers(len(raw)))]
            try:  # resealed: the decoder, not the checksum, must reject what is malformed
                y = c.decompress(pq.Message.from_bytes(reseal(bytes(raw))))
            except ValueError:
                continue
            assert y.shape == (70,) and np.all(np.isfinite(y))


def test_message_of_another_compressor_rejected():
    x = laplace(20)
    m = pq.TruncatedQuantizer(bits=3).compress(x, key=0)
    for other in (pq.TruncatedQuantizer(bits=4), pq.TruncatedUniformQuantizer(bits=3),
                  pq.TruncatedQuantizer(bits=3, gamma="median"), pq.NonUniformQuantizer(bits=3)):
        with pytest.raises(ValueError, match="not produced by this compressor"):
            other.decompress(m)
    with pytest.raises(ValueError, match="not produced"):
        pq.TruncatedQuantizer(bits=4).codebook(m)


# ---- Truncate and chain ------------------------------------------------------------------------

def test_truncate_fixed_and_rules():
    x = laplace(5001, seed=4, scale=2.0)
    np.testing.assert_array_equal(pq.Truncate(threshold=1.5)(x, key=0), np.clip(x, np.float32(-1.5), np.float32(1.5)))
    for rule, gamma, bits in [("laplace", "mean", 3), ("laplace_uniform", "mean", 2), ("laplace", "median", 4)]:
        t = pq.Truncate(threshold=rule, bits=bits, gamma=gamma)
        xd = np.abs(x.astype(np.float64))
        g = float(np.float32(np.mean(xd) if gamma == "mean" else np.median(xd) / math.log(2)))
        a = tnq.optimal_threshold(bits, g) if rule == "laplace" else tnq.uniform_threshold(bits, g)
        got = t.threshold_for(x)
        assert got == pytest.approx(a, rel=F32_EPS)  # float32 rounding of the same double
        np.testing.assert_array_equal(t(x, key=0), np.clip(x, -np.float32(got), np.float32(got)))


def test_acceptance_chain_call():
    x = np.random.default_rng(0).standard_normal(257).astype(np.float32)
    c = pq.chain(pq.Truncate(threshold=1.0), pq.NonUniformQuantizer(bits=3))
    m = c.compress(x, key=0)
    y = c.decompress(m)
    assert m.bits == 64 + 257 * 3
    assert np.abs(y).max() <= 1.0
    # The second stage sees exactly the clipped vector.
    q = pq.NonUniformQuantizer(bits=3)
    h = np.clip(x, -1, 1).astype(np.float32)
    assert c.compress(x, key=0).bits == q.compress(h, key=0).bits
    y2 = pq.chain(pq.Truncate(threshold=1.0), pq.NonUniformQuantizer(bits=3)).decompress(
        pq.Message.from_bytes(m.to_bytes()))
    np.testing.assert_array_equal(y, y2)
    pq.TruncatedQuantizer(bits=3).decompress(pq.TruncatedQuantizer(bits=3).compress(x, key=0))


# ---- properties ----------------------------------------------------------------------------

def test_properties():
    d = 1000
    for c in (pq.TruncatedQuantizer(bits=3), pq.TruncatedUniformQuantizer(bits=3), pq.Truncate(threshold=1.0),
              pq.Truncate(threshold="laplace", bits=3, gamma="median")):
        p = c.properties(d)
        assert (p.unbiased, p.omega, p.delta) == (False, None, None)
    c = 3 * math.log1p(7 / tnq.K_STAR)
    p = pq.Truncate(threshold="laplace", bits=3).properties(d)
    assert not p.unbiased and p.omega is None and p.delta == pytest.approx(c * c / d**2, rel=2e-6)
    assert pq.Truncate(threshold="laplace", bits=3).properties(1).delta == pytest.approx(1.0, rel=2e-6)
    assert pq.NonUniformQuantizer(bits=3).properties(d) == pq.Properties(True, d / 4, None)
    assert pq.NonUniformQuantizer(bits=1).properties(d) == pq.Properties(True, float(d), None)
    assert pq.NonUniformQuantizer(bits=3, density="uniform").properties(d).omega == pytest.approx(d * (2 / 7) ** 2 / 4)
    assert pq.NonUniformQuantizer(bits=2, levels=[-1, -0.25, 0.25, 1]).properties(d).omega == pytest.approx(d * 0.75**2 / 4)


def test_truncate_delta_worst_case():
    # x = (M, 0, ..., 0) is the extreme case of the delta = c^2/d^2 bound; it must hold there.
    for d in (1, 2, 10, 1000):
        for bits in (1, 3, 8):
            x = np.zeros(d, np.float32)
            x[0] = 5.0
            t = pq.Truncate(threshold="laplace", bits=bits)
            err = float(np.sum((t(x, key=0).astype(np.float64) - x) ** 2))
            assert err <= (1 - t.properties(d).delta) * 25.0 * (1 + 1e-12)


def test_laplace_levels_unbiased_constant_holds_on_spiky_vector():
    # One large coordinate: levels cluster near 0, the outer gap approaches max|x| (omega = d/4).
    d = 1000
    x = np.full(d, 1e-3, np.float32)
    x[0] = 100.0
    c = pq.NonUniformQuantizer(bits=3)
    cb = c.codebook(c.compress(x, key=0))
    assert np.diff(cb).max() <= cb[-1] * (1 + 1e-6)
    e = tnq.expected_mse(x, cb)
    assert e.bias_sq == 0.0 and e.variance * d <= c.properties(d).omega * float(np.sum(x.astype(float) ** 2))


# ---- bad input -----------------------------------------------------------------------------

@pytest.mark.parametrize("cls", [pq.TruncatedQuantizer, pq.TruncatedUniformQuantizer, pq.NonUniformQuantizer])
def test_bad_bits(cls):
    for bad in (0, 17, -1):
        with pytest.raises(ValueError, match="bits"):
            cls(bits=bad)
    for bad in (3.0, "3", True, None):
        with pytest.raises(TypeError, match="bits"):
            cls(bits=bad)
    with pytest.raises(ValueError, match="gamma"):
        cls(bits=3, gamma="max")
    with pytest.raises(TypeError):
        cls(3)  # keyword-only


def test_bad_truncate():
    for bad in (0.0, -1.0, float("nan"), float("inf"), 1e39):
        with pytest.raises(ValueError, match="threshold"):
            pq.Truncate(threshold=bad)
    with pytest.raises(TypeError, match="threshold"):
        pq.Truncate(threshold=None)
    with pytest.raises(ValueError, match="threshold"):
        pq.Truncate(threshold="gauss", bits=3)
    with pytest.raises(ValueError, match="bits"):
        pq.Truncate(threshold="laplace")
    with pytest.raises(ValueError, match="bits"):
        pq.Truncate(threshold="laplace", bits=0)
    with pytest.raises(ValueError, match="bits"):
        pq.Truncate(threshold=1.0, bits=3)


def test_bad_levels():
    bad_tables = [[-1.0, 1.0, 0.0], [-1.0, -0.5, 0.4, 1.0], [-0.9, 0.9], [-1.0, 0.0, 0.5, 0.8, 1.0],
                  [-1.0], [-1.0, float("nan"), 1.0], [-1.0, -0.5, 0.0, 0.5, 1.0]]
    for table in bad_tables:
        with pytest.raises(ValueError, match="levels"):
            pq.NonUniformQuantizer(bits=2, levels=table)
    with pytest.raises(TypeError, match="levels"):
        pq.NonUniformQuantizer(bits=2, levels="abc")
    with pytest.raises(TypeError, match="levels"):
        pq.NonUniformQuantizer(bits=2, levels=[-1, None, 1])
    with pytest.raises(ValueError, match="not both"):
        pq.NonUniformQuantizer(bits=2, levels=[-1.0, 1.0], density="laplace")
    with pytest.raises(ValueError, match="density"):
        pq.NonUniformQuantizer(bits=2, density="gauss")


@pytest.mark.parametrize("c", CONFIGS, ids=IDS)
def test_non_finite_input_rejected(c):
    for bad in (np.nan, np.inf, -np.inf):
        x = laplace(100)
        x[37] = bad
        with pytest.raises(ValueError, match="NaN or Inf"):
            c.compress(x, key=0)


def test_overflowing_range_rejected():
    x = np.full(10, 3e38, np.float32)  # gamma-hat fine, alpha* = 3.2 gamma-hat overflows float32
    with pytest.raises(ValueError, match="rescale"):
        pq.TruncatedQuantizer(bits=3).compress(x, key=0)
    with pytest.raises(ValueError, match="rescale"):
        pq.Truncate(threshold="laplace", bits=3).compress(x, key=0)
    # No truncation: the range is max|x| itself, which always fits.
    y = pq.NonUniformQuantizer(bits=3)(x, key=0)
    np.testing.assert_array_equal(y, x)


@pytest.mark.parametrize("c", CONFIGS, ids=IDS)
@pytest.mark.parametrize("d", [1, 100])
def test_zero_vector_gives_zeros(c, d):
    y = c(np.zeros(d, np.float32), key=0)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, np.zeros(d, np.float32))
    assert not np.signbit(y).any()  # +0, not -0


def test_docstring_examples():
    import doctest

    res = doctest.testmod(tnq, optionflags=doctest.ELLIPSIS)
    assert res.attempted >= 10 and res.failed == 0
