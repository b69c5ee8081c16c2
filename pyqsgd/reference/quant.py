"""Twins of QSGD, TernGrad and Natural compression (ALGORITHMS.md §1)."""
from __future__ import annotations

import numpy as np

from ._draws import norm2, raw_u32, uniform
from ._types import Encoded
from ._wire import pack, pack_floats

__all__ = ["qsgd_levels", "qsgd", "terngrad", "natural"]


def qsgd_levels(x, key, s):
    """(float32 norm, levels l_j in [0, s]) exactly as the kernel rounds them."""
    nf = np.float32(norm2(x))
    if nf == 0:
        return nf, np.zeros(x.size, np.uint64)
    scale = float(s) / float(nf)  # in double: s/||x|| may overflow float32
    r = np.minimum((np.abs(x).astype(np.float64) * scale).astype(np.float32), np.float32(s))
    fl = r.astype(np.uint32)  # r >= 0: truncation is floor
    up = uniform(key, x.size) < (r - fl.astype(np.float32))
    return nf, np.minimum(fl.astype(np.uint64) + up, np.uint64(s))


def qsgd(x, key, *, levels):
    s = int(levels)
    nf, level = qsgd_levels(x, key, s)
    neg = (x < 0) & (level > 0)
    codes = (level << np.uint64(1)) | neg.astype(np.uint64)
    v = (level.astype(np.float64) * float(nf) / s).astype(np.float32)  # one rounding, like the kernel
    y = np.where(neg, -v, v).astype(np.float32)
    return Encoded([pack_floats([nf]), pack(codes, 1 + int(s).bit_length())], y)


def terngrad(x, key):
    sf = np.float32(np.abs(x).max())
    if sf == 0:
        return Encoded([pack_floats([sf]), pack(np.zeros(x.size, np.uint64), 2)], np.zeros(x.size, np.float32))
    keep = uniform(key, x.size) < np.abs(x) / sf
    neg = keep & (x < 0)
    codes = keep.astype(np.uint64) | (neg.astype(np.uint64) << np.uint64(1))
    y = np.where(keep, np.where(neg, -sf, sf), np.float32(0)).astype(np.float32)
    return Encoded([pack_floats([sf]), pack(codes, 2)], y)


def natural(x, key):
    bits = x.view(np.uint32).astype(np.uint64)
    neg, mag = bits >> np.uint64(31), bits & np.uint64(0x7FFFFFFF)
    e, mant = mag >> np.uint64(23), mag & np.uint64(0x7FFFFF)
    # Round up with probability mant / 2^23 (24-bit draw vs 2 mant); subnormals go to 0 or 2^-126.
    up = (raw_u32(key, x.size).astype(np.uint64) >> np.uint64(8)) < (mant << np.uint64(1))
    eo = np.where(e == 0, up.astype(np.uint64), e + up)
    codes = np.where(eo == 0, np.uint64(0), (eo << np.uint64(1)) | neg)
    y = np.where(eo == 0, np.uint64(0), (neg << np.uint64(31)) | (eo << np.uint64(23)))
    return Encoded([pack(codes, 9)], y.astype(np.uint32).view(np.float32))
