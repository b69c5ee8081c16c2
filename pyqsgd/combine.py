"""Combinators (ALGORITHMS.md §2): ``chain(a, b)`` and ``induced(biased, unbiased)``."""
from __future__ import annotations

from . import _core
from .compressors import Compressor

__all__ = ["chain", "induced", "Chain", "Induced"]


def _need(owner, name, value):
    if not isinstance(value, Compressor):
        raise TypeError(f"{owner}: {name} must be a pyqsgd compressor, got {type(value).__name__}")


class Chain(Compressor):
    """b acts on what a keeps: ``chain(TopK(k=100), QSGD(levels=4))`` quantizes the 100 kept
    values (indices stay exact); ``chain(Truncate(...), NonUniformQuantizer(...))`` quantizes
    the clipped vector. Bits add up. The first stage must keep a sub-vector (TopK, RandK,
    Threshold, Truncate, Identity). Keys: a uses child stream 0, b child stream 1.

    Constants: both unbiased -> U((1 + wa)(1 + wb) - 1); a in B(da) and b in U(wb) with wb < 1
    -> B(da (1 - wb)); a in B(da), b in B(db) -> B(da db); otherwise none.
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

    def __repr__(self):
        return f"chain({self.a!r}, {self.b!r})"


class Induced(Compressor):
    """Induced compressor (Horváth & Richtárik, ICLR 2021): C(x) = C1(x) + C2(x - C1(x)).

    C2 must be unbiased; then C is unbiased, with omega = omega2 (1 - delta1) when C1 is in
    B(delta1): induced(TopK(k1), RandK(k2)) has omega = (d/k2 - 1)(1 - k1/d). Bits = bits(C1)
    + bits(C2). Keys: C1 uses child stream 0, C2 child stream 1.
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

    def __repr__(self):
        return f"induced({self.c1!r}, {self.c2!r})"


def chain(a, b):
    """``Chain(a, b)``: b compresses what a keeps. See :class:`Chain`."""
    return Chain(a, b)


def induced(biased, unbiased):
    """``Induced(biased, unbiased)``: an unbiased compressor from a biased one. See :class:`Induced`."""
    return Induced(biased, unbiased)
