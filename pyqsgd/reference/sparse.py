"""Twins of TopK and RandK (ALGORITHMS.md §1), as chain stages and as compressors."""
from __future__ import annotations

import numpy as np

from ._draws import subset
from ._types import Encoded, Selected
from ._wire import pack_floats, pack_indices

__all__ = ["kept", "topk_indices", "topk_select", "topk", "randk_select", "randk"]


def kept(d, k=None, ratio=None, rounding="round"):
    """k, or max(1, round-half-up(ratio d)) ("round"), or max(1, floor(ratio d)) ("floor")."""
    if k is not None:
        return int(k)
    return max(1, int(np.floor(ratio * d if rounding == "floor" else ratio * d + 0.5)))


def topk_indices(x, k):
    """Sorted indices of the k largest ``|x_j|``; ties toward the smaller index."""
    mag = np.abs(x.astype(np.float32))
    order = np.lexsort((np.arange(x.size), -mag.astype(np.float64)))  # by -|x|, then index
    return np.sort(order[:k])


def topk_select(x, key=None, *, k):
    idx = topk_indices(x, k)
    return Selected([pack_indices(idx, x.size)], idx, x[idx].copy())


def _scatter(sel, d):
    y = np.zeros(d, np.float32)
    y[sel.indices] = sel.values
    return y


def topk(x, key=None, *, k):
    sel = topk_select(x, k=k)
    return Encoded(sel.sections + [pack_floats(sel.values)], _scatter(sel, x.size))


def randk_select(x, key, *, k, shared_seed=True):
    d = x.size
    idx = subset(key, d, k)
    values = x[idx] * np.float32(d / k)  # float32(d/k) times float32 x_j, like the kernel
    return Selected([] if shared_seed else [pack_indices(idx, d)], idx, values.astype(np.float32))


def randk(x, key, *, k, shared_seed=True):
    sel = randk_select(x, key, k=k, shared_seed=shared_seed)
    return Encoded(sel.sections + [pack_floats(sel.values)], _scatter(sel, x.size))
