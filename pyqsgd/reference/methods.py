"""EF21 and DIANA written with :class:`pyqsgd.methods.PythonMethod`: the Python twins of
``pq.methods.EF21`` and ``pq.methods.DIANA``, bit for bit (same compressor, key and problem give
the same loss, x and bits). They show the API on two real methods and hold it to the native
ones in the test suite.

>>> import numpy as np, pyqsgd as pq
>>> from pyqsgd.reference.methods import DIANA
>>> DIANA(pq.RandK(k=2))
DIANA(RandK(k=2))
"""
from __future__ import annotations

import numpy as np

from ..methods.gradient import DIANA as _NativeDIANA
from ..methods.python import PythonMethod, State

__all__ = ["EF21", "DIANA"]


class EF21(PythonMethod):
    """EF21 (Richtárik et al., NeurIPS 2021): worker c_i = C(v_i - g_i), g_i += c_i;
    server g += sum w_i c_i, step lr g. Zero-initialised: the first upload is C(grad f_i(x^0))."""

    def init_state(self, d, m, x0):
        return State(g_workers=np.zeros((m, d)), g=np.zeros(d))

    def worker(self, i, v, state, ctx):
        state.g_workers[i] += ctx.compress(v - state.g_workers[i])

    def server(self, state, ctx):
        state.g += ctx.aggregate(ctx.weights)  # g stays the weighted mean of the g_i
        return ctx.lr * state.g


class DIANA(PythonMethod, _NativeDIANA):
    """DIANA (Mishchenko et al. 2019): worker D_i = Q(v_i - h_i), h_i += alpha D_i; server
    estimator h + sum (w_i/p_i) D_i, step lr times it, h += alpha sum w_i D_i. Parameters, checks
    and alpha = 1/(1 + omega) come from ``pq.methods.DIANA``; the hooks replace its kernel."""

    def init_state(self, d, m, x0):
        return State(h_workers=np.zeros((m, d)), h=np.zeros(d), alpha=self.resolved_alpha(d))

    def worker(self, i, v, state, ctx):
        state.h_workers[i] += state.alpha * ctx.compress(v - state.h_workers[i])

    def server(self, state, ctx):
        step = ctx.lr * (state.h + ctx.aggregate(ctx.weights / ctx.prob))  # unbiased under sampling
        state.h += state.alpha * ctx.weighted_sum(ctx.weights)  # the exact mean of the h_i
        return step
