"""Heterogeneous batch sizes per worker (signSGD-FV experiments, ALGORITHMS.md §4.3)."""
from __future__ import annotations

import numpy as np

from .._validate import check_float, check_int

__all__ = ["heterogeneous_batches"]


def heterogeneous_batches(n_workers, mean_batch, large_fraction=0.2, small=4):
    """Batch sizes where a fraction of workers use a large batch and the rest ``small``,
    keeping the mean batch size at ``mean_batch`` (exactly when the totals divide evenly).

    The large-batch workers come first. The large size is
    B = (mean_batch * m - small * (m - n_large)) / n_large, rounded; the remainder of the
    rounding is spread one sample at a time over the large workers, so sum(sizes) equals
    round(mean_batch * m) exactly.

    >>> from pyqsgd.data import heterogeneous_batches
    >>> heterogeneous_batches(10, mean_batch=8, large_fraction=0.2, small=4)
    [24, 24, 4, 4, 4, 4, 4, 4, 4, 4]
    """
    m = check_int("heterogeneous_batches", "n_workers", n_workers, low=1)
    mean = check_float("heterogeneous_batches", "mean_batch", mean_batch, low=1.0)
    frac = check_float("heterogeneous_batches", "large_fraction", large_fraction, low=0.0, high=1.0, low_open=True)
    small = check_int("heterogeneous_batches", "small", small, low=1)
    if small > mean:
        raise ValueError(f"heterogeneous_batches: small={small} exceeds mean_batch={mean}; the large workers "
                         "would need a negative batch")
    n_large = max(1, int(round(frac * m)))
    total = int(round(mean * m))
    rest = total - small * (m - n_large)
    base, extra = divmod(rest, n_large)
    sizes = [base + (1 if i < extra else 0) for i in range(n_large)] + [small] * (m - n_large)
    return sizes
