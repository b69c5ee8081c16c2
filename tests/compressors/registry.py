"""The registry of compressor configurations every shared test runs over.

Each entry states, independently of the library, what ALGORITHMS.md §1–2 promises: the exact
payload bits for dimension d, whether the compressor is unbiased, and its omega / delta. The
formulas are written out here (not read from `properties`), so a wrong `properties` or a wrong
encoder fails the suite.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import pyqsgd as pq


def ceil_log2(n):
    """ceil(log2 n) for n >= 1, in integers (float log2 misrounds near powers of two)."""
    return (n - 1).bit_length()


def kept(d, k=None, ratio=None, rounding="round"):
    """ALGORITHMS.md: k, or max(1, round(ratio d)) with halves rounded up; with
    rounding="floor" max(1, floor(ratio d)) (GRACE's and EF21's convention)."""
    if k is not None:
        return k
    return max(1, math.floor(ratio * d) if rounding == "floor" else math.floor(ratio * d + 0.5))


def index_bits(k, d):
    """A k-subset of [0, d): k ceil(log2 d) bits as a list, or a d-bit bitmap if smaller."""
    return min(k * ceil_log2(d), d)


def qsgd_width(s):
    return 1 + ceil_log2(s + 1)  # sign + level in [0, s]


def qsgd_omega(d, s):
    return min(d / s**2, math.sqrt(d) / s)


@dataclass(frozen=True)
class Config:
    id: str
    make: Callable[[], pq.Compressor]
    bits: Callable[[int], int]  # exact payload bits for dimension d
    unbiased: bool
    omega: Optional[Callable[[int], float]] = None  # declared U(omega), if any
    delta: Optional[Callable[[int], float]] = None  # declared B(delta), if any
    random: bool = True  # output depends on the key
    min_d: int = 1  # smallest d the parameters allow
    selector: bool = False  # can start a chain


K = 5  # k of the sparsifiers: small so that d = 20 tests are meaningful

CONFIGS = [
    Config("Identity", lambda: pq.Identity(), lambda d: 32 * d, True, omega=lambda d: 0.0, delta=lambda d: 1.0,
           random=False, selector=True),
    Config("TopK-k", lambda: pq.TopK(k=K), lambda d: 32 * K + index_bits(K, d), False, delta=lambda d: K / d,
           random=False, min_d=K, selector=True),
    Config("TopK-ratio", lambda: pq.TopK(ratio=0.25), lambda d: 32 * kept(d, ratio=0.25) +
           index_bits(kept(d, ratio=0.25), d), False, delta=lambda d: kept(d, ratio=0.25) / d, random=False,
           selector=True),
    # ratio 0.29: floor and round differ for most d (d = 20: 5 vs 6; d = 100: 28 vs 29).
    Config("TopK-ratio-floor", lambda: pq.TopK(ratio=0.29, rounding="floor"),
           lambda d: 32 * kept(d, ratio=0.29, rounding="floor") + index_bits(kept(d, ratio=0.29, rounding="floor"), d),
           False, delta=lambda d: kept(d, ratio=0.29, rounding="floor") / d, random=False, selector=True),
    Config("RandK-shared", lambda: pq.RandK(k=K), lambda d: 32 * K, True, omega=lambda d: d / K - 1, min_d=K,
           selector=True),
    Config("RandK-sent", lambda: pq.RandK(k=K, shared_seed=False), lambda d: 32 * K + index_bits(K, d), True,
           omega=lambda d: d / K - 1, min_d=K, selector=True),
    Config("RandK-ratio", lambda: pq.RandK(ratio=0.25), lambda d: 32 * kept(d, ratio=0.25), True,
           omega=lambda d: d / kept(d, ratio=0.25) - 1, selector=True),
    Config("RandK-ratio-floor", lambda: pq.RandK(ratio=0.29, rounding="floor"),
           lambda d: 32 * kept(d, ratio=0.29, rounding="floor"), True,
           omega=lambda d: d / kept(d, ratio=0.29, rounding="floor") - 1, selector=True),
    Config("Sign", lambda: pq.Sign(), lambda d: d, False, random=False),
    Config("ScaledSign", lambda: pq.ScaledSign(), lambda d: d + 32, False, delta=lambda d: 1 / d, random=False),
    Config("QSGD-1", lambda: pq.QSGD(levels=1), lambda d: 32 + d * qsgd_width(1), True,
           omega=lambda d: qsgd_omega(d, 1)),
    Config("QSGD-4", lambda: pq.QSGD(levels=4), lambda d: 32 + d * qsgd_width(4), True,
           omega=lambda d: qsgd_omega(d, 4)),
    Config("QSGD-16", lambda: pq.QSGD(levels=16), lambda d: 32 + d * qsgd_width(16), True,
           omega=lambda d: qsgd_omega(d, 16)),
    Config("QSGD-1000", lambda: pq.QSGD(levels=1000), lambda d: 32 + d * qsgd_width(1000), True,
           omega=lambda d: qsgd_omega(d, 1000)),
    Config("TernGrad", lambda: pq.TernGrad(), lambda d: 32 + 2 * d, True, omega=lambda d: (math.sqrt(d) - 1) / 2),
    Config("Natural", lambda: pq.Natural(), lambda d: 9 * d, True, omega=lambda d: 1 / 8),
    # chain(a, b): b sees the kept values; bits add; omega / delta per combine.py's docstring.
    Config("chain-TopK-QSGD", lambda: pq.chain(pq.TopK(k=K), pq.QSGD(levels=4)),
           lambda d: index_bits(K, d) + 32 + K * qsgd_width(4), False,
           delta=lambda d: K / d * (1 - qsgd_omega(K, 4)), min_d=K),
    Config("chain-RandK-QSGD", lambda: pq.chain(pq.RandK(k=K), pq.QSGD(levels=2)),
           lambda d: 32 + K * qsgd_width(2), True,
           omega=lambda d: (1 + d / K - 1) * (1 + qsgd_omega(K, 2)) - 1, min_d=K),
    Config("chain-RandKsent-TernGrad", lambda: pq.chain(pq.RandK(k=K, shared_seed=False), pq.TernGrad()),
           lambda d: index_bits(K, d) + 32 + 2 * K, True,
           omega=lambda d: (d / K) * (1 + (math.sqrt(K) - 1) / 2) - 1, min_d=K),
    Config("chain-Identity-QSGD", lambda: pq.chain(pq.Identity(), pq.QSGD(levels=4)),
           lambda d: 32 + d * qsgd_width(4), True, omega=lambda d: qsgd_omega(d, 4)),
    Config("chain-Identity-Sign", lambda: pq.chain(pq.Identity(), pq.Sign()), lambda d: d, False, random=False),
    Config("chain-TopKratio-Natural", lambda: pq.chain(pq.TopK(ratio=0.25), pq.Natural()),
           lambda d: index_bits(kept(d, ratio=0.25), d) + 9 * kept(d, ratio=0.25), False,
           delta=lambda d: kept(d, ratio=0.25) / d * (1 - 1 / 8)),
    # induced(C1, C2): unbiased, omega2 (1 - delta1); bits add.
    Config("induced-TopK-RandK", lambda: pq.induced(pq.TopK(k=K), pq.RandK(k=K)),
           lambda d: 32 * K + index_bits(K, d) + 32 * K, True, omega=lambda d: (d / K - 1) * (1 - K / d), min_d=K),
    Config("induced-TopK-QSGD", lambda: pq.induced(pq.TopK(k=K), pq.QSGD(levels=4)),
           lambda d: 32 * K + index_bits(K, d) + 32 + d * qsgd_width(4), True,
           omega=lambda d: qsgd_omega(d, 4) * (1 - K / d), min_d=K),
    Config("induced-ScaledSign-Natural", lambda: pq.induced(pq.ScaledSign(), pq.Natural()),
           lambda d: d + 32 + 9 * d, True, omega=lambda d: (1 / 8) * (1 - 1 / d)),
    Config("induced-Identity-RandK", lambda: pq.induced(pq.Identity(), pq.RandK(k=K)),
           lambda d: 32 * d + 32 * K, True, omega=lambda d: 0.0, random=False, min_d=K),  # residual is 0
]

BY_ID = {c.id: c for c in CONFIGS}
IDS = [c.id for c in CONFIGS]
UNBIASED = [c for c in CONFIGS if c.unbiased]
RANDOM = [c for c in CONFIGS if c.random]
