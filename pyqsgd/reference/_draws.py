"""The random draws and reductions the native kernels use, reproduced in NumPy.

Draws come from the library's own Philox stream (``_core.philox_u32`` / ``philox_u64``), so a
twin consumes exactly the numbers the C++ kernel consumed. Sums follow the kernel's order
(``lane_sum8`` in ``cpp/src/compressor.cpp``): fixed blocks of 16384, inside a block 8
interleaved double lanes added in index order, lanes then blocks added in order. ``np.cumsum``
adds strictly left to right, which is what makes the result bit-identical.
"""
from __future__ import annotations

import numpy as np

from .. import _core

__all__ = ["as_key", "raw_u32", "uniform", "subset", "ordered_sum", "norm1", "norm2"]

BLOCK = 1 << 14


def as_key(key):
    return key if isinstance(key, _core.Key) else _core.Key(seed=int(key))


def raw_u32(key, n):
    """Draws 0..n-1 of the stream (draw j decides coordinate j in the quantizers)."""
    return _core.philox_u32(as_key(key), 0, n)


def uniform(key, n):
    """float32 uniforms in [0, 1) with 24 random bits: (u32 >> 8) * 2^-24."""
    return (raw_u32(key, n) >> np.uint32(8)).astype(np.float32) * np.float32(2.0**-24)


def subset(key, d, k):
    """Floyd's uniform k-subset of [0, d), sorted; draw i (64-bit) decides step i."""
    u = _core.philox_u64(as_key(key), 0, k)
    taken = np.zeros(d, bool)
    for i in range(k):
        j = d - k + i
        t = (int(u[i]) * (j + 1)) >> 64  # multiply-shift: uniform in [0, j]
        taken[j if taken[t] else t] = True
    return np.flatnonzero(taken)


def _seq(v):
    """Left-to-right sum starting from 0.0 (for v >= 0, 0.0 + v[0] == v[0])."""
    return float(np.cumsum(v)[-1]) if len(v) else 0.0


def ordered_sum(terms):
    """Sum of non-negative float64 terms in the kernel's block / lane order."""
    parts = []
    for lo in range(0, len(terms), BLOCK):
        blk = terms[lo:lo + BLOCK]
        pad = np.zeros(-len(blk) % 8)
        lanes = np.cumsum(np.concatenate([blk, pad]).reshape(-1, 8), axis=0)[-1]
        parts.append(_seq(lanes))
    return parts[0] if len(parts) == 1 else _seq(np.array(parts))


def norm1(x):
    return ordered_sum(np.abs(x.astype(np.float64)))


def norm2(x):
    xd = x.astype(np.float64)
    return float(np.sqrt(ordered_sum(xd * xd)))
