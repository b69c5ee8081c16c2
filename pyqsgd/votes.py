"""Vote aggregators on packed sign messages: MajorityVote and FederatedVote.

They read the sign bits of ``Sign``/``ScaledSign`` messages directly (no float decoding),
sum in worker order, and give 0 on ties. Usable on their own, outside ``simulate``. Ternary
sign messages (sign(0) = 0, ``pyqsgd._core.TernarySign``, what ``SignSGDFV(authors_compat=True)``
workers send) are accepted too: a zero adds nothing to the sum.
"""
from __future__ import annotations

import numpy as np

from . import _core
from ._params import Params
from ._validate import check_float, check_int

__all__ = ["MajorityVote", "FederatedVote"]


def _messages(messages):
    if isinstance(messages, (str, bytes, _core.Message)) or not hasattr(messages, "__iter__"):
        raise TypeError(f"vote: messages must be a list of pyqsgd.Message objects from Sign()/ScaledSign(), got "
                        f"{type(messages).__name__}")
    msgs = list(messages)
    if not msgs:
        raise ValueError("vote: messages must hold at least one message")
    for m in msgs:
        if not isinstance(m, _core.Message):
            raise TypeError(f"vote: messages must be pyqsgd.Message objects from Sign()/ScaledSign(), got {type(m).__name__}")
    return msgs


class MajorityVote(Params):
    """sign(sum_i s_i) per coordinate; ties -> 0 (signSGD majority vote, Bernstein et al., ICML 2018).

    >>> import numpy as np, pyqsgd as pq
    >>> msgs = [pq.Sign().compress(np.array(v), key=0) for v in ([1.0, -1, 2], [-1.0, -1, 3], [2.0, 1, -1])]
    >>> pq.MajorityVote().aggregate(msgs).tolist()
    [1.0, -1.0, 1.0]
    """

    def __init__(self):
        pass

    def aggregate(self, messages):
        vote, _ = _core.sign_vote(_messages(messages), None)
        return vote


class FederatedVote(Params):
    """Weighted vote sign(sum_i w_i s_i) with weights learned online (signSGD-FV).

    Each call to :meth:`aggregate` is one round: it votes with the current weights (plain
    majority for the first ``T_in`` rounds and until some worker has counts), then updates
    N_i <- lam N_i + #{j: vote_j != 0}, A_i <- lam A_i + #{j: s_ij = vote_j} (a tied coordinate
    is evidence about nobody), p_i = 1 - (A_i + eps)/(N_i + 2 eps),
    w_i = clip(ln((1 - p_i)/p_i), -W, W). State (``N``, ``A``, ``weights``, ``rounds``) is
    explicit; :meth:`reset` clears it. Messages must come in the same worker order each round.

    ``authors_compat=True``: the authors' decoding (implies ``per_coordinate``):
    N_ij <- lam N_ij + 1, A_ij <- lam A_ij + [s_ij vote_j = 1], so a tied vote is a
    disagreement for every worker (and so is a worker's zero sign).

    >>> import numpy as np, pyqsgd as pq
    >>> tern = pq._core.TernarySign()
    >>> fv = pq.FederatedVote(T_in=1, authors_compat=True)
    >>> msgs = [tern.compress(np.array(v, np.float32), pq.Key()) for v in ([1, -1], [1, 0], [-1, 1], [-1, -1])]
    >>> fv.aggregate(msgs).tolist(), fv.A.tolist()      # coordinate 0 ties: nobody agrees
    ([0.0, -1.0], [[0.0, 1.0], [0.0, 0.0], [0.0, 0.0], [0.0, 1.0]])
    """

    def __init__(self, W=10.0, lam=1.0, T_in=100, *, eps=1e-5, per_coordinate=False, authors_compat=False):
        self.W = W
        self.lam = lam
        self.T_in = T_in
        self.eps = eps
        self.per_coordinate = per_coordinate
        self.authors_compat = authors_compat
        self._validate()
        self.reset()

    def _validate(self):
        check_float("FederatedVote", "W", self.W, low=0.0, low_open=True)
        check_float("FederatedVote", "lam", self.lam, low=0.0, high=1.0, low_open=True)
        check_int("FederatedVote", "T_in", self.T_in, low=0)
        check_float("FederatedVote", "eps", self.eps, low=0.0, low_open=True)
        for name in ("per_coordinate", "authors_compat"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"FederatedVote: {name} must be a bool, got {getattr(self, name)!r}")

    def reset(self):
        """Forgets the learned statistics."""
        self.N = None
        self.A = None
        self.weights = None
        self.rounds = 0
        return self

    def aggregate(self, messages):
        msgs = _messages(messages)
        m, d = len(msgs), msgs[0].d
        per_coordinate = self.per_coordinate or self.authors_compat
        if self.N is None:
            self.N = np.zeros((m, d) if per_coordinate else m)
            self.A = np.zeros((m, d) if per_coordinate else m)
            self.weights = np.zeros_like(self.A)
        if self.N.shape[0] != m:
            raise ValueError(f"FederatedVote: got {m} messages, but the state was learned for {self.N.shape[0]} "
                             "workers; call reset() first")
        if per_coordinate and self.N.shape[1] != d:
            raise ValueError(f"FederatedVote: messages have d={d}, but the per-coordinate state was learned for "
                             f"d={self.N.shape[1]}; call reset() first")
        # Majority for the first T_in rounds and until some worker has counts (all weights 0
        # would make every coordinate a tie).
        if self.rounds < self.T_in or not np.any(self.N > 0):
            vote, _ = _core.sign_vote(msgs, None)
        else:
            vote, _ = _core.sign_vote(msgs, np.ascontiguousarray(self.weights, dtype=np.float64))
        # 0 no, 1 yes, 2 tie (never with authors_compat: a tie is a disagreement)
        code = np.stack([_core.sign_agreement(msg, vote, ties_disagree=self.authors_compat) for msg in msgs])
        agree, counted = (code == 1).astype(np.float64), (code != 2).astype(np.float64)
        if not per_coordinate:
            agree, counted = agree.sum(axis=1), counted.sum(axis=1)
        self.N = self.lam * self.N + counted
        self.A = self.lam * self.A + agree
        p = 1.0 - (self.A + self.eps) / (self.N + 2 * self.eps)
        self.weights = np.clip(np.log((1.0 - p) / p), -self.W, self.W)
        self.rounds += 1
        return vote

    def __getstate__(self):
        return dict(self.__dict__)
