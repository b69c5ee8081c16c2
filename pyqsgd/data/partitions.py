"""Splitting sample indices across workers: iid, Dirichlet label skew, volume skew (ALGORITHMS §5)."""
from __future__ import annotations

import numpy as np

from .._validate import check_float, check_int
from ._common import TAG_PARTITION, as_labels, is_int, log_volumes, rng_for, split_counts

__all__ = ["partition", "SCHEMES"]

SCHEMES = ("iid", "dirichlet", "size_skew")


def partition(n_or_labels, n_workers, scheme="iid", alpha=None, skew=None, min_size=1, key=0):
    """Splits ``n`` samples into ``n_workers`` disjoint shards that cover every sample.

    Parameters
    ----------
    n_or_labels : int or array_like, shape (n,)
        The number of samples, or one label per sample (numbers or strings; any set of
        classes). ``"dirichlet"`` and ``size_skew`` with ``alpha`` need labels.
    n_workers : int
        Number of shards ``m``, ``1 <= m <= n``.
    scheme : {"iid", "dirichlet", "size_skew"}
        * ``"iid"``: shuffle, then split into ``m`` near-equal shards (the first ``n % m``
          workers get one extra sample). Labels, if given, are ignored.
        * ``"dirichlet"``: for each class, proportions ``p ~ Dir(alpha * 1_m)`` over workers;
          the class's shuffled samples are dealt out in those proportions (largest-remainder
          rounding). Small ``alpha`` ⇒ strong label skew; ``alpha -> inf`` ⇒ iid labels.
        * ``"size_skew"``: volumes log-spaced from ``skew`` down to 1, normalised to ``n``
          (worker 0 largest, sizes non-increasing, each within one sample of its real target,
          so ``size[0] / size[-1] ≈ skew``). Without ``alpha`` the samples are a random
          shuffle; with ``alpha`` (the DAGC split, ALGORITHMS §4.5) worker ``i`` aims at the
          label mix it would get from ``"dirichlet"`` with the same ``alpha``; workers are
          filled smallest first, and when a class runs out the shortfall is taken from the
          classes still available, in proportion to the worker's mix (or to what is left).
    alpha : float > 0, optional
        Dirichlet concentration; required by ``"dirichlet"``, optional for ``"size_skew"``.
    skew : float >= 1, optional
        Ratio of the largest to the smallest volume; required by ``"size_skew"``.
    min_size : int >= 0
        Every shard gets at least this many samples (needs ``m * min_size <= n``). Shards
        that come out smaller are repaired deterministically, one sample at a time: the
        currently largest shard (highest index on ties) gives one sample of its most
        frequent class (lowest class on ties) to the smallest-index deficient shard.
        No resampling, so the loop always ends and the result stays a pure function.
    key : int or pyqsgd.Key
        Seed; the result is a pure function of all arguments (for a given NumPy version).

    Returns
    -------
    list of np.ndarray
        ``m`` sorted int64 index arrays, pairwise disjoint, whose union is ``range(n)``.

    Examples
    --------
    >>> import numpy as np
    >>> from pyqsgd.data import partition
    >>> [len(p) for p in partition(10, 3)]
    [4, 3, 3]
    >>> labels = np.repeat([0, 1, 2], 100)
    >>> parts = partition(labels, 5, scheme="dirichlet", alpha=0.1, key=1)
    >>> sum(len(p) for p in parts), min(len(p) for p in parts) >= 1
    (300, True)
    >>> [len(p) for p in partition(1100, 3, scheme="size_skew", skew=10)]
    [777, 245, 78]
    """
    owner = "partition"
    n, codes = _samples(n_or_labels, owner)
    m = check_int(owner, "n_workers", n_workers, low=1)
    if m > n:
        raise ValueError(f"{owner}: n_workers must be <= the number of samples n={n}, got n_workers={m}")
    if not isinstance(scheme, str):
        raise TypeError(f"{owner}: scheme must be a string, one of {SCHEMES}, got {scheme!r}")
    if scheme not in _SCHEMES:
        raise ValueError(f"{owner}: unknown scheme {scheme!r}; choose one of {SCHEMES}")
    min_size = check_int(owner, "min_size", min_size, low=0)
    if m * min_size > n:
        raise ValueError(f"{owner}: min_size={min_size} is impossible with n={n} samples and "
                         f"n_workers={m} (needs n_workers * min_size <= n)")
    alpha = check_float(owner, "alpha", alpha, low=0.0, low_open=True, allow_none=True)
    skew = check_float(owner, "skew", skew, low=1.0, allow_none=True)
    _check_scheme_args(owner, scheme, codes, alpha, skew)
    rng = rng_for(key, TAG_PARTITION)
    pools, counts = _SCHEMES[scheme](rng, n, m, codes, alpha, skew, min_size)
    return _materialize(pools, counts)


def _samples(n_or_labels, owner):
    if is_int(n_or_labels) or (isinstance(n_or_labels, np.ndarray) and n_or_labels.ndim == 0
                               and n_or_labels.dtype.kind in "iu"):
        return check_int(owner, "n_or_labels", int(n_or_labels), low=1), None
    if isinstance(n_or_labels, (bool, np.bool_, float, np.floating, str, bytes)) or n_or_labels is None:
        raise TypeError(f"{owner}: n_or_labels must be an int sample count or a 1-D label array, "
                        f"got {n_or_labels!r}")
    _, codes = as_labels(n_or_labels, owner, "n_or_labels")
    return codes.size, codes


def _check_scheme_args(owner, scheme, codes, alpha, skew):
    if scheme == "iid":
        for name, value in (("alpha", alpha), ("skew", skew)):
            if value is not None:
                raise ValueError(f"{owner}: {name} is not used by scheme='iid'; leave it None "
                                 "(use scheme='dirichlet' or 'size_skew')")
    elif scheme == "dirichlet":
        if alpha is None:
            raise ValueError(f"{owner}: scheme='dirichlet' needs alpha > 0 (e.g. alpha=0.5)")
        if skew is not None:
            raise ValueError(f"{owner}: skew is not used by scheme='dirichlet'; use scheme='size_skew' "
                             "with alpha for volume and label skew together")
    elif skew is None:
        raise ValueError(f"{owner}: scheme='size_skew' needs skew >= 1 (largest / smallest volume)")
    if codes is None and alpha is not None:
        raise ValueError(f"{owner}: alpha (Dirichlet label skew) needs labels; pass a label array "
                         "as n_or_labels instead of a sample count")


def _iid(rng, n, m, codes, alpha, skew, min_size):
    counts = np.full(m, n // m, dtype=np.int64)
    counts[: n % m] += 1
    return [rng.permutation(n)], counts[:, None]


def _dirichlet(rng, n, m, codes, alpha, skew, min_size):
    sizes = np.bincount(codes)
    props = _dirichlet_props(rng, m, sizes.size, alpha)
    counts = np.stack([split_counts(int(size), props[:, c]) for c, size in enumerate(sizes)], axis=1)
    _repair(counts, min_size)
    return _class_pools(rng, codes), counts


def _size_skew(rng, n, m, codes, alpha, skew, min_size):
    volumes = log_volumes(n, m, skew)[:, None]
    _repair(volumes, min_size)
    if alpha is None:
        return [rng.permutation(n)], volumes
    available = np.bincount(codes).astype(np.int64)
    shares = _dirichlet_props(rng, m, available.size, alpha) * available  # what "dirichlet" would deal
    totals = shares.sum(axis=1, keepdims=True)
    mixes = np.where(totals > 0, shares / np.where(totals > 0, totals, 1.0), available / n)
    return _class_pools(rng, codes), _fill(volumes[:, 0], mixes, available)


_SCHEMES = {"iid": _iid, "dirichlet": _dirichlet, "size_skew": _size_skew}


def _dirichlet_props(rng, m, n_classes, alpha):
    """(m, C) matrix whose column c is p_c ~ Dir(alpha * 1_m), drawn in class order."""
    props = np.empty((m, n_classes))
    for c in range(n_classes):
        p = rng.dirichlet(np.full(m, alpha))
        if not np.all(np.isfinite(p)) or p.sum() <= 0:  # very small alpha on an old NumPy
            p = np.zeros(m)
            p[rng.integers(m)] = 1.0
        props[:, c] = p
    return props


def _class_pools(rng, codes):
    """Each class's sample indices, shuffled (class order = sorted labels)."""
    order = np.argsort(codes, kind="stable")
    bounds = np.cumsum(np.bincount(codes))[:-1]
    return [rng.permutation(idx) for idx in np.split(order, bounds)]


def _repair(counts, min_size):
    """In place: moves single samples from the largest shard until every shard has min_size."""
    sizes = counts.sum(axis=1)
    while True:
        low = np.flatnonzero(sizes < min_size)
        if low.size == 0:
            return
        donor = sizes.size - 1 - int(np.argmax(sizes[::-1]))  # highest index among the largest
        c = int(np.argmax(counts[donor]))
        counts[donor, c] -= 1
        counts[low[0], c] += 1
        sizes[donor] -= 1
        sizes[low[0]] += 1


def _fill(volumes, mixes, available):
    """(m, C) counts with row sums = volumes, column sums = available, rows close to mixes."""
    m, n_classes = mixes.shape
    counts = np.zeros((m, n_classes), dtype=np.int64)
    left = available.copy()
    for i in range(m - 1, -1, -1):  # smallest volume first: small shards get the mix they asked for
        need, take = int(volumes[i]), np.zeros(n_classes, dtype=np.int64)
        weights = mixes[i]
        while need > 0:
            room = left - take
            w = np.where(room > 0, weights, 0.0)
            if w.sum() <= 0:
                w = room.astype(np.float64)
            got = np.minimum(split_counts(need, w), room)
            if got.sum() == 0:  # only rounding could do this: fall back to what is left
                weights = room.astype(np.float64)
                continue
            take += got
            need -= int(got.sum())
        counts[i] = take
        left -= take
    return counts


def _materialize(pools, counts):
    chunks = [[] for _ in range(counts.shape[0])]
    for c, pool in enumerate(pools):
        for i, piece in enumerate(np.split(pool, np.cumsum(counts[:, c])[:-1])):
            chunks[i].append(piece)
    return [np.sort(np.concatenate(ch)).astype(np.int64, copy=False) for ch in chunks]
