"""Test vectors on which the theory constants of the common compressor classes are attained or
stressed (ALGORITHMS.md §1). A bound E||C(x) - x||^2 <= c ||x||^2 must hold for every x, so a
check that only tries Gaussian vectors would miss the cases where compressors are tight."""
from __future__ import annotations

import math

import numpy as np

from .._validate import check_int

__all__ = ["worst_case_vectors", "BOUNDS_ONLY"]

# Vectors of wide dynamic range (2^15 for ``natural``): a composition such as
# chain(RandK, QSGD) there has a mean carried partly by outputs rarer than one in thousands of
# trials, so no test on a sample mean can check unbiasedness on them at a fixed false-alarm
# rate. They still test the omega / delta bounds, where unseen rare outputs can only make the
# measured error smaller (the check stays conservative).
BOUNDS_ONLY = ("natural", "heavy_tailed")


def worst_case_vectors(d, seed=0):
    """Named float32 vectors of length d, each a known worst or hard case.

    * ``mixed``: random signs, magnitudes in [0.3, 1] (no coordinate negligible);
    * ``equal``: all ``|x_j|`` equal: TopK attains B(k/d), induced(TopK, RandK) its omega, and
      ScaledSign is exact;
    * ``one_hot``: one nonzero coordinate (norm-based quantizers at their most extreme);
    * ``terngrad``: (1, t, ..., t) with t = 1/(sqrt(d) + 1): TernGrad attains (sqrt(d) - 1)/2;
    * ``natural``: ``|x_j|`` = (4/3) 2^a: natural compression attains 1/8;
    * ``heavy_tailed``: Student-t with 2 degrees of freedom (a few huge coordinates);
    * ``half_zero``: half the coordinates exactly zero;
    * ``tiny``: ``mixed`` scaled by 1e-30 (scale invariance far from 1).

    ``natural`` and ``heavy_tailed`` serve the omega / delta bounds only (see ``BOUNDS_ONLY``).
    """
    d = check_int("worst_case_vectors", "d", d, low=1)
    rng = np.random.default_rng(check_int("worst_case_vectors", "seed", seed, low=0))
    signs = rng.choice([-1.0, 1.0], d)
    mixed = signs * rng.uniform(0.3, 1.0, d)
    t = 1.0 / (math.sqrt(d) + 1.0)
    terngrad = np.full(d, t)
    terngrad[0] = 1.0
    a = (np.arange(d) % 16) - 6
    natural = (4.0 / 3.0) * 2.0 ** a * np.where(np.arange(d) % 2, -1.0, 1.0)
    half_zero = mixed.copy()
    half_zero[rng.permutation(d)[: d // 2]] = 0.0
    one_hot = np.zeros(d)
    one_hot[d // 3] = -2.5
    out = {
        "mixed": mixed,
        "equal": signs,
        "one_hot": one_hot,
        "terngrad": terngrad,
        "natural": natural,
        "heavy_tailed": rng.standard_t(2.0, d),
        "half_zero": half_zero,
        "tiny": mixed * 1e-30,
    }
    return {k: v.astype(np.float32) for k, v in out.items()}
