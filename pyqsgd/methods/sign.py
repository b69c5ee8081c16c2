"""Sign-based methods (ALGORITHMS.md §4.1, §4.3): EF-SignGD, LE-SignGD, signSGD-MV, signSGD-FV."""
from __future__ import annotations

from .. import _core
from .._params import Params
from .._validate import check_float, check_int
from ..compressors import ScaledSign, Sign
from .base import Method
from .gradient import EF

__all__ = ["EFSignSGD", "LESignSGD", "SignSGDMV", "SignSGDFV"]


class _FixedCompressor:
    """Mixin: the compressor is part of the method's definition, not a parameter."""

    def __repr__(self):
        return Params.__repr__(self)


class EFSignSGD(_FixedCompressor, EF):
    """EF-SignGD: error feedback (§3) with C = ScaledSign = (||p||_1/d) sign(p).

    The sign method with error feedback of Tsinghua Science and Technology 27(1):174–185, 2022
    (error feedback for sign compression: Karimireddy et al., ICML 2019).

    p = lr g_i + e_i, Delta_i = ScaledSign(p), e_i <- p - Delta_i; x <- x - sum w_i Delta_i.
    Uplink d + 32 bits per worker per round. State: ``error``.

    >>> import pyqsgd as pq
    >>> pq.methods.EFSignSGD()
    EFSignSGD()
    """

    def __init__(self, *, aggregator=None, server_momentum=0.0, downlink=None):
        super().__init__(ScaledSign(), aggregator=aggregator, server_momentum=server_momentum, downlink=downlink)


class LESignSGD(_FixedCompressor, Method):
    """LE-SignGD: sign compression + error feedback + lazy (LAG-WK-style) aggregation.

    After Tsinghua Science and Technology 27(1):174–185, 2022 (ALGORITHMS.md §4.1: specified from
    the paper's stated ingredients); the lazy rule is LAG-WK (Chen et al., NeurIPS 2018).

    Server and worker keep the worker's last-known gradient estimate gh_i; x <- x - lr sum w_i gh_i.
    Worker i **skips** (1 flag bit; gh_i, e_i unchanged; the server reuses gh_i) iff t >= D, its
    skip streak < t_bar, and ||g_i - gh_i||^2 <= xi/(D lr^2) sum_{j=1..D} ||x^{t+1-j} - x^{t-j}||^2.
    Otherwise it uploads the sign-compressed innovation with error feedback:
    u = g_i - gh_i + e_i, c = ScaledSign(u), e_i <- u - c, gh_i <- gh_i + c (d + 32 bits).
    Every worker uploads for t < D; xi = 0 never skips (innovation-form EF-SignGD).
    State: ``g_hat``, ``error``, ``g_hat_mean``, ``skip_streak``.
    """

    _supports_combine = False  # the server sums the last-known estimates itself

    def __init__(self, D=10, xi=0.8, t_bar=100, *, aggregator=None, server_momentum=0.0, downlink=None):
        self.D = D
        self.xi = xi
        self.t_bar = t_bar
        super().__init__(ScaledSign(), aggregator=aggregator, server_momentum=server_momentum, downlink=downlink)

    def _validate(self):
        super()._validate()
        check_int("LESignSGD", "D", self.D, low=1, high=2**32 - 1)
        check_float("LESignSGD", "xi", self.xi, low=0.0)
        check_int("LESignSGD", "t_bar", self.t_bar, low=0, high=2**32 - 1)

    def _make(self, d, m):
        return _core.LESignSGD(int(self.D), float(self.xi), int(self.t_bar))


class _Vote(_FixedCompressor, Method):
    _federated = False
    _supports_combine = False  # the server votes on the packed signs

    def _vote_args(self):
        return dict(W=10.0, lam=1.0, t_in=0, eps=1e-5, per_coordinate=False, oracle=False)

    def _make(self, d, m):
        return _core.SignVote(federated=self._federated, worker_momentum=float(self.worker_momentum),
                              **self._vote_args())


class SignSGDMV(_Vote):
    """signSGD with majority vote (Bernstein et al. 2018): workers send sign(g_i) (d bits, sign(0)
    = +1); server s = sign(sum_i s_i) with ties -> 0; x <- x - lr s. Downlink: s, d bits (plus a
    d-bit zero mask in rounds where some coordinate tied; impossible with an odd number of
    voters). ``worker_momentum`` = beta > 0 gives Signum: workers send sign(m_i) with
    m_i <- beta m_i + (1 - beta) g_i.
    """

    def __init__(self, *, worker_momentum=0.0, server_momentum=0.0):
        self.worker_momentum = worker_momentum
        super().__init__(Sign(), server_momentum=server_momentum)

    def _validate(self):
        super()._validate()
        check_float(type(self).__name__, "worker_momentum", self.worker_momentum, low=0.0, high=1.0, high_open=True)


class SignSGDFV(SignSGDMV):
    """signSGD with federated (weighted) voting (Park, Poor, Lee, ISIT 2024, arXiv 2403.16372).

    s = sign(sum_i w_i s_i), w_i = ln((1 - p_i)/p_i) clipped to [-W, W]. The server learns p_i
    online from agreement with its own vote: N_i <- lam N_i + #{j: s_j != 0},
    A_i <- lam A_i + #{j: s_ij = s_j} (ALGORITHMS.md adds d to N_i; a tied coordinate s_j = 0 is
    evidence about nobody, and counting it as a disagreement drove every weight negative with an
    even number of workers, inverting the vote),
    p_i = 1 - (A_i + eps)/(N_i + 2 eps). Plain MV for the first T_in rounds (counters still
    update). ``per_coordinate=True`` learns one weight per (worker, coordinate) (O(m d) state);
    ``oracle=True`` uses weights from the known batch sizes instead (w_i = W sqrt(B_i)/max sqrt(B),
    the small-SNR limit of the log-odds). ``leave_one_out=True`` (our option, not in the paper)
    measures worker i's agreement against sign(sum_{k != i} w_k s_k), removing the feedback by
    which a worker that dominates the vote agrees with itself and runs away to the clip W. History: ``hist.vote_weights`` (logged rounds x workers;
    per-coordinate weights are averaged over coordinates).

    ``authors_compat=True`` runs signSGD-FV as the authors' public code does, vote for vote:

    * one weight per (worker, coordinate) (implies ``per_coordinate=True``; excludes ``oracle``
      and ``leave_one_out``), N_ij <- lam N_ij + 1 every round, A_ij <- lam A_ij + [s_ij s_j = 1];
    * a tied vote (s_j = 0) is a disagreement for every worker;
    * workers send sign(g_ij) with sign(0) = 0. On the wire that is a third symbol, so a worker's
      message is d sign bits plus, when some g_ij is exactly 0, a d-bit zero mask: d or 2d
      bits, counted in ``bits_up`` (the default mode sends d bits with sign(0) = +1). Exact
      zeros are common on sparse data (features absent from a worker's batch, l2 = 0).

    Why the default stays the tie-skipping, per-worker rule: it converges, the authors' rule
    does not on our benchmarks. ``benchmarks/sign_methods.py`` (10 workers, two at a large
    batch, T_in = 20, mean of 4 seeds), f - f* at t = 125 / 500: dense synthetic, default
    0.077 / 0.0084, authors_compat 0.137 / 0.330; sparse a9a, default 0.207 / 0.261,
    authors_compat 0.194 / 0.382 (per-coordinate weights with the default tie rule: 0.094 /
    0.026 and 0.188 / 0.138). With an even number of workers ties are frequent, and counting
    each as a disagreement for everyone pushes the weights negative, inverting the vote.

    Caveat (ALGORITHMS.md §4.3): the agreement estimator assumes independent sign errors. On
    sparse data small-batch workers share the regulariser's sign on features absent from their
    batch, agree with each other, and can get the *larger* weights; FV then loses to MV.
    """

    _federated = True

    def __init__(self, W=10.0, lam=1.0, T_in=100, *, eps=1e-5, per_coordinate=False, oracle=False,
                 leave_one_out=False, authors_compat=False, worker_momentum=0.0, server_momentum=0.0):
        self.W = W
        self.lam = lam
        self.T_in = T_in
        self.eps = eps
        self.per_coordinate = per_coordinate
        self.oracle = oracle
        self.leave_one_out = leave_one_out
        self.authors_compat = authors_compat
        super().__init__(worker_momentum=worker_momentum, server_momentum=server_momentum)

    def _validate(self):
        super()._validate()
        check_float("SignSGDFV", "W", self.W, low=0.0, low_open=True)
        check_float("SignSGDFV", "lam", self.lam, low=0.0, high=1.0, low_open=True)
        check_int("SignSGDFV", "T_in", self.T_in, low=0, high=2**32 - 1)
        check_float("SignSGDFV", "eps", self.eps, low=0.0, low_open=True)
        for name in ("per_coordinate", "oracle", "leave_one_out", "authors_compat"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"SignSGDFV: {name} must be a bool, got {getattr(self, name)!r}")
        if self.authors_compat and (self.oracle or self.leave_one_out):
            raise ValueError("SignSGDFV: authors_compat=True learns weights from agreement with the vote, as the "
                             "authors' code; it cannot be combined with oracle=True or leave_one_out=True")

    def _vote_args(self):
        return dict(W=float(self.W), lam=float(self.lam), t_in=int(self.T_in), eps=float(self.eps),
                    per_coordinate=self.per_coordinate or self.authors_compat, oracle=self.oracle,
                    leave_one_out=self.leave_one_out, authors=self.authors_compat)
