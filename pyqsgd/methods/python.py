"""Distributed methods written in Python: worker and server hooks on NumPy arrays and Messages.

A :class:`PythonMethod` runs inside the native simulator and the DDP hook exactly where a
built-in method does: the native loop computes gradients, samples batches and participants,
counts bits, logs, and calls the hooks once per participating worker and once for the server.
"""
from __future__ import annotations

import numpy as np

from .. import _core
from .base import Method

__all__ = ["PythonMethod", "State"]


class State(dict):
    """A run's method state: named arrays (attribute or item access).

    Arrays of shape (m, d) are per-worker state (row i belongs to worker i); every NumPy array
    is reported in ``History.state`` and saved by the DDP hook's ``state_dict``. Other values
    (floats, lists) are kept but not reported.
    """

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"state has no entry {name!r}; entries: {sorted(self)}") from None

    def __setattr__(self, name, value):
        self[name] = value


class PythonMethod(Method):
    """Base class for methods written in Python.

    Implement three hooks (NumPy in, NumPy out):

    * ``init_state(self, d, m, x0) -> State``: fresh state for a run of m workers in dimension d
      (called by every ``simulate`` and every DDP bucket).
    * ``worker(self, i, v, state, ctx)``: worker i with its local vector ``v`` (float64: the
      stochastic gradient, or the model change after local steps). Send with
      ``decoded = ctx.compress(vector)``: worker i's compressor and key, float32 on the wire;
      it returns what the server decodes (float64). A worker that does not call it skips the
      round (``skip_bits`` flag bits are counted).
    * ``server(self, state, ctx) -> step``: the step s (float64, length d) with
      x <- x - s (before server momentum and downlink, applied by the simulator).
      ``ctx.aggregate(coef)`` is the aggregator over the senders (the weighted sum for
      Mean/WeightedMean, in worker order, bit for bit as the native methods form it);
      ``ctx.weighted_sum(coef)`` always the weighted sum; ``ctx.decoded(i)`` /
      ``ctx.message(i)`` one sender's vector or Message; ``ctx.sent`` who sent.

    Both contexts give ``t``, ``lr``, ``x``, ``m``, ``d``, ``weights`` (w_i, summing to 1),
    ``prob`` (participation p_i) and ``batch``; the worker context also ``worker``, ``key`` and
    ``message``. Contexts are valid only during the hook call. Class attributes: ``skip_bits``
    (flag bits of a skipping worker, default 0) and ``history`` (how many past ||x^{s+1} - x^s||^2
    ``ctx.step_sq`` must keep at least, latest last; default 0).

    The hooks run with the GIL held, one worker at a time, in worker order; an exception raised
    in them reaches the caller of ``simulate`` as that exception (with the history so far on
    ``exc.history``). Parameters are declared like any method's (keyword-only constructor
    arguments; the compressor first): repr, pickling and sweep grids work unchanged.

    Examples
    --------
    EF21 (Richtárik et al., NeurIPS 2021) in a few lines; it reproduces ``pq.methods.EF21``
    bit for bit (``pyqsgd.reference.methods`` has it and DIANA):

    >>> import numpy as np, pyqsgd as pq
    >>> class MyEF21(pq.methods.PythonMethod):
    ...     def init_state(self, d, m, x0):
    ...         return pq.methods.State(g_workers=np.zeros((m, d)), g=np.zeros(d))
    ...     def worker(self, i, v, state, ctx):
    ...         state.g_workers[i] += ctx.compress(v - state.g_workers[i])
    ...     def server(self, state, ctx):
    ...         state.g += ctx.aggregate(ctx.weights)
    ...         return ctx.lr * state.g
    >>> A = np.random.default_rng(0).standard_normal((200, 5)).astype(np.float32)
    >>> prob = pq.problems.LogisticRegression(A, np.where(A[:, 0] > 0, 1.0, -1.0).astype(np.float32))
    >>> mine = pq.simulate(prob, MyEF21(pq.TopK(k=2)), n_workers=4, rounds=20, lr=0.5)
    >>> ref = pq.simulate(prob, pq.methods.EF21(pq.TopK(k=2)), n_workers=4, rounds=20, lr=0.5)
    >>> bool((mine.x == ref.x).all() and (mine.to_frame().bits_up == ref.to_frame().bits_up).all())
    True
    """

    skip_bits = 0
    history = 0

    def init_state(self, d, m, x0):
        """Fresh state for a run (default: empty)."""
        return State()

    def worker(self, i, v, state, ctx):
        raise TypeError(f"{type(self).__name__} implements no worker(self, i, v, state, ctx) hook")

    def server(self, state, ctx):
        raise TypeError(f"{type(self).__name__} implements no server(self, state, ctx) -> step hook")

    def _make(self, d, m):
        name = type(self).__name__
        for attr, value in (("skip_bits", self.skip_bits), ("history", self.history)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise TypeError(f"{name}.{attr} must be an int >= 0, got {value!r}")
        return _core.PythonMethod(self, self._native_compressors(d, m), name, int(self.skip_bits), int(self.history))

    # ---- callbacks of the native adapter ----------------------------------------------------

    def _pyqsgd_init(self, m, d, weights, prob, batch, x0):
        state = self.init_state(d, m, x0)
        if isinstance(state, dict) and not isinstance(state, State):
            state = State(state)
        if not isinstance(state, State):
            raise TypeError(f"{type(self).__name__}.init_state must return a pyqsgd.methods.State (or a dict) of "
                            f"arrays, got {type(state).__name__}")
        return state

    def _pyqsgd_worker(self, state, i, v, ctx):
        out = self.worker(i, v, state, ctx)
        if out is not None:
            raise TypeError(f"{type(self).__name__}.worker must return None; a worker sends by calling "
                            f"ctx.compress(vector), got a {type(out).__name__}")

    def _pyqsgd_server(self, state, ctx):
        step = self.server(state, ctx)
        name = f"{type(self).__name__}.server"
        d = ctx.d
        if not isinstance(step, np.ndarray) or step.dtype.kind != "f":
            raise TypeError(f"{name} must return the step as a float NumPy array of length d={d}, "
                            f"got {type(step).__name__}")
        if step.shape != (d,):
            raise ValueError(f"{name} must return a step of shape ({d},), got shape {step.shape}")
        return np.ascontiguousarray(step, dtype=np.float64)

    def _pyqsgd_state(self, state):
        return {k: np.ascontiguousarray(v, dtype=np.float64).ravel() for k, v in state.items()
                if isinstance(v, np.ndarray) and v.dtype.kind in "fiu"}

    def _pyqsgd_load_state(self, state, arrays):
        name = type(self).__name__
        own = self._pyqsgd_state(state)
        if set(arrays) != set(own):
            raise ValueError(f"{name}: load_state: saved arrays {sorted(arrays)} do not match the state's "
                             f"{sorted(own)}")
        for k, v in arrays.items():
            if np.size(v) != own[k].size:
                raise ValueError(f"{name}: load_state: {k!r} has {np.size(v)} entries, expected {own[k].size} "
                                 "(saved for another d or m?)")
            state[k][...] = np.asarray(v).reshape(np.shape(state[k]))
