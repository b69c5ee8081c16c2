"""Helpers shared by the data modules: keyed NumPy generators, labels, integer splits."""
from __future__ import annotations

import numbers

import numpy as np

from .._validate import as_key

__all__ = ["rng_for", "as_labels", "split_counts", "log_volumes"]

# One fixed tag per consumer, so the same key drives independent streams in different functions
# (partition(key=0) and synthetic_logistic(key=0) never share draws).
TAG_PARTITION = 0x50415254  # "PART"
TAG_SYNTHETIC = 0x53594E54  # "SYNT"


def rng_for(key, tag, *path):
    """A fresh ``np.random.Generator`` addressed by ``(tag, key, *path)``; never the global RNG.

    ``key`` is an int seed or a ``pyqsgd.Key`` (all four of its fields address the stream).
    """
    k = as_key(key)
    entropy = [int(tag), k.seed, k.round, k.worker, k.stream, *(int(p) for p in path)]
    return np.random.default_rng(np.random.SeedSequence(entropy))


def as_labels(labels, owner, name="labels"):
    """Validates a 1-D label array; returns ``(classes, codes)`` with ``codes`` int64 in 0..C-1."""
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"{owner}: {name} must be 1-D (one label per sample), got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{owner}: {name} must be non-empty")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise ValueError(f"{owner}: {name} contains NaN or infinite values")
    if arr.dtype.kind not in "biuUSf":
        raise TypeError(f"{owner}: {name} must hold numbers or strings, got dtype {arr.dtype}")
    classes, codes = np.unique(arr, return_inverse=True)
    return classes, codes.reshape(-1).astype(np.int64)


def split_counts(total, weights):
    """Splits the int ``total`` into non-negative ints proportional to ``weights`` (largest remainder).

    The parts sum to ``total`` exactly and each is within 1 of its real share. Ties in the
    remainders go to the smaller index, so the result is deterministic.
    """
    w = np.asarray(weights, dtype=np.float64)
    s = w.sum()
    if total == 0 or s <= 0:
        return np.zeros(w.shape, dtype=np.int64)
    share = total * (w / s)
    counts = np.floor(share).astype(np.int64)
    rest = int(total - counts.sum())
    if rest > 0:
        order = np.argsort(-(share - counts), kind="stable")
        counts[order[:rest]] += 1
    return counts


def log_volumes(n, m, skew):
    """Integer volumes for ``m`` workers summing to ``n``, log-spaced from ``skew`` down to 1.

    Worker 0 is the largest; the result is non-increasing and each entry is within 1 of its
    real target ``n * v_i / sum(v)`` with ``v_i = skew ** ((m - 1 - i) / (m - 1))``.
    """
    if m == 1:
        return np.array([n], dtype=np.int64)
    v = np.asarray(skew, dtype=np.float64) ** (np.arange(m - 1, -1, -1) / (m - 1))
    # Sorting a rounding of a sorted sequence keeps every entry within 1 of its target.
    return np.sort(split_counts(n, v))[::-1].copy()


def is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))
