"""DAGC-R and DAGC-A (Lu et al., IEEE TMC 2024, arXiv 2311.07324; ALGORITHMS.md §4.5)."""
from __future__ import annotations

import numpy as np

from .. import _core
from .._validate import check_float
from ..aggregators import Aggregator, WeightedMean
from ..compressors import Compressor, TopK
from ..dagc import _check_rule, _volumes, assign_ratios, assign_thresholds, topk_counts
from ..threshold import Threshold
from ..combine import chain
from .base import Method, _check_combine

__all__ = ["DAGC"]

_VARIANTS = ("R", "A")


class DAGC(Method):
    """Data-aware per-worker compression: workers with more data compress less (DAGC-R and
    DAGC-A of Lu et al., IEEE TMC 2024, arXiv:2311.07324).

    The compressors are chosen from the data volumes n_i when a run starts
    (:meth:`compressors_for` receives the partition's shard sizes):

    * ``variant="R"``: TopK with per-worker ratios cr_i = :func:`pyqsgd.dagc.assign_ratios`
      (average ``mean``), turned into integer sizes k_i by :func:`pyqsgd.dagc.topk_counts` with
      sum k_i = m max(1, round(mean d)): exactly the number of values uniform
      ``TopK(ratio=mean)`` sends, so DAGC-R's uplink bits never exceed uniform TopK's.
      ``rule`` picks the assignment (see :func:`~pyqsgd.dagc.assign_ratios`).
    * ``variant="A"``: hard thresholds lambda_i = :func:`pyqsgd.dagc.assign_thresholds`
      (harmonic mean ``mean``) with :class:`pyqsgd.Threshold`. Its bits depend on the data.

    With ``error_feedback=True`` (default) the workers run error feedback (as :class:`EF`:
    p = lr v + e, Delta = C_i(p), e <- p - Delta; server x <- x - sum w_i Delta_i); otherwise
    DCGD (x <- x - lr sum w_i C_i(v)). Aggregation defaults to ``WeightedMean("data")``
    (weights n_i / sum n), so the method targets the full-data objective. Works with local steps
    (``simulate(..., local_steps=H, local_lr=...)``: v is the model change).

    Parameters
    ----------
    variant : {"R", "A"}
    rule : {"clipped", "paper"}, default "clipped"
        DAGC-R only. The default "clipped" ratios are always valid TopK ratios and do not depend
        on how the workers are numbered; that is why it is the default, although it departs
        from the authors' code. "paper" reproduces the authors' ``DAGC_R`` exactly (in worker
        order, unclipped); when it assigns some worker a ratio > 1 (TopK would keep more than d
        coordinates) the plan raises ``ValueError`` naming the worker and pointing to
        ``rule="clipped"``, rather than silently changing the paper's numbers.
    mean : float
        "R": the average TopK ratio c̄ in (0, 1]. "A": the harmonic-mean threshold c̄ > 0 (in the
        units of the compressed vector: lr-scaled gradients or model changes under EF).
    error_feedback : bool, default True
    volumes : array_like or None
        Data volumes to plan with; None (default) uses the run's shard sizes. Must have one
        entry per worker.
    quantizer : Compressor or None
        Compresses the kept values (native or written in Python): worker i sends
        ``chain(TopK(k=k_i), quantizer)`` (or ``chain(Threshold(tau=lambda_i), quantizer)``).
    aggregator : Aggregator or None
        None means ``WeightedMean("data")``.
    server_momentum, downlink : as :class:`Method`.

    Examples
    --------
    >>> import numpy as np, pyqsgd as pq
    >>> method = pq.methods.DAGC(variant="R", mean=0.25)
    >>> [c.k for c in method.compressors_for([27, 8, 1], d=100)]  # ratios (9, 4, 4)/17 * 0.75
    [40, 18, 17]
    >>> X = np.random.default_rng(0).standard_normal((400, 8)).astype(np.float32)
    >>> prob = pq.problems.LogisticRegression(X, np.where(X[:, 0] > 0, 1.0, -1.0).astype(np.float32))
    >>> parts = pq.data.partition(400, 4, scheme="size_skew", skew=10, key=0)
    >>> hist = pq.simulate(prob, method, n_workers=4, rounds=2, lr=0.1, partition=parts, key=0)
    >>> hist.worker_bits_up.shape
    (3, 4)
    """

    def __init__(self, variant="R", *, mean, rule="clipped", error_feedback=True, volumes=None, quantizer=None,
                 aggregator=None, server_momentum=0.0, downlink=None):
        self.variant = variant
        self.mean = mean
        self.rule = rule
        self.quantizer = quantizer
        self.error_feedback = error_feedback
        self.volumes = volumes
        self.aggregator = aggregator
        self.server_momentum = server_momentum
        self.downlink = downlink
        self._validate()

    def _validate(self):
        if not isinstance(self.variant, str) or self.variant not in _VARIANTS:
            raise ValueError(f"DAGC: variant must be 'R' (TopK ratios) or 'A' (thresholds), got {self.variant!r}")
        if self.variant == "R":
            check_float("DAGC", "mean", self.mean, low=0.0, high=1.0, low_open=True)
            _check_rule("DAGC", self.rule)
        else:
            if self.rule != "clipped":
                raise ValueError(f"DAGC: rule applies to variant='R' (TopK ratios) only, got rule={self.rule!r} "
                                 "with variant='A'")
            check_float("DAGC", "mean", self.mean, low=0.0, low_open=True)
        if not isinstance(self.error_feedback, (bool, np.bool_)):
            raise TypeError(f"DAGC: error_feedback must be a bool, got {self.error_feedback!r}")
        if self.volumes is not None:
            _volumes(self.volumes, "DAGC")
        if self.quantizer is not None and not isinstance(self.quantizer, Compressor):
            raise TypeError(f"DAGC: quantizer must be a pyqsgd compressor (native or Python) or None, "
                            f"got {self.quantizer!r}")
        _check_combine(self)
        if self.aggregator is not None and not isinstance(self.aggregator, Aggregator):
            raise TypeError(f"DAGC: aggregator must be a pyqsgd aggregator, got {self.aggregator!r}")
        check_float("DAGC", "server_momentum", self.server_momentum, low=0.0, high=1.0, high_open=True)
        if self.downlink is not None and not isinstance(self.downlink, Compressor):
            raise TypeError(f"DAGC: downlink must be a pyqsgd compressor or None, got {self.downlink!r}")

    @property
    def compressors(self):
        """The uniform compressor DAGC reduces to when volumes are equal (TopK(ratio=mean) or
        Threshold(tau=mean)); per-worker ones come from :meth:`compressors_for`."""
        return [self._stage(TopK(ratio=float(self.mean)) if self.variant == "R" else Threshold(tau=float(self.mean)))]

    def _stage(self, sparsifier):
        return sparsifier if self.quantizer is None else chain(sparsifier, self.quantizer)

    def worker_weights(self, sizes):
        agg = self.aggregator if self.aggregator is not None else WeightedMean("data")
        return agg.worker_weights(np.asarray(sizes, dtype=np.float64))

    def compressors_for(self, sizes, d):
        """One compressor per worker, planned from ``volumes`` (or the shard ``sizes``)."""
        sizes = _volumes(sizes, "DAGC.compressors_for", "sizes")
        vol = sizes if self.volumes is None else _volumes(self.volumes, "DAGC")
        if vol.size != sizes.size:
            raise ValueError(f"DAGC: volumes has {vol.size} entries for {sizes.size} workers; "
                             "give one volume per worker (or volumes=None to use the shard sizes)")
        if self.variant == "R":
            ratios = assign_ratios(vol, self.mean, rule=self.rule)
            if (ratios > 1.0).any():
                i = int(np.argmax(ratios))
                raise ValueError(f"DAGC: rule='paper' assigns worker {i} the TopK ratio {ratios[i]:.6g} > 1 for "
                                 f"volumes {vol.tolist()} and mean={self.mean!r} (the authors' assignment is not clipped); "
                                 "use rule='clipped' (clipped to 1, excess water-filled) for a valid plan")
            ks = topk_counts(ratios, int(d))
            return [self._stage(TopK(k=int(k))) for k in ks]
        return [self._stage(Threshold(tau=float(t))) for t in assign_thresholds(vol, self.mean)]

    def _make(self, d, m):
        cs = self._native_compressors(d, m)
        return _core.EF(cs) if self.error_feedback else _core.DCGD(cs)

    def __repr__(self):
        return f"DAGC({', '.join(self._repr_args())})"
