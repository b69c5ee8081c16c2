"""Vote aggregators on packed sign messages: MajorityVote and FederatedVote.

They read the sign bits of ``Sign``/``ScaledSign`` messages directly (no float decoding),
sum in worker order, and give 0 on ties. Usable on their own, outside ``simulate``.
"""
from __future__ import annotations

import numpy as np

from . import _core
from ._params import Params
from ._validate import check_float, check_int

__all__ = ["MajorityVote", "FederatedVote"]


def _messages(messages):
    msgs = list(messages)
    if not msgs:
        raise ValueError("vote: need at least one message")
    for m in msgs:
        if not isinstance(m, _core.Message):
            raise TypeError(f"vote: messages must be pyqsgd.Message objects from Sign()/ScaledSign(), got {type(m).__name__}")
    return msgs


class MajorityVote(Params):
    """sign(sum_i s_i) per coordinate; ties -> 0.

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
    """

    def __init__(self, W=10.0, lam=1.0, T_in=100, *, eps=1e-5, per_coordinate=False):
        self.W = W
        self.lam = lam
        self.T_in = T_in
        self.eps = eps
        self.per_coordinate = per_coordinate
        self._validate()
        self.reset()

    def _validate(self):
        check_float("FederatedVote", "W", self.W, low=0.0, low_open=True)
        check_float("FederatedVote", "lam", self.lam, low=0.0, high=1.0, low_open=True)
        check_int("FederatedVote", "T_in", self.T_in, low=0)
        check_float("FederatedVote", "eps", self.eps, low=0.0, low_open=True)
        if not isinstance(self.per_coordinate, bool):
            raise TypeError(f"FederatedVote: per_coordinate must be a bool, got {self.per_coordinate!r}")

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
        if self.N is None:
            self.N = np.zeros((m, d) if self.per_coordinate else m)
            self.A = np.zeros((m, d) if self.per_coordinate else m)
            self.weights = np.zeros_like(self.A)
        if self.N.shape[0] != m:
            raise ValueError(f"FederatedVote: got {m} messages, but the state was learned for {self.N.shape[0]} "
                             "workers; call reset() first")
        # Majority for the first T_in rounds and until some worker has counts (all weights 0
        # would make every coordinate a tie).
        if self.rounds < self.T_in or not np.any(self.N > 0):
            vote, _ = _core.sign_vote(msgs, None)
        else:
            vote, _ = _core.sign_vote(msgs, np.ascontiguousarray(self.weights, dtype=np.float64))
        code = np.stack([_core.sign_agreement(msg, vote) for msg in msgs])  # 0 no, 1 yes, 2 tie
        agree, counted = (code == 1).astype(np.float64), (code != 2).astype(np.float64)
        if not self.per_coordinate:
            agree, counted = agree.sum(axis=1), counted.sum(axis=1)
        self.N = self.lam * self.N + counted
        self.A = self.lam * self.A + agree
        p = 1.0 - (self.A + self.eps) / (self.N + 2 * self.eps)
        self.weights = np.clip(np.log((1.0 - p) / p), -self.W, self.W)
        self.rounds += 1
        return vote

    def __getstate__(self):
        return dict(self.__dict__)
