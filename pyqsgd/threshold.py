"""Hard-threshold sparsification HT_tau (the compressor of DAGC-A, ALGORITHMS.md §4.5)."""
from __future__ import annotations

from . import _core
from ._validate import check_float
from .compressors import Compressor

__all__ = ["Threshold"]


class Threshold(Compressor):
    """Hard threshold HT_tau: keeps the entries with ``|x_j|`` >= tau, zeroes the rest.

    Definition: C(x)_j = x_j if ``|x_j|`` >= tau else 0, compared in double precision on the
    float32 input (``tau = 0`` keeps every entry). How many entries survive depends on x.

    Theory: biased. Only an *absolute* error bound holds, ||C(x) - x||^2 <= d tau^2 (each
    dropped entry has ``|x_j|`` < tau); there is no relative contraction (a vector with all
    ``|x_j|`` < tau maps to zero), so ``properties(d)`` reports ``omega = delta = None``
    (Lu et al., IEEE TMC 2024, arXiv 2311.07324, use it with error feedback).

    Bits, for k kept entries: 32 (the count k) + min(k ceil(log2 d), d) (indices, or a d-bit
    bitmap when smaller) + 32 k (float32 values); k = 0 sends only the 32-bit count.
    Decoding checks k <= d, strictly increasing indices < d and exact section lengths.

    A chain stage: ``chain(Threshold(tau=...), QSGD(levels=4))`` quantizes the kept values
    (indices stay exact; nothing after the count is sent when k = 0). A second stage of fixed
    size such as ``TopK(k=5)`` fails on inputs where fewer than 5 entries survive; give it a
    ``ratio`` instead. No randomness: the
    output depends only on x and tau, at any thread count.

    Parameters
    ----------
    tau : float >= 0
        The threshold (finite).

    Examples
    --------
    >>> import numpy as np, pyqsgd as pq
    >>> c = pq.Threshold(tau=1.0)
    >>> c(np.array([0.5, -2.0, 1.0, 0.1]), key=0).tolist()
    [0.0, -2.0, 1.0, 0.0]
    >>> c.compress(np.array([0.5, -2.0, 1.0, 0.1]), key=0).bits  # 32 + 2 * 2 + 2 * 32
    100
    """

    def __init__(self, *, tau):
        self.tau = tau
        self._validate()

    def _validate(self):
        check_float("Threshold", "tau", self.tau, low=0.0, high=3.4e38)

    def _build(self):
        return _core.Threshold(tau=float(self.tau))

    def error_bound(self, d):
        """The absolute bound d tau^2 on ||C(x) - x||^2 for any x of dimension d."""
        return float(d) * float(self.tau) ** 2
