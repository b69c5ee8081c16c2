"""Multi-process scenarios for the pyqsgd.torch tests (not collected by pytest).

``python torch_ddp_worker.py launch SCENARIO WORLD OUTDIR [TIMEOUT]`` starts WORLD ranks of
this script as real processes (gloo on 127.0.0.1, a free port), waits for all of them with a
timeout (killing them on expiry, so a hang fails instead of blocking) and exits non-zero if any
rank failed. Each rank writes ``OUTDIR/rank{r}.pt`` (a dict of results) for the test to check.
"""
import datetime
import os
import socket
import subprocess
import sys
import time
import traceback


def launch(scenario, world, outdir, timeout):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for r in range(world):
        env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(r),
                   WORLD_SIZE=str(world), OMP_NUM_THREADS="1")
        procs.append(subprocess.Popen([sys.executable, __file__, "rank", scenario, outdir], env=env, cwd=outdir))
    deadline = time.monotonic() + timeout
    codes = []
    for p in procs:
        try:
            codes.append(p.wait(timeout=max(0.1, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            for q in procs:
                if q.poll() is None:
                    q.kill()
            print(f"launch: scenario {scenario} timed out after {timeout}s", file=sys.stderr)
            return 3
    return 0 if all(c == 0 for c in codes) else 1


def run(scenario, world, outdir, timeout=150, env=None):
    """For the tests: launches a scenario in a subprocess (extra ``env`` for the ranks) and
    returns each rank's result dict; fails with the ranks' stderr if any rank failed."""
    import torch

    proc = subprocess.run([sys.executable, __file__, "launch", scenario, str(world), str(outdir), str(timeout)],
                          cwd=outdir, capture_output=True, text=True, timeout=timeout + 30,
                          env=None if env is None else dict(os.environ, **env))
    assert proc.returncode == 0, f"scenario {scenario} failed:\n{proc.stderr[-4000:]}"
    return [torch.load(os.path.join(outdir, f"rank{r}.pt"), weights_only=False) for r in range(world)]


# ---- the ranks --------------------------------------------------------------------------------
import numpy as np  # noqa: E402


def setup():
    import torch.distributed as dist

    # PYQSGD_TEST_BACKEND=nccl runs the CUDA scenarios on NCCL (test_torch_cuda.py)
    dist.init_process_group(os.environ.get("PYQSGD_TEST_BACKEND", "gloo"), timeout=datetime.timedelta(seconds=40))
    return dist.get_rank(), dist.get_world_size()


def mlp(seed, d_in=16, hidden=12, out=3):
    import torch

    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(d_in, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, out))


def toy_data(rank, n=64, d_in=16, out=3):
    import torch

    g = torch.Generator().manual_seed(1000 + rank)
    X = torch.randn(n, d_in, generator=g)
    W = torch.randn(d_in, out, generator=torch.Generator().manual_seed(7))
    return X, (X @ W).argmax(1)


def train(model, state, X, y, steps, lr, hook=True):
    """Full-batch SGD on the rank's data with DDP; returns per-step local losses."""
    import torch
    from torch.nn.parallel import DistributedDataParallel as DDP

    import pyqsgd.torch as pqt

    ddp = DDP(model)
    if hook:
        pqt.register(ddp, state)
    opt = torch.optim.SGD(ddp.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(ddp(X), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return ddp, losses


def global_loss(model, X, y):
    import torch
    import torch.distributed as dist

    with torch.no_grad():
        t = torch.tensor([float(torch.nn.functional.cross_entropy(model(X), y))])
    dist.all_reduce(t)
    return float(t) / dist.get_world_size()


def flat(model):
    import torch

    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).double().cpu().numpy()


def scenario_identity(rank, world):
    """DDP's default all-reduce vs the hook with DCGD(Identity): same parameters."""
    import pyqsgd as pq
    import pyqsgd.torch as pqt

    X, y = toy_data(rank)
    ref, _ = train(mlp(0), None, X, y, steps=6, lr=0.3, hook=False)
    state = pqt.HookState(pq.methods.DCGD(pq.Identity()), key=0, lr=0.3)
    got, _ = train(mlp(0), state, X, y, steps=6, lr=0.3)
    return {"ref": flat(ref.module), "got": flat(got.module), "bits_sent": state.bits_sent,
            "bits_received": state.bits_received, "d": sum(p.numel() for p in got.parameters())}


def scenario_train(rank, world):
    """EF + TopK and DIANA(induced(TopK, RandK)): loss goes down; bits recorded independently."""
    import pyqsgd as pq
    import pyqsgd.torch as pqt

    out = {}
    X, y = toy_data(rank)
    methods = {"ef_topk": (pq.methods.EF(pq.TopK(k=20)), 0.5),
               "diana_induced": (pq.methods.DIANA(pq.induced(pq.TopK(k=15), pq.RandK(k=15))), 0.2)}
    for name, (method, lr) in methods.items():
        seen = {"payload_bits": [0] * world, "sizes": {}}

        def observer(index, t, statuses, payloads, seen=seen):
            for r, (s, p) in enumerate(zip(statuses, payloads)):
                if s == 1:
                    seen["payload_bits"][r] += pq.Message.from_bytes(p).bits

        state = pqt.HookState(method, key=3, lr=lr, observer=observer)
        model = mlp(1)
        before = global_loss(model, X, y)
        ddp, _ = train(model, state, X, y, steps=25, lr=lr)
        after = global_loss(ddp.module, X, y)
        out[name] = {"before": before, "after": after, "bits_sent": state.bits_sent,
                     "bits_received": state.bits_received, "observed": seen["payload_bits"],
                     "buckets": {i: (s.size, s.rounds, s.bits_sent, s.bits_received)
                                 for i, s in state.buckets.items()},
                     "iteration": state.iteration}
    return out


def lsq_data(world, n_per=24, d=10):
    rng = np.random.default_rng(5)
    A = rng.standard_normal((n_per * world, d)).astype(np.float32)
    b = (A @ rng.standard_normal(d) + 0.1 * rng.standard_normal(n_per * world)).astype(np.float32)
    return A, b


def parity_methods():
    import pyqsgd as pq
    from pyqsgd.reference import methods as twins

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from python_stages_lib import Dither, Largest, Median, NumpyTopK

    return {"py_ef21_numpytopk": (twins.EF21(NumpyTopK(k=3)), 0.1),  # Python method + compressor
            "py_diana_dither": (twins.DIANA(Dither(levels=8)), 0.05),
            "ef_chain_largest_dither": (pq.methods.EF(pq.chain(Largest(k=4), Dither(levels=8))), 0.1),
            "dcgd_median": (pq.methods.DCGD(pq.QSGD(levels=4), aggregator=Median()), 0.1),
            "ef21_topk": (pq.methods.EF21(pq.TopK(k=3)), 0.1),
            "ef_topk": (pq.methods.EF(pq.TopK(k=3)), 0.1),
            "diana_induced": (pq.methods.DIANA(pq.induced(pq.TopK(k=2), pq.RandK(k=3))), 0.05),
            "dcgd_qsgd": (pq.methods.DCGD(pq.QSGD(levels=4)), 0.1),
            "signsgd_mv": (pq.methods.SignSGDMV(), 0.01),
            "ef21_momentum": (pq.methods.EF21(pq.TopK(k=3), server_momentum=0.5), 0.05)}


def fit_lsq(rank, world, method, lr, steps, bias=False, per_tensor=False):
    """Least squares as a Linear(d, 1) layer started at zero, full-batch gradient on the rank's
    shard, trained with the hook; returns (layer, HookState)."""
    import torch
    from torch.nn.parallel import DistributedDataParallel as DDP

    import pyqsgd.torch as pqt

    A, b = lsq_data(world)
    n_per = A.shape[0] // world
    Ai = torch.from_numpy(A[rank * n_per:(rank + 1) * n_per])
    bi = torch.from_numpy(b[rank * n_per:(rank + 1) * n_per])
    lin = torch.nn.Linear(A.shape[1], 1, bias=bias)
    for p in lin.parameters():
        torch.nn.init.zeros_(p)
    ddp = DDP(lin)
    state = pqt.register(ddp, pqt.HookState(method, key=11, lr=lr, per_tensor=per_tensor))
    opt = torch.optim.SGD(ddp.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        (0.5 * ((ddp(Ai).squeeze(1) - bi) ** 2).mean()).backward()
        opt.step()
    return lin, state


def scenario_parity(rank, world, steps=8):
    """Least squares as a bias-free Linear layer: the simulator's iterates and bits."""
    out = {}
    for name, (method, lr) in parity_methods().items():
        lin, state = fit_lsq(rank, world, method, lr, steps)
        out[name] = {"x": lin.weight.detach().double().numpy().ravel(), "bits_sent": state.bits_sent,
                     "bits_received": state.bits_received, "bits_down": state.bits_down}
    return out


def scenario_checkpoint(rank, world, k=4):
    """EF21 for 2k steps straight == k steps, save, restore into fresh DDP + HookState, k more."""
    import io

    import torch
    from torch.nn.parallel import DistributedDataParallel as DDP

    import pyqsgd as pq
    import pyqsgd.torch as pqt

    X, y = toy_data(rank)
    method = pq.methods.EF21(pq.induced(pq.TopK(k=10), pq.RandK(k=10)))

    def run(model, state, steps):
        ddp = DDP(model)
        pqt.register(ddp, state)
        opt = torch.optim.SGD(ddp.parameters(), lr=0.3)
        for _ in range(steps):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(ddp(X), y).backward()
            opt.step()
        return model

    straight_state = pqt.HookState(method, key=2, lr=0.3)
    straight = run(mlp(4), straight_state, 2 * k)

    first_state = pqt.HookState(method, key=2, lr=0.3)
    first = run(mlp(4), first_state, k)
    buf = io.BytesIO()
    torch.save({"model": first.state_dict(), "hook": first_state.state_dict()}, buf)
    buf.seek(0)
    ckpt = torch.load(buf, weights_only=True)
    resumed_model = mlp(99)
    resumed_model.load_state_dict(ckpt["model"])
    resumed_state = pqt.HookState(method, key=0, lr=1.0)
    resumed_state.load_state_dict(ckpt["hook"])
    resumed = run(resumed_model, resumed_state, k)
    errors = {}
    for name, bad in {"other_method": pqt.HookState(pq.methods.EF(pq.TopK(k=3)), lr=0.3),
                      "other_world": pqt.HookState(method, lr=0.3, world_size=world + 2)}.items():
        try:
            bad.load_state_dict(ckpt["hook"])
            errors[name] = None
        except ValueError as e:
            errors[name] = str(e)
    return {"straight": flat(straight), "resumed": flat(resumed), "bits_straight": straight_state.bits_sent,
            "bits_resumed": resumed_state.bits_sent, "key": resumed_state.key, "lr": resumed_state.lr,
            "iteration": resumed_state.iteration, "errors": errors}


class FakeBucket:
    """Stands in for dist.GradBucket (index() and buffer()) to feed chosen dtypes to the hook."""

    def __init__(self, tensor, index=0):
        self._t, self._i = tensor, index

    def index(self):
        return self._i

    def buffer(self):
        return self._t


class FakeBucketWithParams(FakeBucket):
    """A FakeBucket that also lists its parameters (shapes and data pointers), as GradBucket does."""

    def __init__(self, tensor, shapes, index=0):
        super().__init__(tensor, index)
        import torch

        self._params = [torch.empty(s) for s in shapes]

    def parameters(self):
        return self._params


def _catch(fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - the test inspects the type and message
        return (type(e).__name__, str(e))
    return None


def scenario_errors(rank, world):
    import torch

    import pyqsgd as pq
    import pyqsgd.torch as pqt

    out = {}
    method = pq.methods.DCGD(pq.Identity())
    # Half precision: widened to float64, the mean computed, rounded back.
    for dt in (torch.float16, torch.bfloat16):
        v = torch.arange(6, dtype=torch.float32).mul(0.25 + rank).to(dt)
        res = pqt.comm_hook(pqt.HookState(method, lr=0.5), FakeBucket(v.clone())).wait()
        out[str(dt)] = (str(res.dtype), res.float().numpy())
    out["complex"] = _catch(lambda: pqt.comm_hook(pqt.HookState(method, lr=0.1),
                                                   FakeBucket(torch.zeros(4, dtype=torch.complex64))))
    out["int"] = _catch(lambda: pqt.comm_hook(pqt.HookState(method, lr=0.1),
                                               FakeBucket(torch.zeros(4, dtype=torch.int32))))
    out["not_state"] = _catch(lambda: pqt.comm_hook(None, FakeBucket(torch.zeros(4))))
    out["wrong_world"] = _catch(lambda: pqt.comm_hook(pqt.HookState(method, lr=0.1, world_size=4),
                                                       FakeBucket(torch.zeros(4))))
    # World-size mismatch through real DDP training: every rank raises, none hangs.
    X, y = toy_data(rank)

    def ddp_wrong_world():
        import torch.nn.parallel as par

        ddp = par.DistributedDataParallel(mlp(0))
        ddp.register_comm_hook(pqt.HookState(method, lr=0.1, world_size=4), pqt.comm_hook)
        torch.nn.functional.cross_entropy(ddp(X), y).backward()

    out["ddp_wrong_world"] = _catch(ddp_wrong_world)
    out["register_wrong_world"] = _catch(
        lambda: pqt.register(torch.nn.parallel.DistributedDataParallel(mlp(0)),
                             pqt.HookState(method, lr=0.1, world_size=4)))
    # A non-finite gradient on rank 0 only: rank 0 raises ValueError, the others RuntimeError.
    g = torch.ones(5) * (float("nan") if rank == 0 else 1.0)
    out["nan_on_rank0"] = _catch(lambda: pqt.comm_hook(pqt.HookState(pq.methods.EF(pq.TopK(k=2)), lr=0.1),
                                                       FakeBucket(g)))
    # The group still works afterwards (no rank left inside a collective).
    out["after"] = pqt.comm_hook(pqt.HookState(method, lr=1.0), FakeBucket(torch.full((3,), float(rank)))).wait()
    return out


def scenario_float64(rank, world):
    """A float64 bucket stays float64; its values cross the wire as float32, said once by a warning."""
    import warnings

    import torch

    import pyqsgd as pq
    import pyqsgd.torch as pqt

    out = {}
    g = torch.tensor([1 / 3, 1e-9, 1 + 2**-40], dtype=torch.float64) * (rank + 1)
    state = pqt.HookState(pq.methods.DCGD(pq.Identity()), lr=1.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = [pqt.comm_hook(state, FakeBucket(g.clone())).wait() for _ in range(2)]
    out["dtype"] = str(res[0].dtype)
    out["values"] = res[1].numpy()
    out["warnings"] = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    # Real DDP training of a float64 model: parameters stay float64, bits as for float32.
    X, y = toy_data(rank)
    model = mlp(1).double()
    state = pqt.HookState(pq.methods.EF(pq.TopK(k=20)), key=3, lr=0.5)
    before = global_loss(model, X.double(), y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ddp, _ = train(model, state, X.double(), y, steps=10, lr=0.5)
    out["ddp"] = {"dtypes": sorted({str(p.dtype) for p in ddp.parameters()}), "before": before,
                  "after": global_loss(ddp.module, X.double(), y), "bits_sent": state.bits_sent}
    return out


def _observer(seen):
    def observer(index, t, statuses, payloads):
        seen.append((index, t, list(statuses), list(payloads)))

    return observer


PER_TENSOR_SHAPES = [(3, 4), (4,), (2,)]


def per_tensor_methods():
    import pyqsgd as pq

    return {"dcgd_topk": pq.methods.DCGD(pq.TopK(k=2)), "dcgd_qsgd": pq.methods.DCGD(pq.QSGD(levels=4)),
            "ef_signgd": pq.methods.EFSignSGD(), "diana_induced": pq.methods.DIANA(pq.induced(pq.TopK(k=1),
                                                                                         pq.RandK(k=1)))}


def per_tensor_vector(rank, d=18):
    return np.random.default_rng(40 + rank).standard_normal(d)


def scenario_per_tensor(rank, world):
    """per_tensor=True: (a) a bucket of known parameters and gradient, every payload recorded;
    (b) real DDP training of the MLP with per-tensor EF + TopK."""
    import torch

    import pyqsgd as pq
    import pyqsgd.torch as pqt

    out = {}
    g = torch.from_numpy(per_tensor_vector(rank)).float()
    for name, method in per_tensor_methods().items():
        seen = []
        state = pqt.HookState(method, key=9, lr=1.0, per_tensor=True, observer=_observer(seen))
        step = pqt.comm_hook(state, FakeBucketWithParams(g.clone(), PER_TENSOR_SHAPES)).wait()
        out[name] = {"payloads": seen[0][3], "bits_sent": state.bits_sent, "bits_received": state.bits_received,
                     "blocks": state.buckets[0].blocks, "step": step.double().numpy()}
    X, y = toy_data(rank)
    state = pqt.HookState(pq.methods.EF(pq.TopK(k=3)), key=3, lr=0.5, per_tensor=True)
    model = mlp(1)
    before = global_loss(model, X, y)
    ddp, _ = train(model, state, X, y, steps=25, lr=0.5)
    out["ddp"] = {"before": before, "after": global_loss(ddp.module, X, y), "bits_sent": state.bits_sent,
                  "bits_received": state.bits_received, "blocks": state.buckets[0].blocks,
                  "sizes": sorted(p.numel() for p in model.parameters()), "iteration": state.iteration}
    return out


def per_tensor_parity_methods():
    import pyqsgd as pq

    return {"ef21_topk": (pq.methods.EF21(pq.TopK(k=1)), 0.1), "dcgd_qsgd": (pq.methods.DCGD(pq.QSGD(levels=4)), 0.1),
            "ef_randk": (pq.methods.EF(pq.RandK(k=1)), 0.1)}


def scenario_per_tensor_parity(rank, world, steps=8):
    """Least squares with an intercept as Linear(10, 1): two parameter tensors, one per block."""
    out = {}
    for name, (method, lr) in per_tensor_parity_methods().items():
        lin, state = fit_lsq(rank, world, method, lr, steps, bias=True, per_tensor=True)
        by_ptr = {lin.weight.data_ptr(): "weight", lin.bias.data_ptr(): "bias"}
        order = [by_ptr[p] for p in state._buckets[0].ptrs]  # the bucket's canonical tensor order
        x = {"weight": lin.weight.detach().double().numpy().ravel(), "bias": lin.bias.detach().double().numpy()}
        out[name] = {"order": order, "x": np.concatenate([x[n] for n in order]), "bits_sent": state.bits_sent,
                     "bits_received": state.bits_received, "blocks": state.buckets[0].blocks}
    return out


def scenario_cuda(rank, world):
    """CUDA buckets (gloo: exchange on the host; NCCL: on the device): DDP's all-reduce vs the
    hook with Identity, and EF + TopK bits."""
    import torch

    import pyqsgd as pq
    import pyqsgd.torch as pqt

    dev = torch.device("cuda", rank % torch.cuda.device_count())
    torch.cuda.set_device(dev)
    X, y = (t.to(dev) for t in toy_data(rank))
    ref, _ = train(mlp(0).to(dev), None, X, y, steps=6, lr=0.3, hook=False)
    state = pqt.HookState(pq.methods.DCGD(pq.Identity()), key=0, lr=0.3)
    got, _ = train(mlp(0).to(dev), state, X, y, steps=6, lr=0.3)
    ef = pqt.HookState(pq.methods.EF(pq.TopK(k=20)), key=3, lr=0.5)
    ef_model, _ = train(mlp(1).to(dev), ef, X, y, steps=10, lr=0.5)
    half = FakeBucket(torch.arange(6, device=dev, dtype=torch.float16) * (rank + 1))
    h = pqt.comm_hook(pqt.HookState(pq.methods.DCGD(pq.Identity()), lr=1.0), half).wait()
    return {"ref": flat(ref.module), "got": flat(got.module), "devices": sorted({str(p.device.type) for p in
                                                                                   got.parameters()}),
            "ef_bits": ef.bits_sent, "half": (str(h.dtype), h.device.type, h.float().cpu().numpy())}


def rank_main(scenario, outdir):
    import torch
    import torch.distributed as dist

    rank, world = setup()
    try:
        result = globals()[f"scenario_{scenario}"](rank, world)
        torch.save(result, os.path.join(outdir, f"rank{rank}.pt"))
        import gc

        gc.collect()  # drop DDP reducers (they hold the group) before tearing gloo down
        dist.barrier()
    except Exception:
        traceback.print_exc()
        return 1
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "launch":
        timeout = float(sys.argv[5]) if len(sys.argv) > 5 else 120.0
        sys.exit(launch(sys.argv[2], int(sys.argv[3]), sys.argv[4], timeout))
    sys.exit(rank_main(sys.argv[2], sys.argv[3]))
