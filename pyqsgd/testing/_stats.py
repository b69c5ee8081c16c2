"""The statistics behind :func:`pyqsgd.testing.check_compressor` and the project's own suite.
Every threshold is derived in a comment."""
from __future__ import annotations

import numpy as np
from scipy import stats

from .._core import Key

_RARE = 30  # at most this many outputs off the most frequent value: the rare-event regime
_MAX_SKEW = 2.0  # beyond it the z test's normal approximation is not trusted (see below)
ALPHA = 1e-3  # family-wise error of each test (fixed seeds make each outcome reproducible)


def samples(c, x, trials, seed, worker=0):
    """(trials, d) float64 outputs; trial t uses Key(seed, round=t, worker): independent streams."""
    x = np.asarray(x, np.float32)
    return np.stack([c(x, key=Key(seed=seed, round=t, worker=worker)).astype(np.float64) for t in range(trials)])


def unbiasedness_pvalue(y, x, omega):
    """Bonferroni p-value of H0: E C(x)_j = x_j for all j, given E||C(x) - x||^2 <= omega ||x||^2.

    Per coordinate, by the shape of the observed outputs (a = the most frequent value, seen
    in all but n of the T trials, e = |x_j - a|):
    * rare-event regime, n <= 30 (this includes a single observed value): if a = x_j (float32
      rounding) the coordinate is no evidence. Otherwise outcomes other than a must carry the
      mean, and by Cauchy-Schwarz their probability q obeys e^2 (1 - q)/q <= Var C_j <=
      omega ||x||^2, so q >= p_min = e^2/(omega ||x||^2 + e^2) whatever the distribution. Seeing
      n or fewer of them has probability <= P(Binomial(T, p_min) <= n): that is the p-value.
      (Only the value of probability > 1/2 can be the mode in this regime, so choosing a from
      the data does not inflate it.) This regime is where a mean carried by rare large
      outputs, e.g. chain(RandK, QSGD) on a vector of wide dynamic range, defeats any test on
      the sample mean: T trials have not seen the outputs that carry it.
    * two values a < b otherwise: under H0 the count of b is Binomial(T, p0), p0 = (x_j - a)/(b - a),
      so the exact binomial test applies (no CLT, no skewness issue); p0 outside [0, 1] means
      the mean cannot be x_j at all.
    * three or more values: z-test on the mean with the sample variance. The first Edgeworth
      term changes a normal tail at z by a relative |skew| (z^2 - 1)/(6 sqrt T); for z ~ 4
      (Bonferroni over 16-64 coordinates at 1e-3), |skew| <= 2 and T >= 4000 that is < 9%
      (about 20% at T = 1000). Where the sample skewness exceeds 2 (a coordinate that is
      mostly one value, as in chain(RandK, QSGD)) the rare-event bound above is used instead.
    """
    # omega None (an unbiased compressor with no declared variance bound): no bound on how
    # rare an unseen outcome may be, so a coordinate that never moved is no evidence of bias.
    omega = np.inf if omega is None else omega
    T, d = y.shape
    x = np.asarray(x, np.float64)
    norm_sq = float(x @ x)
    pvals = np.ones(d)
    for j in range(d):
        vals, counts = np.unique(y[:, j], return_counts=True)
        tol = 1e-6 * (abs(x[j]) + np.sqrt(norm_sq / d))  # float32 rounding of decoded values
        mode = int(np.argmax(counts))
        others = T - int(counts[mode])

        def rare_event():
            e = abs(vals[mode] - x[j])
            if e <= tol:
                return 1.0
            p_min = 1.0 if omega == 0 else e * e / (omega * norm_sq + e * e)
            return stats.binom.cdf(others, T, p_min) if p_min < 1 else 0.0

        if others <= _RARE:
            pvals[j] = rare_event()
        elif len(vals) == 2:
            a, b = vals
            p0 = (x[j] - a) / (b - a)
            slack = tol / (b - a)
            if p0 < -slack or p0 > 1 + slack:
                pvals[j] = 0.0
            else:
                pvals[j] = stats.binomtest(int(counts[1]), T, min(max(p0, 0.0), 1.0)).pvalue
        else:
            v = y[:, j]
            sd = v.std(ddof=1)
            skew = float(np.mean((v - v.mean()) ** 3) / sd**3) if sd > 0 else 0.0
            if abs(skew) > _MAX_SKEW:
                # Mostly one value with rare excursions (skewness ~ 1/sqrt(P(excursion))): the
                # studentized mean has a heavy tail there and the z test over-rejects, so
                # use the rare-event bound, which holds for any distribution.
                pvals[j] = rare_event()
            else:
                pvals[j] = 2 * stats.norm.sf(abs(v.mean() - x[j]) / (sd / np.sqrt(T)))
    return min(1.0, d * float(pvals.min()))


def relative_errors(y, x):
    """||C(x) - x||^2 / ||x||^2 per trial."""
    x = np.asarray(x, np.float64)
    return ((y - x) ** 2).sum(axis=1) / float(x @ x)


def mean_ci(v, alpha=ALPHA, sided=2):
    """(mean, half-width) of a normal-approximation interval: z_{1 - alpha/sided} se. The per-
    trial errors here are bounded with modest skew, so T >= 2000 puts the CLT well in range."""
    z = stats.norm.ppf(1 - alpha / sided)
    return float(v.mean()), float(z * v.std(ddof=1) / np.sqrt(len(v)))
