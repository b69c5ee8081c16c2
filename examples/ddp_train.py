"""Train a small MLP on the bundled digits data with DDP and a pyqsgd communication hook.

    torchrun --nproc_per_node=2 examples/ddp_train.py --method ef21-topk --steps 300
    python examples/ddp_train.py --small             # no torchrun: spawns --nproc local ranks

More machines: start the same command on every machine, with the machine count, its index and
one rendezvous address that all of them reach (here 2 machines x 4 GPUs = 8 ranks)::

    # on machine 0 (host0), and on machine 1 with --node_rank=1
    torchrun --nnodes=2 --node_rank=0 --nproc_per_node=4 \
        --rdzv_backend=c10d --rdzv_endpoint=host0:29500 --rdzv_id=pyqsgd-run \
        examples/ddp_train.py --device cuda --method ef21-topk --key 0

What changes from one machine: ``--nnodes``/``--node_rank``/``--rdzv_endpoint`` (or
``--master_addr``/``--master_port``); ``--device cuda`` trains on GPU ``LOCAL_RANK`` over NCCL
(gloo stays the CPU backend); if the machines have several network interfaces, pick the one
they share with ``NCCL_SOCKET_IFNAME=eth0`` (``GLOO_SOCKET_IFNAME`` for gloo), and
``NCCL_DEBUG=INFO`` shows what NCCL chose. Every rank must run the same method and ``--key``:
the hook's server step is replicated, so the ranks stay identical only if they agree on the
method, the key and lr (the key also addresses each rank's random draws by its global rank).

Each rank trains on its own iid shard (``pyqsgd.data.partition``) with minibatches; the hook
compresses each gradient bucket with the chosen method, exchanges the encoded messages with
all_gather, and every rank applies the same server step. Prints the full-data loss and
accuracy before/after and the bits each rank sent and received (payload bits, counted as the
simulator counts them), next to what uncompressed float32 all-reduce would send.
"""
import argparse
import datetime
import gc
import os
import socket
import time

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

import pyqsgd as pq
import pyqsgd.torch as pqt


def make_method(name):
    """(method, default lr) for each CLI choice."""
    if name == "ef21-topk":
        return pq.methods.EF21(pq.TopK(ratio=0.05)), 0.5
    if name == "ef-topk":
        return pq.methods.EF(pq.TopK(ratio=0.05)), 0.5
    if name == "induced":  # unbiased induced compressor (Horvath & Richtarik 2021) with DIANA shifts
        return pq.methods.DIANA(pq.induced(pq.TopK(ratio=0.05), pq.RandK(ratio=0.05))), 0.3
    if name == "dcgd-identity":  # plain data-parallel SGD, for reference
        return pq.methods.DCGD(pq.Identity()), 0.5
    if name == "signsgd-mv":
        return pq.methods.SignSGDMV(), 0.003
    raise ValueError(name)


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--method", default="ef21-topk",
                   choices=["ef21-topk", "ef-topk", "induced", "dcgd-identity", "signsgd-mv"])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--small", action="store_true", help="tiny model and 60 steps (CI / smoke test)")
    p.add_argument("--lr", type=float, default=None, help="default: a per-method value")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--key", type=int, default=0)
    p.add_argument("--nproc", type=int, default=2, help="ranks to spawn when not started by torchrun")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                   help="cuda: each rank trains on GPU LOCAL_RANK over NCCL; cpu: gloo")
    args = p.parse_args(argv)
    if args.small:
        args.hidden, args.steps = 16, min(args.steps, 60)
    return args


def full_loss(model, X, y):
    with torch.no_grad():
        out = model(X)
        return float(torch.nn.functional.cross_entropy(out, y)), float((out.argmax(1) == y).float().mean())


def train(args):
    rank, world = dist.get_rank(), dist.get_world_size()
    dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank))) if args.device == "cuda" else None
    X, y = pq.data.load_bundled("digits")
    shard = pq.data.partition(len(y), world, scheme="iid", key=args.key)[rank]
    Xt, yt = torch.from_numpy(X).to(dev), torch.from_numpy(y).to(dev)
    Xi, yi = Xt[shard], yt[shard]

    torch.manual_seed(args.key)  # same initial model on every rank (DDP also broadcasts rank 0's)
    model = torch.nn.Sequential(torch.nn.Linear(X.shape[1], args.hidden), torch.nn.Tanh(),
                                torch.nn.Linear(args.hidden, 10)).to(dev)
    method, default_lr = make_method(args.method)
    lr = args.lr if args.lr is not None else default_lr
    ddp = DDP(model, device_ids=None if dev is None else [dev])  # CUDA buckets: the hook copies to host and back
    state = pqt.register(ddp, pqt.HookState(method, key=args.key, lr=lr))
    opt = torch.optim.SGD(ddp.parameters(), lr=lr)  # plain SGD with the hook's lr: applies the method's step
    gen = torch.Generator().manual_seed(args.key * 1000 + rank)  # on the host: indices move with Xi[idx]

    loss0, acc0 = full_loss(model, Xt, yt)
    if rank == 0:
        d = sum(p.numel() for p in model.parameters())
        print(f"{state.method!r}  world={world}  d={d}  lr={lr}  steps={args.steps}  batch={args.batch}/rank")
        print(f"step {0:5d}  loss {loss0:.4f}  acc {acc0:.3f}")
    t0 = time.perf_counter()
    for step in range(1, args.steps + 1):
        idx = torch.randint(len(yi), (args.batch,), generator=gen).to(Xi.device)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(ddp(Xi[idx]), yi[idx]).backward()
        opt.step()
        if rank == 0 and (step % max(1, args.steps // 5) == 0 or step == args.steps):
            loss, acc = full_loss(model, Xt, yt)
            print(f"step {step:5d}  loss {loss:.4f}  acc {acc:.3f}")
    elapsed = time.perf_counter() - t0

    loss1, acc1 = full_loss(model, Xt, yt)
    counts = torch.tensor([state.bits_sent, state.bits_received, state.bits_down], dtype=torch.int64, device=dev)
    table = [torch.zeros_like(counts) for _ in range(world)]
    dist.all_gather(table, counts)
    if rank == 0:
        d = sum(p.numel() for p in model.parameters())
        dense = 32 * d * args.steps
        print(f"loss {loss0:.4f} -> {loss1:.4f}, accuracy {acc0:.3f} -> {acc1:.3f}  ({elapsed:.1f} s)")
        print("rank   bits_sent  bits_received  sent/uncompressed")
        for r, row in enumerate(table):
            sent, received, _ = (int(v) for v in row)
            print(f"{r:4d} {sent:11d} {received:14d} {sent / dense:18.4f}")
        print(f"uncompressed float32 would send {dense} bits per rank; "
              f"buckets: {[(s.index, s.size) for s in state.buckets.values()]}")


def run_rank(rank, world, port, args):
    if rank is not None:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    if args.device == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", rank or 0)))
    backend = "nccl" if args.device == "cuda" else "gloo"  # NCCL moves CUDA tensors only
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=120))
    try:
        train(args)
        # Free DDP (its reducer holds the process group) and let every rank finish before
        # tearing gloo down; otherwise gloo's threads may outlive the group at exit.
        gc.collect()
        dist.barrier()
    finally:
        dist.destroy_process_group()


def main(argv=None):
    args = parse(argv)
    if "RANK" in os.environ:  # started by torchrun
        run_rank(None, None, None, args)
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torch.multiprocessing.spawn(lambda_rank, args=(args.nproc, port, args), nprocs=args.nproc)


def lambda_rank(rank, world, port, args):  # top-level so spawn can pickle it
    run_rank(rank, world, port, args)


if __name__ == "__main__":
    main()
