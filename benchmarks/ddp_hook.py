"""DDP communication hooks on 2 gloo processes: ms per step, compute/communication split, bytes.

    python benchmarks/ddp_hook.py                 # 2 ranks, 40 timed steps, 3 repeats
    python benchmarks/ddp_hook.py --steps 20 --repeats 5 --hooks allreduce,powersgd,ef-topk

Same model (an MLP 784-256-256-10, 269,322 parameters, float32), same synthetic batch (64 per
rank), plain SGD; each hook runs on 2 CPU ranks with one thread each. Columns:

* ``step``: median ms of a full training step (forward, backward with DDP's hook, SGD update);
* ``compute``: median ms of the same step on the bare module (no DDP, no communication);
* ``comm+cmp``: ``step - compute``, i.e. communication plus compression overhead;
* ``hook``: median ms spent inside the hook function per step (for pyqsgd: everything, because
  its hook is synchronous; for torch's hooks: compression and launching the async all-reduce,
  the wait shows up in ``step``), and ``xchg``: pyqsgd's all_gather part of ``hook``;
* ``bytes``: bytes one rank puts into collectives per step (all_reduce / all_gather inputs,
  counted by wrapping torch.distributed's functions; DDP's built-in all-reduce is 4 d). With
  2 ranks a ring all-reduce and an all-gather both send exactly that much per rank;
  ``payload``: pyqsgd's payload bits / 8 (what the simulator counts), without framing/padding.

Each repeat runs every hook once, in a fresh pair of processes, so a busy machine shows as a
spread (min-max over repeats) rather than as a bias against one hook.
"""
import argparse
import datetime
import os
import socket
import statistics
import sys
import time

try:
    import torch
    import torch.distributed as dist
    import torch.multiprocessing as mp
except ImportError:  # `pyqsgd bench` runs every script: without torch this one has nothing to measure
    print("ddp_hook: skipped, PyTorch is not installed (pip install 'pyqsgd[torch]')")
    sys.exit(0)

HOOKS = ["allreduce", "fp16", "powersgd", "ef-topk", "ef-signgd", "qsgd", "diana-induced"]
WARMUP = 5  # PowerSGD starts after 2 iterations; DDP rebuilds buckets after the first


def make_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256),
                               torch.nn.ReLU(), torch.nn.Linear(256, 10))


def make_hook(name, lr):
    """(state, hook) for DDP.register_comm_hook, or None for DDP's built-in all-reduce."""
    from torch.distributed.algorithms.ddp_comm_hooks import default_hooks, powerSGD_hook

    import pyqsgd as pq
    import pyqsgd.torch as pqt

    if name == "allreduce":
        return None
    if name == "fp16":
        return None, default_hooks.fp16_compress_hook
    if name == "powersgd":
        return (powerSGD_hook.PowerSGDState(None, matrix_approximation_rank=2, start_powerSGD_iter=2,
                                            min_compression_rate=2), powerSGD_hook.powerSGD_hook)
    methods = {"ef-topk": pq.methods.EF(pq.TopK(ratio=0.01)), "ef-signgd": pq.methods.EFSignSGD(),
               "qsgd": pq.methods.DCGD(pq.QSGD(levels=4)),
               "diana-induced": pq.methods.DIANA(pq.induced(pq.TopK(ratio=0.01), pq.RandK(ratio=0.01)))}
    return pqt.HookState(methods[name], key=0, lr=lr), pqt.comm_hook


class Meter:
    """Bytes handed to collectives and seconds spent in the hook / in pyqsgd's exchange."""

    def __init__(self):
        self.bytes = 0
        self.hook = 0.0
        self.xchg = 0.0

    def wrap_collectives(self):
        for fname in ("all_reduce", "all_gather"):
            orig = getattr(dist, fname)

            def counted(*args, _orig=orig, _f=fname, **kw):
                t = args[0] if _f == "all_reduce" else args[1]
                self.bytes += t.numel() * t.element_size()
                return _orig(*args, **kw)

            setattr(dist, fname, counted)

    def wrap_exchange(self):
        import pyqsgd.torch._hook as H

        orig = H._exchange

        def timed(*args):
            t0 = time.perf_counter()
            try:
                return orig(*args)
            finally:
                self.xchg += time.perf_counter() - t0

        H._exchange = timed

    def timed_hook(self, hook):
        def run(state, bucket):
            t0 = time.perf_counter()
            try:
                return hook(state, bucket)
            finally:
                self.hook += time.perf_counter() - t0

        return run


def step_fn(model, opt, X, y):
    def step():
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(X), y).backward()
        opt.step()

    return step


def median_ms(fn, steps, meter=None):
    times, hooks, xchgs, nbytes = [], [], [], []
    for _ in range(steps):
        if meter is not None:
            meter.hook = meter.xchg = 0.0
            meter.bytes = 0
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if meter is not None:
            hooks.append(meter.hook)
            xchgs.append(meter.xchg)
            nbytes.append(meter.bytes)
    med = lambda v: 1e3 * statistics.median(v)  # noqa: E731
    return med(times), (med(hooks), med(xchgs), statistics.median(nbytes)) if meter else None


def rank_main(rank, world, port, name, steps, out):
    from torch.nn.parallel import DistributedDataParallel as DDP

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    import pyqsgd as pq

    pq.set_num_threads(1)  # two ranks share the cores: OpenMP teams per rank would only contend
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=300))
    meter = Meter()
    meter.wrap_collectives()
    meter.wrap_exchange()
    lr = 0.05
    g = torch.Generator().manual_seed(rank)
    X, y = torch.randn(64, 784, generator=g), torch.randint(10, (64,), generator=g)

    bare = make_model()
    bare_step = step_fn(bare, torch.optim.SGD(bare.parameters(), lr=lr), X, y)
    for _ in range(WARMUP):
        bare_step()
    compute, _ = median_ms(bare_step, steps)

    ddp = DDP(make_model())
    hook = make_hook(name, lr)
    state = None
    if hook is not None:
        state, fn = hook
        ddp.register_comm_hook(state, meter.timed_hook(fn))
    step = step_fn(ddp, torch.optim.SGD(ddp.parameters(), lr=lr), X, y)
    for _ in range(WARMUP):
        step()
    bits0 = getattr(state, "bits_sent", 0)
    ms, (hook_ms, xchg_ms, nbytes) = median_ms(step, steps, meter)
    d = sum(p.numel() for p in ddp.parameters())
    if hook is None:
        nbytes = 4 * d  # DDP's C++ reducer all-reduces the float32 buckets (not visible to Python)
    payload = (state.bits_sent - bits0) / 8 / steps if hasattr(state, "bits_sent") else float("nan")
    row = torch.tensor([ms, compute, hook_ms, xchg_ms, nbytes, payload, d], dtype=torch.float64)
    rows = [torch.zeros_like(row) for _ in range(world)]
    dist.all_gather(rows, row)
    if rank == 0:
        torch.save(torch.stack(rows), out)
    del ddp
    dist.barrier()
    dist.destroy_process_group()


def run_one(name, steps, world, out):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(rank_main, args=(world, port, name, steps, out), nprocs=world)
    return torch.load(out).mean(0).tolist()  # mean over ranks (they wait for each other)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--hooks", default=",".join(HOOKS))
    args = p.parse_args(argv)
    names = args.hooks.split(",")
    unknown = set(names) - set(HOOKS)
    if unknown:
        sys.exit(f"unknown hooks {sorted(unknown)}; choose from {HOOKS}")
    # One thread per rank everywhere (torch, pyqsgd's OpenMP, NumPy's BLAS), set before the ranks
    # start: two ranks on shared cores with thread teams each only measure contention.
    os.environ.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    out = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"ddp_hook_bench_{os.getpid()}.pt")
    runs = {n: [] for n in names}
    for _ in range(args.repeats):
        for n in names:
            runs[n].append(run_one(n, args.steps, 2, out))
    d = int(runs[names[0]][0][6])
    print(f"MLP 784-256-256-10, d={d}, 2 gloo ranks x 1 thread, batch 64/rank, median of {args.steps} steps; "
          f"median [min-max] over {args.repeats} repeats")
    print(f"{'hook':<14} {'step ms':>20} {'compute':>8} {'comm+cmp':>9} {'hook ms':>8} {'xchg':>6} "
          f"{'bytes/step':>11} {'payload B':>10} {'vs 4d':>7}")

    def span(v):
        return f"{statistics.median(v):6.1f} [{min(v):5.1f}-{max(v):5.1f}]"

    for n in names:
        cols = list(zip(*runs[n]))
        ms, comp, hook, xchg, nbytes, payload = (list(c) for c in cols[:6])
        over = [a - b for a, b in zip(ms, comp)]
        pay = "" if payload[0] != payload[0] else f"{statistics.median(payload):10.0f}"
        print(f"{n:<14} {span(ms):>20} {statistics.median(comp):8.1f} {statistics.median(over):9.1f} "
              f"{statistics.median(hook):8.1f} {statistics.median(xchg):6.1f} {statistics.median(nbytes):11.0f} "
              f"{pay:>10} {statistics.median(nbytes) / (4 * d):7.4f}")
    os.remove(out)


if __name__ == "__main__":
    main()
