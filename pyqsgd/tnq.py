"""Truncated non-uniform quantization, TNQSGD (Yan et al., arXiv 2402.01160; ALGORITHMS.md §4.4).

Model: gradient coordinates ~ Laplace(0, gamma). With b bits per coordinate there are
s = 2**b - 1 intervals (2**b levels) and k* = 3 sqrt(6)/2 ≈ 3.674:

- truncation threshold  alpha* = 3 gamma ln(1 + s/k*);
- levels  l_j = sign(u - 1/2) (-3 gamma ln(1 - ``|2u - 1|`` A)), u = j/s, A = 1 - exp(-alpha/(3 gamma)):
  the quantiles of the density ∝ ``exp(-|g|/(3 gamma))`` on [-alpha, alpha];
- per-coordinate error bound 27 gamma^2/(s + k*)^2 = quantization variance bound
  27 gamma^2 A^3/s^2 + truncation MSE 2 gamma^2 exp(-alpha/gamma) (an exact identity at alpha*).

The variance bound is the high-resolution estimate with the worst case (gap)^2/4 of stochastic
rounding per interval: (1/(4 s^2)) ∫ p/lambda^2, lambda the normalised level density. Minimising
it plus the truncation MSE over alpha gives alpha*; doing the same with uniform levels (variance
alpha^2/s^2) gives the truncated-uniform threshold alpha_U = gamma W(s^2), W = Lambert W.

Compressors (native kernels, draw j of the key's stream rounds coordinate j):

=============================================  ====================================  ==============
compressor                                     what                                  bits
=============================================  ====================================  ==============
``TruncatedQuantizer(bits=b)``                 TNQSGD: gamma-hat, alpha*, Laplace    32 + d b
                                               levels, clip, stochastic rounding
``TruncatedUniformQuantizer(bits=b)``          alpha_U = gamma-hat W(s^2), uniform   32 + d b
``NonUniformQuantizer(bits=b)``                Laplace levels on [-max|x|, max|x|]   64 + d b
                                               (no truncation; unbiased)
``NonUniformQuantizer(bits=b, levels=...)``    fixed normalised table × max|x|       32 + d b
``Truncate(threshold=...)``                    clip(x, -alpha, alpha); chain stage   0 in a chain
``QSGD(levels=2**(b-1) - 1)``                  uniform, no truncation (baseline)     32 + d b
=============================================  ====================================  ==============
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from . import _core
from ._validate import as_vector, check_float, check_int
from .compressors import Compressor

__all__ = ["K_STAR", "Truncate", "NonUniformQuantizer", "TruncatedQuantizer", "TruncatedUniformQuantizer",
           "Theory", "ErrorSplit", "intervals", "lambert_w", "optimal_threshold", "uniform_threshold",
           "laplace_levels", "uniform_levels", "theory", "expected_mse"]

K_STAR = 3.0 * math.sqrt(6.0) / 2.0
_GAMMAS = ("mean", "median")
_RULES = ("laplace", "laplace_uniform")


def _real_array(owner, name, x, empty_ok=False):
    """``x`` as a float64 array; bool/complex/str/object input is a TypeError, NaN/Inf a ValueError."""
    if x is None or isinstance(x, (str, bytes)):
        raise TypeError(f"{owner}: {name} must be a real numeric array, got {x!r}")
    a = np.asarray(x)
    if a.dtype.kind not in "iuf":
        raise TypeError(f"{owner}: {name} must be a real numeric array, got dtype {a.dtype}")
    a = a.astype(np.float64)
    if not empty_ok and a.size == 0:
        raise ValueError(f"{owner}: {name} must be non-empty")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{owner}: {name} contains NaN or Inf")
    return a


# ---- closed forms (NumPy, float64: for users, plots and as test references) -------------------

def intervals(bits):
    """s = 2**bits - 1, the number of quantization intervals for ``bits`` in [1, 16]."""
    return (1 << check_int("intervals", "bits", bits, low=1, high=16)) - 1


def lambert_w(x):
    """Principal branch W0 of the Lambert W function (w e^w = x) for x >= 0, by Newton steps.

    >>> round(float(lambert_w(1.0)), 12)      # the omega constant
    0.56714329041
    """
    x = _real_array("lambert_w", "x", x, empty_ok=True)
    if np.any(x < 0):
        raise ValueError("lambert_w: x must be >= 0")
    w = np.where(x <= np.e, np.log1p(x), np.log(np.maximum(x, np.e)) - np.log(np.log(np.maximum(x, np.e))))
    for _ in range(100):
        ew = np.exp(w)
        step = (w * ew - x) / (ew * (w + 1.0))
        w = w - step
        if np.all(np.abs(step) <= 1e-15 * (1.0 + np.abs(w))):
            break
    return w if w.ndim else float(w)


def _gamma_arg(owner, gamma):
    return check_float(owner, "gamma", gamma, low=0.0)


def optimal_threshold(bits, gamma=1.0):
    """TNQ truncation threshold alpha* = 3 gamma ln(1 + s/k*), s = 2**bits - 1.

    >>> round(optimal_threshold(2, 1.0), 3)
    1.791
    """
    return 3.0 * _gamma_arg("optimal_threshold", gamma) * math.log1p(intervals(bits) / K_STAR)


def uniform_threshold(bits, gamma=1.0):
    """Truncated-uniform threshold alpha_U = gamma W(s^2): minimises alpha^2/s^2 + 2 gamma^2 e^(-alpha/gamma)."""
    s = intervals(bits)
    return _gamma_arg("uniform_threshold", gamma) * lambert_w(float(s * s))


def laplace_levels(bits, gamma=1.0, alpha=None):
    """The 2**bits levels: quantiles of ``exp(-|g|/(3 gamma))`` on [-alpha, alpha] (float64).

    ``alpha=None`` uses alpha* (the TNQ table). The table is exactly symmetric.

    >>> np.round(laplace_levels(2, 1.0), 3).tolist()
    [-1.791, -0.487, 0.487, 1.791]
    """
    s = intervals(bits)
    gamma = _gamma_arg("laplace_levels", gamma)
    alpha = optimal_threshold(bits, gamma) if alpha is None else check_float("laplace_levels", "alpha", alpha,
                                                                            low=0.0)
    if gamma == 0.0 or alpha == 0.0:
        out = np.zeros(s + 1)
        out[0], out[-1] = -alpha, alpha
        return out
    A = -math.expm1(-alpha / (3.0 * gamma))
    v = np.abs(2.0 * np.arange(s + 1) - s) / s
    half = -3.0 * gamma * np.log1p(-v * A)
    half[[0, -1]] = alpha
    return np.where(np.arange(s + 1) * 2 < s, -half, half)


def uniform_levels(bits, alpha):
    """The 2**bits uniform levels alpha (2j - s)/s on [-alpha, alpha] (float64)."""
    s = intervals(bits)
    alpha = check_float("uniform_levels", "alpha", alpha, low=0.0)
    return alpha * (2.0 * np.arange(s + 1) - s) / s


@dataclass(frozen=True)
class Theory:
    """Per-coordinate error terms under Laplace(0, gamma) (see :func:`theory`)."""

    bits: int
    s: int
    gamma: float
    alpha: float
    bias_sq: float      # truncation MSE 2 gamma^2 exp(-alpha/gamma)
    variance: float     # quantization variance bound
    total: float        # bias_sq + variance
    bound: float        # 27 gamma^2/(s + k*)^2 (non-uniform) or the uniform optimum's total


def theory(bits, gamma=1.0, alpha=None, uniform=False):
    """Theoretical per-coordinate bias², variance and total error for Laplace(0, gamma) input.

    Non-uniform (TNQ) levels: variance bound 27 gamma^2 A^3/s^2 with A = 1 - exp(-alpha/(3 gamma));
    uniform levels: alpha^2/s^2. Truncation MSE (exact for Laplace): 2 gamma^2 exp(-alpha/gamma).
    ``alpha=None`` takes the optimum (alpha* or alpha_U); then, for TNQ, ``total == bound ==
    27 gamma^2/(s + k*)^2`` (Yan et al. 2024, Theorem 2 / ALGORITHMS.md §4.4).

    >>> t = theory(3, 1.0)
    >>> abs(t.total - 27.0 / (7 + K_STAR) ** 2) < 1e-12
    True
    """
    s = intervals(bits)
    gamma = _gamma_arg("theory", gamma)
    if not isinstance(uniform, (bool, np.bool_)):
        raise TypeError(f"theory: uniform must be a bool, got {uniform!r}")
    if alpha is None:
        alpha = uniform_threshold(bits, gamma) if uniform else optimal_threshold(bits, gamma)
    alpha = check_float("theory", "alpha", alpha, low=0.0)
    bias_sq = 2.0 * gamma**2 * math.exp(-alpha / gamma) if gamma > 0 else 0.0
    if uniform:
        variance = alpha**2 / s**2
        a_u = uniform_threshold(bits, gamma)
        bound = a_u**2 / s**2 + (2.0 * gamma**2 * math.exp(-a_u / gamma) if gamma > 0 else 0.0)
    else:
        A = -math.expm1(-alpha / (3.0 * gamma)) if gamma > 0 else 1.0
        variance = 27.0 * gamma**2 * A**3 / s**2
        bound = 27.0 * gamma**2 / (s + K_STAR) ** 2
    return Theory(bits=int(bits), s=s, gamma=gamma, alpha=alpha, bias_sq=bias_sq, variance=variance,
                  total=bias_sq + variance, bound=bound)


@dataclass(frozen=True)
class ErrorSplit:
    """Per-coordinate mean error terms of a level table applied to a given vector."""

    bias_sq: float   # mean (x_j - clip(x_j))^2
    variance: float  # mean rounding variance (h_j - l_i)(l_{i+1} - h_j)
    total: float     # expected mean squared error E||C(x) - x||^2 / d


def expected_mse(x, levels):
    """Exact E||C(x) - x||^2 / d (over the rounding draws) of clipping to [levels[0], levels[-1]]
    and stochastically rounding to ``levels``, split into truncation bias² and rounding variance.

    >>> e = expected_mse([0.5, 3.0], [-1.0, 0.0, 1.0])
    >>> (e.bias_sq, e.variance)
    (2.0, 0.125)
    """
    x = _real_array("expected_mse", "x", x).ravel()
    lv = _real_array("expected_mse", "levels", levels, empty_ok=True)
    if lv.ndim != 1 or lv.size < 2 or np.any(np.diff(lv) < 0):
        raise ValueError("expected_mse: levels must be a 1-D non-decreasing table of at least 2 values")
    h = np.clip(x, lv[0], lv[-1])
    i = np.searchsorted(lv[1:-1], h, side="right")
    var = (h - lv[i]) * (lv[i + 1] - h)
    b = float(np.mean((x - h) ** 2))
    v = float(np.mean(var))
    return ErrorSplit(bias_sq=b, variance=v, total=b + v)


# ---- compressors ----------------------------------------------------------------------------

def _check_bits(owner, bits):
    return check_int(owner, "bits", bits, low=1, high=16)


def _check_gamma_rule(owner, gamma):
    if not isinstance(gamma, str) or gamma not in _GAMMAS:
        raise ValueError(f"{owner}: gamma must be 'mean' or 'median', got gamma={gamma!r}")


class Truncate(Compressor):
    """Truncation h_j = clip(x_j, -alpha, alpha): the first stage of TNQSGD (a chain stage).

    ``threshold``: a fixed alpha (float > 0), or a rule applied to gamma-hat of x
    (``gamma='mean'``: mean|x|, the Laplace MLE; ``'median'``: median|x|/ln 2), with ``bits``:
    ``'laplace'`` alpha* = 3 gamma-hat ln(1 + s/k*) (k* = 3 sqrt(6)/2, s = 2**bits - 1; Yan et al.
    2024), ``'laplace_uniform'`` alpha_U = gamma-hat W(s^2).

    ``chain(Truncate(...), q)`` lets q quantize h; Truncate adds 0 bits there (the receiver does
    not need alpha: q carries its own scale). Alone it sends h as float32: 32 d bits. Biased.
    No randomness. Constants: ||x - h||^2 <= ||x||^2 - ||h||^2, and with a mean-based rule
    alpha >= c ||x||_2/d (c = alpha*/gamma-hat), so B(min(1, c^2/d^2)) (a weak but valid delta);
    a fixed or median-based threshold has no delta (x can be arbitrarily far beyond alpha).

    >>> import numpy as np, pyqsgd as pq
    >>> pq.Truncate(threshold=1.0)(np.array([0.5, -3.0, 2.0]), key=0).tolist()
    [0.5, -1.0, 1.0]
    """

    def __init__(self, *, threshold, bits=None, gamma="mean"):
        self.threshold = threshold
        self.bits = bits
        self.gamma = gamma
        self._validate()

    def _validate(self):
        _check_gamma_rule("Truncate", self.gamma)
        if isinstance(self.threshold, str):
            if self.threshold not in _RULES:
                raise ValueError(f"Truncate: threshold must be a float > 0 or one of {_RULES}, "
                                 f"got threshold={self.threshold!r}")
            if self.bits is None:
                raise ValueError(f"Truncate: threshold={self.threshold!r} needs bits (the quantizer's bits)")
            _check_bits("Truncate", self.bits)
        else:
            check_float("Truncate", "threshold", self.threshold, low=0.0, low_open=True, high=3.4e38)
            if self.bits is not None:
                raise ValueError("Truncate: bits is only used with a threshold rule ('laplace', ...)")

    def _build(self):
        if isinstance(self.threshold, str):
            return _core.Truncate(rule=self.threshold, threshold=0.0, bits=int(self.bits), gamma=self.gamma)
        return _core.Truncate(rule="fixed", threshold=float(self.threshold), bits=0, gamma=self.gamma)

    def threshold_for(self, x):
        """The float32 alpha applied to ``x``."""
        return float(self._native.threshold_for(as_vector(x)))


class NonUniformQuantizer(Compressor):
    """Unbiased stochastic rounding to 2**bits levels spanning [-max|x|, max|x|] (no truncation).

    Levels (alpha = max|x|, sent as float32):

    - ``density='laplace'`` (default): the TNQ quantile levels of ``exp(-|g|/(3 gamma-hat))`` on
      [-alpha, alpha], gamma-hat = mean|x| (``gamma='median'``: median|x|/ln 2), also sent:
      64 + d b bits (alpha is not a function of gamma-hat here, so both go on the wire).
    - ``density='uniform'``: alpha (2j - s)/s; 32 + d b bits.
    - ``levels=[-1, ..., 1]``: a fixed, strictly increasing, symmetric table of 2 to 2**bits
      values from -1 to 1, scaled by alpha (a parameter, known to both ends); 32 + d b bits.

    Each coordinate is rounded to one of the two levels around it with probabilities that make
    it unbiased (draw j of the key's stream decides coordinate j), so E[C(x)] = x. Constant:
    rounding in a gap of width g alpha has variance <= (g alpha)^2/4 and alpha <= ||x||_2, so
    U(d g^2/4) with g the largest normalised gap: 2/s (uniform), the table's, and for Laplace
    levels the supremum over inputs, 1 (s >= 3) or 2 (s = 1). Loose in d, like QSGD's.
    ``chain(Truncate(...), NonUniformQuantizer(...))`` quantizes the clipped vector.

    >>> import numpy as np, pyqsgd as pq
    >>> q = pq.NonUniformQuantizer(bits=2, levels=[-1.0, -0.25, 0.25, 1.0])
    >>> q.compress(np.arange(10.0), key=0).bits
    52
    """

    def __init__(self, *, bits, levels=None, density=None, gamma="mean"):
        self.bits = bits
        self.levels = levels
        self.density = density
        self.gamma = gamma
        self._validate()

    def _validate(self):
        _check_bits("NonUniformQuantizer", self.bits)
        _check_gamma_rule("NonUniformQuantizer", self.gamma)
        if self.levels is not None:
            if self.density is not None:
                raise ValueError("NonUniformQuantizer: give levels or density, not both")
            if isinstance(self.levels, (str, bytes)) or not hasattr(self.levels, "__len__"):
                raise TypeError(f"NonUniformQuantizer: levels must be a sequence of floats, got {self.levels!r}")
            for v in self.levels:
                if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
                    raise TypeError(f"NonUniformQuantizer: levels must be real numbers, got {v!r}")
            # Stored as a tuple of floats so that repr round-trips and the record is hashable.
            self.levels = tuple(float(v) for v in self.levels)
        elif self.density is not None and self.density not in ("laplace", "uniform"):
            raise ValueError(f"NonUniformQuantizer: density must be 'laplace' or 'uniform', got {self.density!r}")
        self._native  # noqa: B018 - the native constructor checks the table now

    def _build(self):
        if self.levels is not None:
            return _core.NonUniformQuantizer(bits=int(self.bits), density="table", levels=list(self.levels),
                                             gamma=self.gamma)
        return _core.NonUniformQuantizer(bits=int(self.bits), density=self.density or "laplace", levels=[],
                                         gamma=self.gamma)

    def codebook(self, msg):
        """The float32 level table the receiver rebuilds for ``msg`` (every decoded value is one of them)."""
        return self._native.codebook(msg)


class _Truncated(Compressor):
    _shape = "laplace"

    def __init__(self, *, bits, gamma="mean"):
        self.bits = bits
        self.gamma = gamma
        self._validate()

    def _validate(self):
        _check_bits(type(self).__name__, self.bits)
        _check_gamma_rule(type(self).__name__, self.gamma)

    def _build(self):
        return _core.TruncatedQuantizer(bits=int(self.bits), shape=self._shape, gamma=self.gamma)

    def codebook(self, msg):
        """The float32 level table the receiver rebuilds from the gamma-hat in ``msg``."""
        return self._native.codebook(msg)

    def levels_for_gamma(self, gamma):
        """The float32 level table both ends build for a (float32) gamma-hat."""
        return self._native.levels_for_gamma(float(np.float32(gamma)))

    def theory(self, gamma=1.0):
        """Per-coordinate bias², variance bound and total under Laplace(0, gamma): :func:`theory`."""
        return theory(self.bits, gamma, uniform=self._shape == "uniform")


class TruncatedQuantizer(_Truncated):
    """TNQSGD (Yan et al., arXiv 2402.01160; ALGORITHMS.md §4.4): truncation, then non-uniform
    quantization with closed-form optimal parameters for Laplace(0, gamma) coordinates.

    1. gamma-hat = mean|x| (Laplace MLE; ``gamma='median'``: median|x|/ln 2), sent as float32.
    2. alpha* = 3 gamma-hat ln(1 + s/k*), s = 2**bits - 1, k* = 3 sqrt(6)/2; h = clip(x, -alpha*, alpha*).
    3. Levels: quantiles of ``exp(-|g|/(3 gamma-hat))`` on [-alpha*, alpha*] (:func:`laplace_levels`).
    4. Unbiased stochastic rounding of h between neighbouring levels; b-bit level indices.

    Bits: 32 + d b exactly. The receiver rebuilds alpha* and the levels from gamma-hat and b
    (every b-bit code is a level). Draw j of the key's stream rounds coordinate j. Biased
    (truncation): properties give omega = delta = None; :meth:`theory` gives the per-coordinate
    bias² 2 gamma^2 e^(-alpha/gamma), variance bound and total 27 gamma^2/(s + k*)^2 under the
    Laplace model. A zero vector gives gamma-hat = 0 and decodes to zeros.

    >>> import numpy as np, pyqsgd as pq
    >>> pq.TruncatedQuantizer(bits=3).compress(np.ones(100), key=0).bits
    332
    """


class TruncatedUniformQuantizer(_Truncated):
    """Truncated uniform quantization (baseline of ALGORITHMS.md §4.4): alpha_U = gamma-hat W(s^2)
    (Lambert W; the minimiser of alpha^2/s^2 + 2 gamma^2 e^(-alpha/gamma)), uniform levels
    alpha_U (2j - s)/s, unbiased stochastic rounding of clip(x, -alpha_U, alpha_U).

    gamma-hat as in :class:`TruncatedQuantizer`, sent as float32. Bits: 32 + d b. Biased; draw j of
    the key's stream rounds coordinate j.
    """

    _shape = "uniform"
