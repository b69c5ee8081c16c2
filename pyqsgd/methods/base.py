"""Method base: a parameter record that builds a fresh native method (with zeroed state) for
each simulation run."""
from __future__ import annotations

import threading

import numpy as np

from .._params import Params
from .._validate import check_float
from ..aggregators import Aggregator, Mean
from ..compressors import Compressor

# Per-thread shard sizes of the build in progress, by id of the method being built (Method.build).
_BUILDING = threading.local()

__all__ = ["Method"]


def _compressor_list(owner, compressor):
    if isinstance(compressor, Compressor):
        return [compressor]
    if isinstance(compressor, (list, tuple)) and compressor and all(isinstance(c, Compressor) for c in compressor):
        return list(compressor)
    raise TypeError(f"{owner}: compressor must be a pyqsgd compressor or a non-empty list of them "
                    f"(one per worker), got {compressor!r}")


def _check_combine(method):
    agg = getattr(method, "aggregator", None)
    if agg is not None and agg._is_python() and not type(method)._supports_combine:
        raise TypeError(f"{type(method).__name__}: aggregates in its own way (a vote or the lazy rule), so an "
                        f"aggregator with its own combine() ({type(agg).__name__}) cannot replace it; use Mean() "
                        "or WeightedMean(...), or a method that aggregates a sum (DCGD, EF, EF21, DIANA, DAGC)")


class Method(Params):
    """Common parameters of every method.

    Parameters
    ----------
    compressor : Compressor or list of Compressor
        The uplink compressor, or one per worker (any per-worker scheme, e.g. DAGC).
    aggregator : Aggregator, default Mean()
        How the server weights workers (``WeightedMean("data")`` targets the full-data objective
        on unequal shards).
    server_momentum : float in [0, 1), default 0
        Heavy-ball momentum on the server step: v <- beta v + step; x <- x - v.
    downlink : Compressor or None
        Compresses the server's broadcast step (bits counted in bits_down); None broadcasts
        32 d bits per round.
    """

    # Methods whose update needs an unbiased compressor set this (DIANA).
    _needs_unbiased = False
    # Methods whose server forms its estimator through Method::aggregate, so that an Aggregator
    # written in Python (an overridden combine) can replace the weighted sum. Votes and the lazy
    # rule aggregate in their own way and set this to False.
    _supports_combine = True

    def __init__(self, compressor, *, aggregator=None, server_momentum=0.0, downlink=None):
        self.compressor = compressor
        self.aggregator = aggregator
        self.server_momentum = server_momentum
        self.downlink = downlink
        self._validate()

    def _validate(self):
        name = type(self).__name__
        _compressor_list(name, self.compressor)
        if self.aggregator is not None and not isinstance(self.aggregator, Aggregator):
            raise TypeError(f"{name}: aggregator must be a pyqsgd aggregator (Mean(), WeightedMean(...)), "
                            f"got {self.aggregator!r}")
        _check_combine(self)
        check_float(name, "server_momentum", self.server_momentum, low=0.0, high=1.0, high_open=True)
        if self.downlink is not None and not isinstance(self.downlink, Compressor):
            raise TypeError(f"{name}: downlink must be a pyqsgd compressor or None, got {self.downlink!r}")

    @property
    def compressors(self):
        return _compressor_list(type(self).__name__, self.compressor)

    def worker_weights(self, sizes):
        """Normalised aggregation weights for shards of the given sizes."""
        agg = self.aggregator if self.aggregator is not None else Mean()
        return agg.worker_weights(np.asarray(sizes, dtype=np.float64))

    def compressors_for(self, sizes, d):
        """The compressors to run for shards of the given sizes: one shared, or one per worker.

        Methods that choose per-worker compression from data volumes (DAGC) override this.
        """
        return self.compressors

    def _native_compressors(self, d, m):
        sizes = _BUILDING.__dict__.get(id(self))
        cs = self.compressors_for(sizes if sizes is not None else [1.0] * m, d)
        if len(cs) not in (1, m):
            raise ValueError(f"{type(self).__name__}: got {len(cs)} compressors for {m} workers; "
                             "give one compressor, or one per worker")
        return [c._native for c in cs]

    def _make(self, d, m):  # pragma: no cover - every subclass overrides
        raise TypeError(f"{type(self).__name__} cannot run natively")

    def build(self, d, m, sizes=None):
        """A fresh native method for dimension d and m workers (state zeroed); ``sizes`` are the
        shard sizes (data volumes), used by methods that adapt compression per worker."""
        if sizes is not None and len(sizes) != m:
            raise ValueError(f"{type(self).__name__}.build: {len(sizes)} shard sizes for {m} workers")
        # The sizes reach _native_compressors (called from inside _make) through a per-thread
        # slot keyed by this object, not through the object itself: a method shared by threads
        # (simulate in a thread pool) must not see another run's shard sizes.
        slots = _BUILDING.__dict__
        previous = slots.get(id(self))
        slots[id(self)] = None if sizes is None else [float(s) for s in sizes]
        try:
            native = self._make(d, m)
        finally:
            if previous is None:
                slots.pop(id(self), None)
            else:
                slots[id(self)] = previous
        native.momentum = float(self.server_momentum)
        if self.downlink is not None:
            native.downlink = self.downlink._native
        if self.aggregator is not None and self.aggregator._is_python():
            native.combiner = self.aggregator._native_combiner()
        return native

    def __repr__(self):
        args = [repr(self.compressor)] + [a for a in self._repr_args() if not a.startswith("compressor=")]
        return f"{type(self).__name__}({', '.join(args)})"
