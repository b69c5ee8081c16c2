"""History: what a simulation logged, plus its configuration."""
from __future__ import annotations

import numpy as np

__all__ = ["History"]

_COLUMNS = ("round", "loss", "grad_norm_sq", "bits_up", "bits_down", "uploads", "skipped")


class History:
    """Logged rounds of a run (row t is after t steps; round 0 is x0).

    Attributes
    ----------
    round, loss, grad_norm_sq, bits_up, bits_down, uploads, skipped : np.ndarray
        One entry per logged round. ``loss``/``grad_norm_sq`` are the full-data objective and
        its squared gradient norm; the counters are cumulative (bits_up sums the encoded payload
        of every message actually sent, plus flag bits of skipped uploads).
    worker_bits_up : np.ndarray (logged rounds x workers)
        Cumulative uplink bits per worker.
    vote_weights : np.ndarray or None
        Learned vote weights per logged round (federated voting), else None.
    x : np.ndarray
        Final model.
    state : dict
        The method's final state (error memories, EF21 estimates, DIANA shifts, ...).
    meta : dict
        Configuration: method repr, problem, key, threads, version, ...
    stopped : str or None
        Why the run ended early (non-finite loss, interrupted), else None.
    """

    def __init__(self, arrays, x, state, meta, stopped=None):
        for name in _COLUMNS:
            setattr(self, name, np.asarray(arrays[name]))
        self.worker_bits_up = np.asarray(arrays.get("worker_bits_up", np.zeros((len(self.round), 0), np.int64)))
        vw = arrays.get("vote_weights")
        self.vote_weights = None if vw is None else np.asarray(vw)
        self.x = x
        self.state = state
        self.meta = dict(meta)
        self.stopped = stopped

    def __len__(self):
        return len(self.round)

    @property
    def bits(self):
        """bits_up + bits_down (cumulative)."""
        return self.bits_up + self.bits_down

    def to_frame(self):
        """pandas DataFrame, one row per logged round; ``df.attrs`` holds the configuration."""
        import pandas as pd

        df = pd.DataFrame({name: getattr(self, name) for name in _COLUMNS})
        df["bits"] = df["bits_up"] + df["bits_down"]
        df.attrs.update(self.meta)
        if self.stopped:
            df.attrs["stopped"] = self.stopped
        return df

    def __repr__(self):
        last = f"loss={self.loss[-1]:.6g}, bits_up={int(self.bits_up[-1])}" if len(self) else "empty"
        return f"<History {self.meta.get('method', '?')}: {len(self)} rows, round {int(self.round[-1]) if len(self) else 0}, {last}>"
