"""History: what a simulation logged, plus its configuration."""
from __future__ import annotations

import numpy as np

__all__ = ["History", "STATUSES"]

_COLUMNS = ("round", "loss", "grad_norm_sq", "bits_up", "bits_down", "uploads", "skipped")
# How a run ended: all rounds done; stopped on a non-finite loss, gradient or model; interrupted
# (KeyboardInterrupt); or user code raised (the history then rides on the exception).
STATUSES = ("ok", "diverged", "stopped", "error")


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
        Configuration: method repr, problem, key, threads, version, ..., and the data actually
        used: ``dataset`` (name, None if unnamed), ``dataset_n``, ``dataset_d``, ``dataset_hash``
        (:func:`pyqsgd.data.content_hash`; None for a Python problem without one).
    status : {"ok", "diverged", "stopped", "error"}
        "ok": every round ran; "diverged": stopped on a non-finite loss, gradient or model;
        "stopped": interrupted (Ctrl-C); "error": user code raised (this History is then the
        exception's ``.history``).
    stopped : str or None
        Why the run ended early (e.g. "non-finite loss, gradient or model at round 12"), else None.
    """

    def __init__(self, arrays, x, state, meta, stopped=None, status=None):
        for name in _COLUMNS:
            setattr(self, name, np.asarray(arrays[name]))
        self.worker_bits_up = np.asarray(arrays.get("worker_bits_up", np.zeros((len(self.round), 0), np.int64)))
        vw = arrays.get("vote_weights")
        self.vote_weights = None if vw is None else np.asarray(vw)
        self.x = x
        self.state = state
        self.meta = dict(meta)
        self.stopped = stopped
        if status is None:
            status = "ok" if stopped is None else "stopped"
        if status not in STATUSES:
            raise ValueError(f"History: status must be one of {STATUSES}, got {status!r}")
        self.status = status

    def __len__(self):
        return len(self.round)

    @property
    def bits(self):
        """bits_up + bits_down (cumulative)."""
        return self.bits_up + self.bits_down

    def to_frame(self):
        """pandas DataFrame, one row per logged round; ``df.attrs`` holds the configuration
        (``meta``, including the dataset fields), ``status`` and, for a run that ended early,
        ``stopped`` (the reason)."""
        import pandas as pd

        df = pd.DataFrame({name: getattr(self, name) for name in _COLUMNS})
        df["bits"] = df["bits_up"] + df["bits_down"]
        df.attrs.update(self.meta)
        df.attrs["status"] = self.status
        if self.stopped:
            df.attrs["stopped"] = self.stopped
        return df

    def __repr__(self):
        last = f"loss={self.loss[-1]:.6g}, bits_up={int(self.bits_up[-1])}" if len(self) else "empty"
        status = "" if self.status == "ok" else f", {self.status}"
        return (f"<History {self.meta.get('method', '?')}: {len(self)} rows, "
                f"round {int(self.round[-1]) if len(self) else 0}, {last}{status}>")
