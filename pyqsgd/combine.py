"""Combinators (ALGORITHMS.md §2): ``chain(a, b)`` and ``induced(biased, unbiased)``."""
from __future__ import annotations

from . import _core
from .compressors import Compressor

__all__ = ["chain", "induced", "Chain", "Induced"]


def _need(owner, name, value):
    if not isinstance(value, Compressor):
        raise TypeError(f"{owner}: {name} must be a pyqsgd compressor, got {type(value).__name__}")


class Chain(Compressor):
    """chain(a, b): b acts on what a keeps.

    ``chain(TopK(k=100), QSGD(levels=4))`` quantizes the 100 kept values (indices stay exact);
    ``chain(Truncate(...), NonUniformQuantizer(...))`` quantizes the clipped vector. The first
    stage must keep a sub-vector (TopK, RandK, Threshold, Truncate, Identity).

    Notes
    -----
    Constants (b's constants taken at the kept dimension): both unbiased ->
    U((1 + wa)(1 + wb) - 1); a in B(da) and b in U(wb) with wb < 1 -> B(da (1 - wb)); a in B(da),
    b in B(db) -> B(da db); a = Identity -> b's constants; otherwise none. The cross terms
    vanish because b's error lives on the kept coordinates and a's on the dropped ones.
    Bits: a's selection bits (indices, if any) + b's bits for the kept values.
    Randomness: a uses ``key.child(0)``, b uses ``key.child(1)``.

    Examples
    --------
    >>> import numpy as np, pyqsgd as pq
    >>> c = pq.chain(pq.TopK(k=2), pq.QSGD(levels=4))
    >>> c.compress(np.arange(8.0), key=0).bits        # 2 x 3-bit indices + 32 + 2 x 4
    46
    >>> c.properties(8).delta                          # (2/8)(1 - min(2/16, sqrt(2)/4))
    0.21875
    """

    def __init__(self, a, b):
        self.a = a
        self.b = b
        self._validate()

    def _validate(self):
        _need("chain", "a", self.a)
        _need("chain", "b", self.b)
        self._native  # noqa: B018 - builds now so a bad first stage fails at construction

    def _build(self):
        return _core.Chain(self.a._native, self.b._native)

    def _python_backed(self):
        return self.a._python_backed() or self.b._python_backed()

    def __repr__(self):
        return f"chain({self.a!r}, {self.b!r})"


class Induced(Compressor):
    """Induced compressor (Horváth & Richtárik, ICLR 2021, arXiv:2006.11077):
    C(x) = C1(x) + C2(x - C1(x)).

    Notes
    -----
    C2 must be unbiased; then C is unbiased, and C1 in B(d1), C2 in U(w2) give U(w2 (1 - d1)):
    ``induced(TopK(k=k1), RandK(k=k2))`` has omega = (d/k2 - 1)(1 - k1/d). The residual is formed
    from what C1's receiver decodes, so sender and receiver agree bit for bit.
    Bits: bits(C1) + bits(C2). Randomness: C1 uses ``key.child(0)``, C2 ``key.child(1)``.

    Examples
    --------
    >>> import numpy as np, pyqsgd as pq
    >>> c = pq.induced(pq.TopK(k=2), pq.RandK(k=2))
    >>> c.properties(10).omega                         # (10/2 - 1)(1 - 2/10)
    3.2
    >>> c.compress(np.arange(10.0), key=0).bits        # TopK 2 x (32 + 4) + RandK 2 x 32
    136
    """

    def __init__(self, c1, c2):
        self.c1 = c1
        self.c2 = c2
        self._validate()

    def _validate(self):
        _need("induced", "c1", self.c1)
        _need("induced", "c2", self.c2)
        self._native  # noqa: B018

    def _build(self):
        return _core.Induced(self.c1._native, self.c2._native)

    def _python_backed(self):
        return self.c1._python_backed() or self.c2._python_backed()

    def __repr__(self):
        return f"induced({self.c1!r}, {self.c2!r})"


def chain(a, b):
    """``Chain(a, b)``: b compresses what a keeps. See :class:`Chain`."""
    return Chain(a, b)


def induced(biased, unbiased):
    """``Induced(biased, unbiased)``: an unbiased compressor from a biased one. See :class:`Induced`."""
    return Induced(biased, unbiased)
