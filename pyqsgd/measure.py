"""Empirical theory constants of a compressor: bias, omega and delta with confidence intervals."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np

from . import _core
from ._validate import as_vector, check_float, check_int
from .compressors import Compressor

__all__ = ["Measurement", "measure"]


@dataclass(frozen=True)
class Measurement:
    """Result of :func:`measure`; intervals are two-sided at the requested confidence.

    ``bias_z_max`` is the largest per-coordinate ``|z|`` of mean(C(x)) - x, and ``bias_p`` its
    Bonferroni-corrected p-value under "unbiased" (small ⇒ evidence of bias). It is a normal
    approximation from running sums (memory O(d), any number of trials): where a coordinate's
    mean sits in outputs rarer than a few in ``trials`` (e.g. a value just above a quantizer
    level, rounded up with probability 1e-4) it reports bias that more trials would not
    confirm. :func:`pyqsgd.testing.check_compressor` keeps the samples and handles that case
    with an exact rare-event test; use it for a verdict. ``omega`` is the
    mean of ||C(x) - x||^2 / ||x||^2 (the variance constant for unbiased compressors) and
    ``delta`` = 1 - omega (the contraction constant for biased ones).
    """

    trials: int
    bias_norm_sq: float
    bias_z_max: float
    bias_p: float
    omega: float
    omega_ci: Tuple[float, float]
    delta: float
    delta_ci: Tuple[float, float]
    bits_mean: float


def measure(c, x, trials=1000, key=0, confidence=0.95):
    """Compresses ``x`` ``trials`` times (trial t uses Key(seed=key, round=t)) and estimates
    bias, omega and delta.

    >>> import numpy as np, pyqsgd as pq
    >>> m = pq.measure(pq.RandK(k=5), np.arange(1.0, 21.0), trials=200, key=0)
    >>> bool(m.omega_ci[0] < 3.0 < m.omega_ci[1])      # RandK omega = d/k - 1 = 3, exactly
    True
    """
    from scipy import stats  # imported here: scipy.stats costs ~1 s at package import

    if not isinstance(c, Compressor):
        raise TypeError(f"measure: c must be a pyqsgd compressor, got {type(c).__name__}")
    x = as_vector(x)
    trials = check_int("measure", "trials", trials, low=2)
    seed = check_int("measure", "key", key, low=0, high=2**64 - 1)
    confidence = check_float("measure", "confidence", confidence)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"measure: confidence must be in (0, 1), got {confidence}")
    xd = x.astype(np.float64)
    norm_sq = float(xd @ xd)
    if norm_sq == 0.0:
        raise ValueError("measure: x must be nonzero (omega and delta are relative to ||x||^2)")
    total = np.zeros_like(xd)
    total_sq = np.zeros_like(xd)
    rel = np.empty(trials)
    bits = np.empty(trials)
    for t in range(trials):
        msg = c.compress(x, _core.Key(seed=seed, round=t))
        y = c.decompress(msg).astype(np.float64)
        total += y
        total_sq += y * y
        err = y - xd
        rel[t] = float(err @ err) / norm_sq
        bits[t] = msg.bits
    mean = total / trials
    var = np.maximum(total_sq / trials - mean * mean, 0.0) * trials / (trials - 1)
    diff = mean - xd
    se = np.sqrt(var / trials)
    with np.errstate(divide="ignore", invalid="ignore"):
        # A coordinate with zero spread must be exact up to float32 rounding of the decoded scale.
        tol = 1e-6 * (np.abs(xd) + np.sqrt(norm_sq))
        z = np.where(se > 0, np.abs(diff) / se, np.where(np.abs(diff) > tol, np.inf, 0.0))
    z_max = float(z.max())
    p = min(1.0, float(2 * stats.norm.sf(z_max) * len(x)))
    zq = float(stats.norm.ppf(0.5 + confidence / 2))
    om = float(rel.mean())
    half = zq * float(rel.std(ddof=1)) / np.sqrt(trials)
    half = float(half)
    return Measurement(trials=trials, bias_norm_sq=float(diff @ diff) / norm_sq, bias_z_max=z_max, bias_p=p,
                       omega=om, omega_ci=(om - half, om + half), delta=1.0 - om,
                       delta_ci=(1.0 - om - half, 1.0 - om + half), bits_mean=float(bits.mean()))
