"""HookState: the DDP hook's explicit, checkpointable state (method state per bucket, round
counters, bit counters, key)."""
from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.distributed as dist

from .. import _core
from .._validate import as_key, check_float
from ..methods.base import Method
from ..methods.gradient import EF21
from ._split import check_splittable, split

__all__ = ["HookState", "BucketStats"]

_FORMAT = "pyqsgd.torch.HookState/1"
_GOLDEN = 0x9E3779B97F4A7C15  # spreads bucket seeds over the 64-bit key space
_STEP_HISTORY = 64  # ||step||^2 values kept per bucket (LE-SignGD's lazy rule reads the last D)


@dataclasses.dataclass
class BucketStats:
    """Counters of one DDP bucket (``HookState.buckets[index]``).

    ``rounds`` counts hook calls since the bucket's method state was (re)initialised; the bit
    counters are cumulative over the whole run (see ``HookState`` for their definitions).
    """

    index: int
    size: int
    rounds: int
    bits_sent: int
    bits_received: int
    bits_down: int
    reinits: int
    blocks: tuple = None  # per_tensor=True: the parameter sizes compressed separately, in order


class _Bucket:
    """Live state of one bucket: the native method (via MethodRunner) plus counters."""

    __slots__ = ("index", "d", "shapes", "ptrs", "cur_ptrs", "perm", "runner", "t", "bits_sent", "bits_received",
                 "bits_down", "reinits", "step_sq", "velocity")

    def __init__(self, index, d, shapes, ptrs, runner):
        # (shapes, ptrs): the canonical parameter order the method sees; cur_ptrs: DDP's current
        # order; perm: canonical = current[perm] (None when they agree).
        self.index, self.d, self.shapes, self.ptrs, self.runner = index, d, shapes, ptrs, runner
        self.cur_ptrs, self.perm = ptrs, None
        self.t = 0
        self.bits_sent = self.bits_received = self.bits_down = self.reinits = 0
        self.step_sq = []
        self.velocity = None  # server momentum buffer (float64, d), created on first use


class HookState:
    """State of ``pyqsgd.torch.comm_hook`` (like PyTorch's ``PowerSGDState``).

    Parameters
    ----------
    method : pyqsgd.methods.Method
        The same method object the simulator takes (``EF21(TopK(ratio=0.01))``,
        ``DCGD(induced(TopK(...), RandK(...)))``, ``SignSGDMV()``, ...). Each bucket gets its own
        fresh native method (``method.build(d, world_size)``): error memory, EF21 estimates and
        DIANA shifts are per bucket, keyed by ``bucket.index()``.
    key : int
        Seed of every random draw. Worker ``rank`` at round ``t`` of bucket 0 compresses with
        ``Key(key, round=t, worker=rank)``, exactly as in ``pq.simulate(..., key=key)``; bucket
        ``b > 0`` uses the seed ``key + b * 0x9E3779B97F4A7C15 (mod 2**64)`` so that buckets draw
        independent randomness (RandK index sets differ between buckets).
    process_group : ProcessGroup or None
        The group to communicate over (None: the default group). Its ranks are the workers.
    lr : float, default 1.0
        The learning rate of the plain SGD optimizer that applies the gradients: the hook
        returns ``step / lr`` so ``p -= lr * grad`` applies the method's step. For DCGD, EF21,
        DIANA and the vote methods lr cancels. EF puts lr inside its error memory
        (p = lr g + e) and LE-SignGD's lazy rule divides by lr: with a constant lr the default
        1.0 gives exactly the same updates whenever the compressor is positively homogeneous
        (C(a x) = a C(x): TopK, RandK, QSGD, TernGrad, (Scaled)Sign, TNQ); with Natural or
        Threshold, or when a scheduler changes lr, pass the optimizer's lr (and set
        ``state.lr`` on every change).
    world_size : int or None
        Expected number of ranks. None takes it from the process group (at construction if
        torch.distributed is initialised, else at the first hook call). A mismatch with the
        group raises ``ValueError`` on every rank before any communication.
    shard_sizes : sequence of int or None
        Data volume per rank, for ``WeightedMean("data")`` aggregation; None = equal.
    batch_sizes : sequence of int or None
        Batch size per rank (oracle weights of ``SignSGDFV(oracle=True)``); None = shard sizes.
    observer : callable or None
        ``observer(bucket_index, t, statuses, payloads)`` after each exchange: ``statuses`` per
        rank (1 sent, 2 skipped), ``payloads`` the encoded message bytes each rank sent (b"" when
        skipped). For tests and logging; must not raise.
    per_tensor : bool, default False
        Compress each parameter tensor of a bucket separately (layer-wise compression: TopK keeps
        k per tensor, QSGD one norm per tensor): the bucket's method runs with
        ``pq.blockwise(compressor, sizes)``, ``sizes`` the numel of ``bucket.parameters()`` in
        the bucket's canonical order (``BucketStats.blocks``). Messages and bits are those of the
        simulator running ``pq.blockwise(compressor, sizes)``. Methods that cannot be split
        (signSGD-MV/FV, LE-SignGD, DAGC) raise ``ValueError`` here.

    Attributes
    ----------
    bits_sent : int
        This rank's uplink payload bits, counted as the simulator counts ``bits_up`` for one
        worker: ``msg.bits`` of every message it sent, plus ``method``'s flag bits
        (``skip_bits``) for every round it skipped.
    bits_received : int
        The same count over the *other* ranks' messages that this rank received in the
        all-gather. (``bits_sent`` summed over ranks equals the simulator's ``bits_up``.)
    bits_down : int
        What the simulator would count as ``bits_down`` (32 d per round, or the method's own
        downlink, e.g. the vote's d bits). In all-gather DDP nothing is broadcast (every rank
        runs the server step itself); this is the cost in a parameter-server deployment.
    iteration : int
        Completed backward passes (hook calls on the last bucket).
    buckets : dict[int, BucketStats]
        Per-bucket counters.

    Notes
    -----
    The wire also carries each message's framing (``to_bytes``: a 43-byte header, 8 bytes per
    section length and a 4-byte CRC-32C, together ``Message.wire_bits``), padding to the
    longest message in the all-gather, and a 16-byte (status, length) exchange; ``bits_*``
    count the payload only, so they match the simulator. Received messages are checked: the
    checksum, and d and the key against the bucket's dimension, round and sender.

    DDP rebuilds its buckets once, after the first iteration (parameters regrouped in
    gradient-ready order). A bucket that keeps its parameters in a new order keeps its method
    state: the hook permutes the gradient into the bucket's first (canonical) order and the
    step back, so the method's coordinates, and its random draws, never change. A bucket whose
    size or parameter set changes gets a fresh method (``BucketStats.reinits``); its bit
    counters continue.

    The hook keeps a full ``MethodRunner`` per bucket, i.e. worker-state arrays for all
    ``world_size`` workers of which this rank uses its own row: memory O(world_size * d).
    """

    def __init__(self, method, key=0, process_group=None, lr=None, *, world_size=None, shard_sizes=None,
                 batch_sizes=None, observer=None, per_tensor=False):
        if not isinstance(method, Method):
            hint = " (wrap a compressor in a method, e.g. pq.methods.DCGD(c))" if hasattr(method, "compress") else ""
            raise TypeError(f"HookState: method must be a pyqsgd method such as pq.methods.EF21(pq.TopK(k=...)), "
                            f"got {type(method).__name__}{hint}")
        if method.downlink is not None:
            raise ValueError("HookState: downlink compression is not supported in DDP: every rank runs the server "
                             "step itself, so there is no broadcast to compress; use downlink=None")
        if not isinstance(per_tensor, bool):
            raise TypeError(f"HookState: per_tensor must be a bool, got {per_tensor!r}")
        if per_tensor:
            check_splittable(method)
        self.per_tensor = per_tensor
        if lr is None:
            lr = 1.0
        self.method = method
        self.key = as_key(key).seed
        self.process_group = process_group
        self.lr = lr
        if world_size is None and dist.is_available() and dist.is_initialized():
            world_size = dist.get_world_size(process_group)
        if world_size is not None:
            if isinstance(world_size, bool) or not isinstance(world_size, (int, np.integer)) or world_size < 1:
                raise ValueError(f"HookState: world_size must be a positive int or None, got {world_size!r}")
            world_size = int(world_size)
        self.world_size = world_size
        self.shard_sizes = _rank_sizes("shard_sizes", shard_sizes, world_size)
        self.batch_sizes = _rank_sizes("batch_sizes", batch_sizes, world_size)
        if observer is not None and not callable(observer):
            raise TypeError("HookState: observer must be callable or None")
        self.observer = observer
        self.bits_sent = 0
        self.bits_received = 0
        self.bits_down = 0
        self.iteration = 0
        self._buckets = {}
        self._pending = {}
        self._warned_float64 = False  # the float64-bucket note (see _device) is given once per state

    # ---- parameters -------------------------------------------------------------------------
    @property
    def lr(self):
        return self._lr

    @lr.setter
    def lr(self, value):
        self._lr = check_float("HookState", "lr", value, low=0.0, low_open=True)

    @property
    def buckets(self):
        return {i: BucketStats(i, b.d, b.t, b.bits_sent, b.bits_received, b.bits_down, b.reinits,
                               tuple(_sizes(b.shapes)) if self.per_tensor else None)
                for i, b in sorted(self._buckets.items())}

    def __repr__(self):
        per = ", per_tensor=True" if self.per_tensor else ""
        return (f"HookState({self.method!r}, key={self.key}, lr={self.lr}, world_size={self.world_size}{per}, "
                f"bits_sent={self.bits_sent}, bits_received={self.bits_received})")

    # ---- used by the hook -------------------------------------------------------------------
    def _check_world(self, world):
        if self.world_size is None:
            self.world_size = world
        if world != self.world_size:
            raise ValueError(f"pyqsgd.torch: this HookState is for world size {self.world_size}, but the process "
                             f"group has {world} ranks; create the HookState with world_size={world} (or None)")
        for name, v in (("shard_sizes", self.shard_sizes), ("batch_sizes", self.batch_sizes)):
            if v is not None and len(v) != world:
                raise ValueError(f"pyqsgd.torch: {name} has {len(v)} entries for {world} ranks")

    def _seed(self, index):
        return (self.key + index * _GOLDEN) % 2**64

    def _new_runner(self, index, d, shapes=None):
        if not self.per_tensor:
            return self._build_runner(self.method, index, d)
        if shapes is None:
            raise ValueError("pyqsgd.torch: per_tensor=True needs the bucket's parameters (bucket.parameters()), "
                             "which this bucket does not provide")
        try:  # every rank has the same buckets, so every rank raises here, before any collective
            return self._build_runner(split(self.method, _sizes(shapes)), index, d)
        except ValueError as e:
            raise ValueError(f"pyqsgd.torch: per_tensor=True: bucket {index} holds tensors of sizes {_sizes(shapes)}, "
                             f"and {self.method!r} cannot compress each of them: {e}") from e

    def _build_runner(self, method, index, d):
        m = self.world_size
        sizes = np.asarray(self.shard_sizes if self.shard_sizes is not None else [1] * m, dtype=np.float64)
        weights = [float(w) for w in method.worker_weights(sizes)]
        batch = [float(b) for b in (self.batch_sizes if self.batch_sizes is not None else sizes)]
        # DAGC-style methods choose per-rank compressors from the data volumes.
        native = method.build(d, m, sizes=None if self.shard_sizes is None else sizes)
        return _core.MethodRunner(native, m, d, weights, [1.0] * m, batch, self._seed(index))

    def _set_runner_state(self, runner, arrays, t):
        arrays = dict(arrays)
        if isinstance(self.method, EF21):  # exact_init needs to know whether the first upload happened
            arrays["started"] = np.full(self.world_size, 1.0 if t > 0 else 0.0)
        runner.set_state(arrays)

    def _bucket(self, index, d, shapes, ptrs):
        """The live bucket for (index, d, layout) and the permutation into its canonical order.

        The canonical order is the first parameter order seen for the bucket (or the one in a
        loaded checkpoint). When DDP rebuilds the bucket with the same parameters in another
        order, the gradient is permuted into the canonical order and the step back, so the
        method (and every random draw, e.g. RandK's index set) sees the same coordinates
        throughout the run. Any other change of size or parameters re-initialises the method.
        """
        b = self._buckets.get(index)
        if b is not None and b.d == d:
            if ptrs is None or ptrs == b.cur_ptrs:
                return b, b.perm
            if b.ptrs is not None and sorted(ptrs) == sorted(b.ptrs):
                b.cur_ptrs = ptrs
                b.perm = None if ptrs == b.ptrs else _permutation(ptrs, _sizes(shapes), b.ptrs)
                return b, b.perm
        nb = _Bucket(index, d, shapes, ptrs, self._new_runner(index, d, shapes))
        if b is not None:
            nb.bits_sent, nb.bits_received, nb.bits_down = b.bits_sent, b.bits_received, b.bits_down
            nb.reinits = b.reinits + 1
        saved = self._pending.get(index)
        if saved is not None and self._restore(nb, saved, shapes, ptrs):
            del self._pending[index]
        self._buckets[index] = nb
        return nb, nb.perm

    def _restore(self, nb, saved, shapes, ptrs):
        """Loads a checkpointed bucket into nb if its size and parameters fit: the same shapes in
        the same order, or (parameters with distinct shapes) in another order, which then
        becomes a permutation into the saved canonical order."""
        if saved["d"] != nb.d:
            return False
        saved_shapes = [tuple(s) for s in saved["shapes"]] if saved["shapes"] is not None else None
        if shapes is not None and saved_shapes is not None and saved_shapes != shapes:
            if sorted(saved_shapes) != sorted(shapes) or len(set(shapes)) != len(shapes):
                return False
            by_shape = dict(zip(shapes, ptrs))
            nb.shapes, nb.ptrs = saved_shapes, [by_shape[s] for s in saved_shapes]
            nb.perm = _permutation(ptrs, _sizes(shapes), nb.ptrs)
            if self.per_tensor:  # the blocks follow the saved canonical order
                nb.runner = self._new_runner(nb.index, nb.d, nb.shapes)
        nb.t = int(saved["t"])
        self._set_runner_state(nb.runner, {k: v.detach().cpu().double().numpy() for k, v in saved["state"].items()},
                               nb.t)
        nb.bits_sent, nb.bits_received = int(saved["bits_sent"]), int(saved["bits_received"])
        nb.bits_down, nb.reinits = int(saved["bits_down"]), int(saved["reinits"])
        nb.step_sq = [float(s) for s in saved["step_sq"]]
        nb.velocity = None if saved["velocity"] is None else saved["velocity"].double().numpy().copy()
        return True

    # ---- checkpointing ----------------------------------------------------------------------
    def state_dict(self):
        """Everything needed to resume: per-bucket method state (float64 tensors), round counters,
        bit counters, key, lr. Loadable with ``torch.load(..., weights_only=True)``. Worker state
        differs per rank: save and load one state dict per rank."""
        buckets = {}
        for i, b in self._buckets.items():
            buckets[int(i)] = {
                "d": b.d, "shapes": None if b.shapes is None else [list(s) for s in b.shapes], "t": b.t,
                "bits_sent": b.bits_sent, "bits_received": b.bits_received, "bits_down": b.bits_down,
                "reinits": b.reinits, "step_sq": torch.tensor(b.step_sq, dtype=torch.float64),
                "velocity": None if b.velocity is None else torch.from_numpy(b.velocity.copy()),
                "state": {k: torch.from_numpy(v) for k, v in b.runner.state().items()},
            }
        for i, saved in self._pending.items():  # loaded but not yet used: keep it
            buckets.setdefault(int(i), saved)
        rank = dist.get_rank(self.process_group) if dist.is_available() and dist.is_initialized() else None
        return {"format": _FORMAT, "method": repr(self.method), "per_tensor": self.per_tensor, "key": self.key,
                "lr": self.lr, "world_size": self.world_size, "rank": rank, "iteration": self.iteration,
                "bits_sent": self.bits_sent, "bits_received": self.bits_received, "bits_down": self.bits_down,
                "buckets": buckets}

    def load_state_dict(self, sd):
        """Restores ``state_dict()``. Counters, key and lr apply at once; each bucket's method state
        is applied at that bucket's next hook call (after checking its size and layout).

        Raises ValueError when the checkpoint is for another method, world size or rank."""
        if not isinstance(sd, dict) or sd.get("format") != _FORMAT:
            raise ValueError(f"HookState.load_state_dict: not a pyqsgd.torch HookState state dict (format "
                             f"{sd.get('format') if isinstance(sd, dict) else type(sd).__name__!r})")
        if sd["method"] != repr(self.method):
            raise ValueError(f"HookState.load_state_dict: checkpoint is for {sd['method']}, this state runs "
                             f"{self.method!r}")
        if bool(sd.get("per_tensor", False)) != self.per_tensor:
            raise ValueError(f"HookState.load_state_dict: checkpoint has per_tensor={bool(sd.get('per_tensor'))}, "
                             f"this state per_tensor={self.per_tensor}; the method state is laid out per block")
        if self.world_size is not None and sd["world_size"] is not None and sd["world_size"] != self.world_size:
            raise ValueError(f"HookState.load_state_dict: checkpoint is for world size {sd['world_size']}, this "
                             f"state is for {self.world_size}")
        rank = dist.get_rank(self.process_group) if dist.is_available() and dist.is_initialized() else None
        if rank is not None and sd["rank"] is not None and sd["rank"] != rank:
            raise ValueError(f"HookState.load_state_dict: checkpoint holds rank {sd['rank']}'s worker state, "
                             f"this is rank {rank}; load each rank's own state dict")
        self.world_size = sd["world_size"] if self.world_size is None else self.world_size
        self.key, self.lr, self.iteration = int(sd["key"]), sd["lr"], int(sd["iteration"])
        self.bits_sent, self.bits_received = int(sd["bits_sent"]), int(sd["bits_received"])
        self.bits_down = int(sd["bits_down"])
        self._buckets = {}
        self._pending = {int(i): b for i, b in sd["buckets"].items()}


def _rank_sizes(name, sizes, world_size):
    """``sizes`` (one positive int per rank) as a list of ints, or None; errors name ``name``."""
    if sizes is None:
        return None
    if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__iter__"):
        raise TypeError(f"HookState: {name} must be a sequence of ints (one per rank) or None, got {sizes!r}")
    out = []
    for s in sizes:
        if isinstance(s, (bool, np.bool_)) or not isinstance(s, (int, np.integer)):
            raise TypeError(f"HookState: {name} must hold ints (one per rank), got {s!r}")
        out.append(int(s))
    if not out or min(out) < 1 or (world_size is not None and len(out) != world_size):
        raise ValueError(f"HookState: {name} needs one positive entry per rank"
                         + (f" ({world_size})" if world_size is not None else "") + f", got {out}")
    return out


def _sizes(shapes):
    return [int(np.prod(s)) for s in shapes]


def _permutation(old_keys, old_sizes, new_keys):
    """Index array p with new_vector = old_vector[p] when segments (parameters) are reordered."""
    offsets, off = {}, 0
    for k, n in zip(old_keys, old_sizes):
        offsets[k] = (off, n)
        off += n
    return np.concatenate([np.arange(offsets[k][0], offsets[k][0] + offsets[k][1], dtype=np.int64)
                           for k in new_keys])

