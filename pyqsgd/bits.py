"""Bit accounting: how pyqsgd counts, and the papers' unit (32 bits per transmitted float).

How pyqsgd counts
-----------------
``hist.bits_up`` (and ``bits_down``, ``worker_bits_up``) are the exact lengths of the encoded
payloads that went over the wire (the wire header and checksum excluded): every value, every
index, every scale. For ``TopK(k)`` on dimension d one message is

    32 k + min(k ceil(log2 d), d)   bits   (float32 values + sorted indices or a d-bit bitmap),

for ``RandK(k)`` 32 k (indices regenerated from the shared key) or 32 k + the index bits
(``shared_seed=False``), for ``Identity`` 32 d, for sign compressors d (+ 32 for the scale).
A worker that skips adds only its flag bits.

The papers' unit
----------------
The seed papers and their public code (GRACE, Horváth & Richtárik's induced-compressor code,
EF21's code, DAGC) report communication of a sparsifier as 32 k bits per message: 32 bits per
transmitted float, indices free. pyqsgd's count is larger by the index bits, so for TopK on
d = 10^4 with k = 100 pyqsgd counts 3200 + 1400 = 4600 bits where the papers count 3200. To
state a pyqsgd result in the papers' unit, count the floats sent:

>>> import numpy as np, pyqsgd as pq
>>> X = np.random.default_rng(0).standard_normal((200, 10)).astype(np.float32)
>>> prob = pq.problems.LogisticRegression(X, np.sign(X[:, 0]).astype(np.float32))
>>> hist = pq.simulate(prob, pq.methods.EF21(pq.TopK(k=2)), n_workers=4, rounds=3, lr=0.1, key=0)
>>> hist.bits_up.tolist()                       # exact: 4 workers x (2 x 32 + 2 x 4 index bits)
[0, 288, 576, 864]
>>> pq.bits.float_count(hist, pq.TopK(k=2)).tolist()
[0, 8, 16, 24]
>>> pq.bits.paper_bits(hist, pq.TopK(k=2)).tolist()   # 32 per float, indices free
[0, 256, 512, 768]

Only the uplink is converted (the papers' plots are uplink bits); ``bits_down`` is unchanged.
The papers' unit is defined for messages that are a list of float values: :func:`floats_per_message`
accepts ``Identity``, ``TopK`` and ``RandK``, and refuses quantizers, sign compressors and chains
(their papers count those in bits already; use ``bits_up``).
"""
from __future__ import annotations

import numpy as np

from .compressors import Compressor, Identity, RandK, TopK
from .history import History
from ._validate import check_int

__all__ = ["floats_per_message", "float_count", "paper_bits", "FLOAT_BITS"]

#: Bits per transmitted float in the papers' unit.
FLOAT_BITS = 32


def floats_per_message(compressor, d):
    """Number of float values one message of ``compressor`` carries on dimension ``d``:
    d for Identity, k (``compressor.kept(d)``, after its ``rounding``) for TopK and RandK.

    >>> import pyqsgd as pq
    >>> pq.bits.floats_per_message(pq.TopK(ratio=0.29, rounding="floor"), 100)
    28
    """
    d = check_int("floats_per_message", "d", d, low=1)
    if isinstance(compressor, Identity):
        return d
    if isinstance(compressor, (TopK, RandK)):
        return compressor.kept(d)
    raise TypeError(f"floats_per_message: the papers' unit (32 bits per float, indices free) is defined for "
                    f"Identity, TopK and RandK, got {compressor!r}; report bits_up for other compressors")


def _columns(source):
    """(uploads, skipped, bits_up, worker_bits_up or None, d or None) of a History or a frame."""
    if isinstance(source, History):
        wb = source.worker_bits_up if source.worker_bits_up.size else None
        return source.uploads, source.skipped, source.bits_up, wb, source.meta.get("dataset_d")
    try:
        cols = {name: np.asarray(source[name]) for name in ("uploads", "skipped", "bits_up")}
    except (KeyError, TypeError, IndexError) as e:
        raise TypeError("float_count: source must be a History or its to_frame() (columns uploads, skipped, "
                        f"bits_up), got {type(source).__name__}") from e
    attrs = getattr(source, "attrs", {}) or {}
    return cols["uploads"], cols["skipped"], cols["bits_up"], None, attrs.get("dataset_d")


def _message_bits(compressor, d):
    # Every accepted compressor has a data-independent length; encode a vector of ones.
    return int(compressor.compress(np.ones(d, np.float32), key=0).bits)


def float_count(source, compressors, *, d=None, sizes=None):
    """Cumulative uplink floats of a run, one entry per logged round (the papers' count / 32).

    Parameters
    ----------
    source : History or pandas.DataFrame
        A run (``hist``) or its ``hist.to_frame()``.
    compressors : Compressor, list of Compressor, or Method
        What the workers sent: one compressor for all, one per worker (needs a History: the
        per-worker uploads are read from ``worker_bits_up``), or the method itself (its
        ``compressors_for(sizes, d)``; give ``sizes``, the shard sizes, for DAGC).
    d : int, optional
        Dimension; defaults to the run's ``dataset_d``.
    sizes : array_like, optional
        Shard sizes for a method that plans per-worker compressors (DAGC).

    Returns
    -------
    np.ndarray of int64: cumulative floats sent up to each logged round.

    The count is checked against the run: bits_up must equal uploads x (one message's bits)
    (plus flag bits of skipped uploads), or ``ValueError`` says the compressors do not match.
    """
    uploads, skipped, bits_up, worker_bits, d_run = _columns(source)
    d = d_run if d is None else d
    if d is None:
        raise ValueError("float_count: the run does not record its dimension; pass d=")
    d = check_int("float_count", "d", d, low=1)
    if not isinstance(compressors, (Compressor, list, tuple)):
        if not hasattr(compressors, "compressors_for"):
            raise TypeError(f"float_count: compressors must be a compressor, a list of them or a method, "
                            f"got {compressors!r}")
        m = None if worker_bits is None else worker_bits.shape[1]
        if sizes is None:
            sizes = [1.0] * (m or 1)
        compressors = compressors.compressors_for(sizes, d)
    if isinstance(compressors, Compressor):
        compressors = [compressors]
    compressors = list(compressors)
    if len(compressors) == 1:
        c = compressors[0]
        per, b = floats_per_message(c, d), _message_bits(c, d)
        sent = uploads.astype(np.int64) * b
        if np.any(bits_up < sent) or (not np.any(skipped) and np.any(bits_up != sent)):
            raise ValueError(f"float_count: the run's bits_up do not match {len(uploads)} rows of uploads x {b} bits "
                             f"per {c!r} message on d={d}; was it run with this compressor?")
        return uploads.astype(np.int64) * per
    if worker_bits is None:
        raise ValueError("float_count: per-worker compressors need a History (worker_bits_up), not a frame")
    if worker_bits.shape[1] != len(compressors):
        raise ValueError(f"float_count: {len(compressors)} compressors for {worker_bits.shape[1]} workers")
    total = np.zeros(worker_bits.shape[0], np.int64)
    for i, c in enumerate(compressors):
        per, b = floats_per_message(c, d), _message_bits(c, d)
        n_i, rest = np.divmod(worker_bits[:, i].astype(np.int64), b)
        if np.any(rest):
            raise ValueError(f"float_count: worker {i}'s bits are not a whole number of {c!r} messages "
                             f"({b} bits each on d={d}); was it run with these compressors?")
        total += n_i * per
    return total


def paper_bits(source, compressors, *, d=None, sizes=None):
    """Cumulative uplink bits in the papers' unit: 32 x :func:`float_count` (indices free)."""
    return FLOAT_BITS * float_count(source, compressors, d=d, sizes=sizes)
