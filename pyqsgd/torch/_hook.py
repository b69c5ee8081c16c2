"""The DDP communication hook: worker step -> all-gather of encoded messages -> replicated
server step -> ``step / lr`` as the bucket's gradient."""
import warnings

import numpy as np
import torch
import torch.distributed as dist

from .._core import Message
from ._device import FLOAT64_NOTE, check_dtype, comm_device, completed, to_host, write_back
from ._state import _STEP_HISTORY, HookState

__all__ = ["comm_hook", "register"]

_SENT, _SKIPPED, _FAILED = 1, 2, -1


def _layout(bucket):
    """(shapes, data pointers) of the bucket's parameters in buffer order, or (None, None)."""
    params = getattr(bucket, "parameters", None)
    if params is None:
        return None, None
    ps = params()
    return [tuple(p.shape) for p in ps], [p.data_ptr() for p in ps]


def _exchange(group, world, status, payload, device):
    """All-gathers every rank's (status, message bytes) on ``device`` (see ``comm_device``).
    Lengths go first, then payloads padded to the longest one (all_gather needs equal sizes on
    every backend); each is trimmed back to its length on the host."""
    header = torch.tensor([status, len(payload)], dtype=torch.int64, device=device)
    headers = [torch.empty(2, dtype=torch.int64, device=device) for _ in range(world)]
    dist.all_gather(headers, header, group=group)
    table = torch.stack(headers).cpu().tolist()
    longest = max(n for _, n in table)
    payloads = [b""] * world
    if longest > 0:
        mine = torch.zeros(longest, dtype=torch.uint8)
        if payload:
            mine[:len(payload)] = torch.frombuffer(bytearray(payload), dtype=torch.uint8)
        outs = [torch.empty(longest, dtype=torch.uint8, device=device) for _ in range(world)]
        dist.all_gather(outs, mine.to(device), group=group)
        payloads = [outs[r][:n].cpu().numpy().tobytes() for r, (_, n) in enumerate(table)]
    return [s for s, _ in table], payloads


def comm_hook(state: HookState, bucket) -> torch.futures.Future[torch.Tensor]:
    """DDP communication hook running ``state.method`` on each gradient bucket.

    Register with ``ddp_model.register_comm_hook(state, comm_hook)``. Per bucket and step:

    1. the bucket (this rank's local gradient g_i) becomes a float64 NumPy array on the host
       (one conversion, with the device move for CUDA buckets; a view for float64 CPU buckets),
       and this rank runs the method's worker step on it with key
       ``Key(seed, round=t, worker=rank)``: a ``Message`` or a skip;
    2. every rank's encoded message (``msg.to_bytes()``) goes over ``all_gather`` (lengths
       first, then the payloads padded to the longest), as uint8 tensors on the bucket's CUDA
       device with NCCL, on the host with gloo;
    3. every rank decodes all messages and runs the same server step (aggregation, votes, EF21
       or DIANA server state), so the ranks stay identical without a broadcast;
    4. the bucket is overwritten in place with ``step / lr`` (on its device, in its dtype) and
       returned in a completed Future: the optimizer's ``p -= lr * grad`` then applies
       x <- x - step, the method's update. The
       aggregation (e.g. the 1/world_size of ``Mean``) is part of the step: do not divide again.

    The hook is synchronous (the exchange finishes before it returns): simple and
    deterministic, at the cost of DDP's overlap of communication with the backward pass.

    Use plain SGD (no momentum, no weight decay) with ``lr == state.lr`` to get exactly the
    method's iteration; server momentum belongs in the method (``server_momentum=``).

    Errors: a wrong state type raises TypeError; an unsupported bucket dtype TypeError; a world
    size different from ``state.world_size`` ValueError, a CPU bucket on NCCL ValueError --
    all before any communication, so
    no rank waits for another. A failure inside this rank's worker step (e.g. a non-finite
    gradient) is announced to the other ranks in the length exchange and raised on every rank.
    """
    if not isinstance(state, HookState):
        raise TypeError(f"pyqsgd.torch.comm_hook: state must be a pyqsgd.torch.HookState, got "
                        f"{type(state).__name__}; register with ddp.register_comm_hook(HookState(method, lr=...), "
                        "comm_hook)")
    buf = bucket.buffer()
    check_dtype(buf.dtype)
    group = state.process_group
    world, rank = dist.get_world_size(group), dist.get_rank(group)
    state._check_world(world)
    device = comm_device(dist.get_backend(group), buf.device)  # before any collective: errors on every rank
    if buf.dtype == torch.float64 and not state._warned_float64:
        state._warned_float64 = True
        warnings.warn(FLOAT64_NOTE, UserWarning, stacklevel=2)
    index = int(bucket.index())
    shapes, ptrs = _layout(bucket)
    b, perm = state._bucket(index, int(buf.numel()), shapes, ptrs)
    lr = state.lr

    status, payload, error, msg = _FAILED, b"", None, None
    try:
        v = to_host(buf)
        if perm is not None:  # DDP reordered the bucket: back to the method's canonical order
            v = v[perm]
        if not np.isfinite(v).all():
            raise ValueError(f"pyqsgd.torch: non-finite gradient in bucket {index} on rank {rank} at round {b.t}")
        status, msg = b.runner.worker(rank, b.t, lr, v, b.step_sq)
        payload = msg.to_bytes() if status == _SENT else b""
    except Exception as e:  # reported to every rank below, so none is left waiting
        status, error = _FAILED, e
    statuses, payloads = _exchange(group, world, status, payload, device)
    if error is not None:
        raise error
    failed = [r for r, s in enumerate(statuses) if s == _FAILED]
    if failed:
        raise RuntimeError(f"pyqsgd.torch: the worker step failed on rank(s) {failed} (bucket {index}, round "
                           f"{b.t}); see the error raised there")

    messages = [None] * world
    skip = int(b.runner.skip_bits)
    sent = received = 0
    for r, (s, p) in enumerate(zip(statuses, payloads)):
        if s == _SENT:
            messages[r] = msg if r == rank else Message.from_bytes(p)
        bits = messages[r].bits if s == _SENT else (skip if s == _SKIPPED else 0)
        if r == rank:
            sent += bits
        else:
            received += bits
    step = b.runner.server(b.t, lr, statuses, messages)
    down = int(b.runner.last_downlink_bits)
    down = down if down >= 0 else 32 * b.d
    b.bits_sent += sent
    b.bits_received += received
    b.bits_down += down
    state.bits_sent += sent
    state.bits_received += received
    state.bits_down += down
    if state.observer is not None:
        state.observer(index, b.t, list(statuses), list(payloads))

    beta = state.method.server_momentum
    if beta > 0.0:  # heavy ball on the step, as the simulator applies it
        if b.velocity is None:
            b.velocity = np.zeros(b.d)
        b.velocity *= beta
        b.velocity += step
        step[:] = b.velocity
    # einsum, not BLAS (step @ step): a multi-threaded BLAS dot spins on cores the ranks share
    b.step_sq.append(float(np.einsum("i,i->", step, step)))
    del b.step_sq[:-_STEP_HISTORY]
    b.t += 1
    if getattr(bucket, "is_last", lambda: False)():
        state.iteration += 1

    np.divide(step, lr, out=step)
    if perm is not None:
        out = np.empty_like(step)
        out[perm] = step
        step = out
    return completed(write_back(buf, step))  # one conversion back to the bucket's dtype and device


def register(ddp_model, state: HookState):
    """Checks ``state`` against ``ddp_model`` and registers ``comm_hook``; returns ``state``.

    Checks up front what the hook would otherwise find at the first backward pass: the state
    type (TypeError), the world size of the process group (ValueError) and the parameters'
    dtypes (TypeError).
    """
    if not isinstance(state, HookState):
        raise TypeError(f"pyqsgd.torch.register: state must be a HookState, got {type(state).__name__}")
    if not hasattr(ddp_model, "register_comm_hook"):
        raise TypeError("pyqsgd.torch.register: ddp_model must be a torch.nn.parallel.DistributedDataParallel model, got "
                        f"{type(ddp_model).__name__}")
    pg = state.process_group
    state._check_world(dist.get_world_size(pg))
    for p in ddp_model.parameters():
        if p.requires_grad:
            check_dtype(p.dtype)
    ddp_model.register_comm_hook(state, comm_hook)
    return state
