"""Compressed-gradient methods of ALGORITHMS.md §3: DCGD, EF, EF21, DIANA."""
from __future__ import annotations

from .. import _core
from .._validate import check_float
from .base import Method

__all__ = ["DCGD", "EF", "EF21", "DIANA"]


class DCGD(Method):
    """Distributed compressed gradient descent (Khirirat et al. 2018, arXiv:1806.06573; arbitrary
    sampling as in Horváth & Richtárik, ICLR 2021, arXiv:2006.11077): worker sends C(g_i); server
    x <- x - lr sum_{i in S} (w_i/p_i) C(g_i). Converges with unbiased C (to a neighbourhood
    with stochastic gradients); with Identity, Mean, full batches and equal shards it is exactly
    gradient descent.

    >>> import pyqsgd as pq
    >>> pq.methods.DCGD(pq.RandK(k=10))
    DCGD(RandK(k=10))
    """

    def _make(self, d, m):
        return _core.DCGD(self._native_compressors(d, m))


class EF(Method):
    """Error feedback (Seide et al. 2014; Karimireddy et al. 2019): p = lr g_i + e_i,
    Delta_i = C(p), e_i <- p - Delta_i; server x <- x - sum (w_i/p_i) Delta_i. The step size is
    applied on the worker (inside p). Invariant: sum_t Delta_i^t + e_i = sum_t lr g_i^t.
    State: ``error`` (m x d)."""

    def _make(self, d, m):
        return _core.EF(self._native_compressors(d, m))


class EF21(Method):
    """EF21 (Richtárik et al., NeurIPS 2021): worker c_i = C(grad f_i(x) - g_i), g_i += c_i;
    server g += sum w_i c_i, x <- x - lr g. State zero-initialised, so the first upload is
    C(grad f_i(x^0)) (g_i^0 = C(grad f_i(x^0)) as in the paper); ``exact_init=True`` sends the
    first gradient uncompressed (32 d bits). Theory step: lr <= 1/(L + L~ sqrt(beta/theta)),
    theta = 1 - sqrt(1 - delta), beta = (1 - delta)/(1 - sqrt(1 - delta)).
    State: ``g_workers`` (m x d), ``g``."""

    def __init__(self, compressor, *, exact_init=False, aggregator=None, server_momentum=0.0, downlink=None):
        self.exact_init = exact_init
        super().__init__(compressor, aggregator=aggregator, server_momentum=server_momentum, downlink=downlink)

    def _validate(self):
        super()._validate()
        if not isinstance(self.exact_init, bool):
            raise TypeError(f"EF21: exact_init must be a bool, got {self.exact_init!r}")

    def _make(self, d, m):
        return _core.EF21(self._native_compressors(d, m), self.exact_init)


class DIANA(Method):
    """DIANA (Mishchenko et al. 2019): shifts h_i; worker D_i = Q(g_i - h_i), h_i += alpha D_i;
    server g^ = h + sum_{i in S} (w_i/p_i) D_i, x <- x - lr g^, h += alpha sum_{i in S} w_i D_i.
    Needs an unbiased Q (e.g. RandK, QSGD, induced(TopK, RandK)); alpha defaults to 1/(1 + omega).
    Converges to the exact optimum with full local gradients. State: ``h_workers``, ``h``."""

    _needs_unbiased = True

    def __init__(self, compressor, alpha=None, *, aggregator=None, server_momentum=0.0, downlink=None):
        self.alpha = alpha
        super().__init__(compressor, aggregator=aggregator, server_momentum=server_momentum, downlink=downlink)

    def _validate(self):
        super()._validate()
        check_float("DIANA", "alpha", self.alpha, low=0.0, high=1.0, low_open=True, allow_none=True)
        for c in self.compressors:
            if not c._native.is_unbiased:
                raise ValueError(f"DIANA: the compressor must be unbiased, got {c!r}; use an unbiased one "
                                 "(RandK, QSGD, induced(TopK(...), RandK(...))) or EF21 for biased compressors")

    def resolved_alpha(self, d):
        """alpha, or 1/(1 + omega) with the largest omega among the compressors at dimension d."""
        if self.alpha is not None:
            return float(self.alpha)
        omegas = [c.properties(d).omega for c in self.compressors]
        if any(o is None for o in omegas):
            raise ValueError("DIANA: a compressor declares no omega; pass alpha explicitly")
        return 1.0 / (1.0 + max(omegas))

    def _make(self, d, m):
        return _core.DIANA(self._native_compressors(d, m), self.resolved_alpha(d))
