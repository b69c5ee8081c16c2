"""The DDP communication hook: worker step -> all-gather of encoded messages -> replicated
server step -> ``step / lr`` as the bucket's gradient."""
import numpy as np
import torch
import torch.distributed as dist

from .._core import Message
from ._state import _STEP_HISTORY, HookState

__all__ = ["comm_hook", "register"]

# Bucket dtypes the hook accepts. The method runs in float64 and messages carry float32 values
# (the compressors' wire format), so half-precision buckets are widened on the way in and the
# result is rounded back to the bucket's dtype on the way out; no precision is lost in between.
_SUPPORTED = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
_SENT, _SKIPPED, _FAILED = 1, 2, -1


def _check_dtype(dtype):
    if dtype not in _SUPPORTED:
        raise TypeError(f"pyqsgd.torch: gradient buckets of dtype {dtype} are not supported; pyqsgd methods work "
                        "on real floating-point gradients (float32, float64, and float16/bfloat16, which are "
                        "widened to float64 and rounded back)")


def _as_float64(buf):
    """The bucket as a float64 NumPy array: a zero-copy view for a float64 CPU bucket, otherwise
    one conversion (float32 -> float64, fused with the device move for GPU buckets)."""
    t = buf.detach()
    if t.device.type != "cpu" or t.dtype != torch.float64:
        t = t.to(device="cpu", dtype=torch.float64)
    return t.numpy()


def _layout(bucket):
    """(shapes, data pointers) of the bucket's parameters in buffer order, or (None, None)."""
    params = getattr(bucket, "parameters", None)
    if params is None:
        return None, None
    ps = params()
    return [tuple(p.shape) for p in ps], [p.data_ptr() for p in ps]


def _exchange(group, world, status, payload, device):
    """All-gathers every rank's (status, message bytes). Lengths go first, then payloads padded to
    the longest one; each is trimmed back to its length."""
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

    1. the bucket (this rank's local gradient g_i) becomes a float64 NumPy array (one
       conversion from float32; a view for float64 CPU buckets), and this rank runs the method's
       worker step on it with key ``Key(seed, round=t, worker=rank)``: a ``Message`` or a skip;
    2. every rank's encoded message (``msg.to_bytes()``) goes over ``all_gather`` (lengths
       first, then the payloads padded to the longest);
    3. every rank decodes all messages and runs the same server step (aggregation, votes, EF21
       or DIANA server state), so the ranks stay identical without a broadcast;
    4. the bucket is overwritten with ``step / lr`` and returned in a completed Future: the
       optimizer's ``p -= lr * grad`` then applies x <- x - step, the method's update. The
       aggregation (e.g. the 1/world_size of ``Mean``) is part of the step: do not divide again.

    The hook is synchronous (the exchange finishes before it returns): simple and
    deterministic, at the cost of DDP's overlap of communication with the backward pass.

    Use plain SGD (no momentum, no weight decay) with ``lr == state.lr`` to get exactly the
    method's iteration; server momentum belongs in the method (``server_momentum=``).

    Errors: a wrong state type raises TypeError; an unsupported bucket dtype TypeError; a world
    size different from ``state.world_size`` ValueError -- all before any communication, so
    no rank waits for another. A failure inside this rank's worker step (e.g. a non-finite
    gradient) is announced to the other ranks in the length exchange and raised on every rank.
    """
    if not isinstance(state, HookState):
        raise TypeError(f"pyqsgd.torch.comm_hook: state must be a pyqsgd.torch.HookState, got "
                        f"{type(state).__name__}; register with ddp.register_comm_hook(HookState(method, lr=...), "
                        "comm_hook)")
    buf = bucket.buffer()
    _check_dtype(buf.dtype)
    group = state.process_group
    world, rank = dist.get_world_size(group), dist.get_rank(group)
    state._check_world(world)
    index = int(bucket.index())
    shapes, ptrs = _layout(bucket)
    b, perm = state._bucket(index, int(buf.numel()), shapes, ptrs)
    lr = state.lr

    status, payload, error, msg = _FAILED, b"", None, None
    try:
        v = _as_float64(buf)
        if perm is not None:  # DDP reordered the bucket: back to the method's canonical order
            v = v[perm]
        if not np.isfinite(v).all():
            raise ValueError(f"pyqsgd.torch: non-finite gradient in bucket {index} on rank {rank} at round {b.t}")
        status, msg = b.runner.worker(rank, b.t, lr, v, b.step_sq)
        payload = msg.to_bytes() if status == _SENT else b""
    except Exception as e:  # reported to every rank below, so none is left waiting
        status, error = _FAILED, e
    device = buf.device if dist.get_backend(group) == "nccl" else torch.device("cpu")
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
    b.step_sq.append(float(step @ step))
    del b.step_sq[:-_STEP_HISTORY]
    b.t += 1
    if getattr(bucket, "is_last", lambda: False)():
        state.iteration += 1

    np.divide(step, lr, out=step)
    if perm is not None:
        out = np.empty_like(step)
        out[perm] = step
        step = out
    buf.copy_(torch.from_numpy(step))  # one conversion back to the bucket's dtype and device
    fut = torch.futures.Future(devices=[buf.device]) if buf.device.type == "cuda" else torch.futures.Future()
    fut.set_result(buf)
    return fut


def register(ddp_model, state: HookState):
    """Checks ``state`` against ``ddp_model`` and registers ``comm_hook``; returns ``state``.

    Checks up front what the hook would otherwise find at the first backward pass: the state
    type (TypeError), the world size of the process group (ValueError) and the parameters'
    dtypes (TypeError).
    """
    if not isinstance(state, HookState):
        raise TypeError(f"pyqsgd.torch.register: state must be a HookState, got {type(state).__name__}")
    if not hasattr(ddp_model, "register_comm_hook"):
        raise TypeError("pyqsgd.torch.register: expected a torch.nn.parallel.DistributedDataParallel model, got "
                        f"{type(ddp_model).__name__}")
    pg = state.process_group
    state._check_world(dist.get_world_size(pg))
    for p in ddp_model.parameters():
        if p.requires_grad:
            _check_dtype(p.dtype)
    ddp_model.register_comm_hook(state, comm_hook)
    return state
