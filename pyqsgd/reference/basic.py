"""Twins of Identity, Sign and ScaledSign (ALGORITHMS.md §1)."""
from __future__ import annotations

import numpy as np

from ._draws import norm1
from ._types import Encoded, Selected
from ._wire import pack, pack_floats

__all__ = ["identity", "identity_select", "sign", "scaled_sign"]


def identity(x, key=None):
    return Encoded([pack_floats(x)], x.copy())


def identity_select(x, key=None):
    return Selected([], None, x.copy())


def sign(x, key=None):
    neg = x < 0  # sign(0) = +1, and -0.0 < 0 is False
    return Encoded([pack(neg, 1)], np.where(neg, np.float32(-1), np.float32(1)))


def scaled_sign(x, key=None):
    neg = x < 0
    scale = np.float32(norm1(x) / x.size)
    y = np.where(neg, -scale, scale).astype(np.float32)
    return Encoded([pack(neg, 1), pack_floats([scale])], y)
