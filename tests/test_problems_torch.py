"""TorchProblem (pyqsgd.problems_torch) and the grad_batch protocol of simulate's Python path.

Tolerances. A float32 model computes each gradient entry as a reduction over at most ~2000
products; two summation orders of the same float32 terms differ by about sqrt(n) u sum|terms|
(u = 6e-8 unit roundoff, sqrt(2000) ~ 45), i.e. ~3e-6 of the entry scale, and cancellation
within a gradient entry can cost a small further factor: we allow 1e-5 of max|g|. A float64
model makes the same comparisons at u = 1.1e-16, so 1e-11 there checks that padding, chunking
and the per-worker points are exact (not just close). Whole runs (10-20 rounds, lr <= 0.5)
carry the float32 differences of each round's gradients into x, so losses agree to 1e-5.
"""
import doctest
import pickle

import numpy as np
import pytest

import pyqsgd as pq

torch = pytest.importorskip("torch", reason="TorchProblem needs PyTorch (pip install 'pyqsgd[torch]')")
from pyqsgd import problems_torch  # noqa: E402
from pyqsgd.problems_torch import TorchProblem  # noqa: E402

F32 = 1e-5   # relative to max|g|, float32 model (module docstring)
F64 = 1e-11  # same for a float64 model


def _seeded(build, seed=0):
    """A model initialised from its own seed, leaving torch's global RNG as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def _mlp(double=False):
    net = _seeded(lambda: torch.nn.Sequential(torch.nn.Linear(64, 12), torch.nn.Tanh(), torch.nn.Linear(12, 10)))
    return net.double() if double else net


def _cnn():
    return _seeded(lambda: torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 6, 3), torch.nn.ReLU(), torch.nn.Flatten(),
        torch.nn.Linear(6 * 4 * 4, 10)))


@pytest.fixture(scope="module")
def digits():
    X, y = pq.data.load_bundled("digits")
    return X[:600], y[:600]


def _close(a, b, rel):
    a, b = np.asarray(a), np.asarray(b)
    np.testing.assert_allclose(a, b, rtol=0, atol=rel * np.abs(b).max())


def _batches(sizes, n, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.choice(n, s, replace=False) for s in sizes]


def _reference_grad(module, X, y, idx):
    """Ordinary autograd on the whole model (a fresh copy with the same parameters)."""
    module.zero_grad(set_to_none=True)
    dtype = next(module.parameters()).dtype
    out = module(torch.as_tensor(X[idx]).to(dtype))
    torch.nn.functional.cross_entropy(out, torch.as_tensor(y[idx])).backward()
    return torch.cat([p.grad.reshape(-1) for p in module.parameters()]).double().numpy()


# -- attributes --------------------------------------------------------------------------------
def test_attributes_blocks_x0_and_to_module(digits):
    X, y = digits
    net = _cnn()
    prob = TorchProblem(net, X.reshape(-1, 1, 8, 8), y)
    params = list(net.parameters())
    assert prob.blocks == [p.numel() for p in params] and sum(prob.blocks) == prob.dim
    assert prob.n_samples == 600 and prob.dtype == torch.float32
    np.testing.assert_array_equal(prob.x0, torch.cat([p.detach().reshape(-1) for p in params]).double().numpy())
    assert prob.x0.dtype == np.float64 and prob.x0.shape == (prob.dim,)
    before = [p.detach().clone() for p in params]
    x = prob.x0 + np.linspace(-1, 1, prob.dim)
    m = prob.to_module(x)
    assert m is not net
    back = torch.cat([p.detach().reshape(-1) for p in m.parameters()]).double().numpy()
    np.testing.assert_array_equal(back, x.astype(np.float32))  # the float32 model holds float32(x)
    assert all(torch.equal(p, q) for p, q in zip(net.parameters(), before))  # original untouched
    np.testing.assert_array_equal(TorchProblem(prob.to_module(prob.x0), X.reshape(-1, 1, 8, 8), y).x0, prob.x0)
    assert repr(prob) == "TorchProblem(model=Sequential, n=600, dim=%d, loss='cross_entropy', batched=True, " \
                         "dtype=float32)" % prob.dim


def test_blocks_plug_into_blockwise_and_hash_is_recorded(digits):
    X, y = digits
    prob = TorchProblem(_mlp(), X, y, dataset="digits600")
    c = pq.blockwise(pq.TopK(ratio=0.01), prob.blocks)
    assert c.sizes == prob.blocks
    # ratio 0.01 keeps max(1, round(0.01 n)) per block: 8, 1, 1, 1 of 768, 12, 120, 10 entries
    assert np.count_nonzero(c(np.arange(1.0, prob.dim + 1))) == 8 + 1 + 1 + 1
    assert prob.data_hash == pq.data.content_hash(X, y.astype(np.int64))  # float32 2-D X, int64 labels
    hist = pq.simulate(prob, pq.methods.EF21(c), n_workers=4, rounds=2, lr=0.5, x0=prob.x0, batch_size=16)
    assert hist.meta["dataset_hash"] == prob.data_hash and hist.meta["dataset"] == "digits600"
    assert hist.meta["dataset_n"] == 600 and hist.meta["dataset_d"] == 64


def test_frozen_parameters_stay_fixed(digits):
    X, y = digits
    net = _mlp()
    net[0].weight.requires_grad_(False)
    prob = TorchProblem(net, X, y)
    assert prob.blocks == [12, 120, 10]
    m = prob.to_module(np.zeros(prob.dim))
    assert torch.equal(m[0].weight, net[0].weight) and not m[2].weight.any()


# -- gradients ---------------------------------------------------------------------------------
@pytest.mark.parametrize("double", [False, True], ids=["float32", "float64"])
@pytest.mark.parametrize("batched", [True, False], ids=["batched", "loop"])
def test_grad_and_loss_match_autograd_on_the_full_model(digits, double, batched):
    X, y = digits
    net = _mlp(double)
    prob = TorchProblem(net, X, y, batched=batched, eval_chunk=100)  # several chunks of the full data
    x = prob.x0 + 0.05 * np.random.default_rng(1).standard_normal(prob.dim)
    ref_module = prob.to_module(x)
    rel = F64 if double else F32
    for idx in (np.arange(600), np.arange(0, 600, 7), np.array([5])):
        _close(prob.grad(x, idx), _reference_grad(ref_module, X, y, idx), rel)
    with torch.no_grad():
        full = torch.nn.functional.cross_entropy(ref_module(torch.as_tensor(X).to(prob.dtype)), torch.as_tensor(y))
    assert prob.loss(x) == pytest.approx(float(full), rel=1e-10 if double else 1e-6)


@pytest.mark.parametrize("double", [False, True], ids=["float32", "float64"])
def test_grad_batch_rows_are_the_per_worker_gradients(digits, double):
    X, y = digits
    prob = TorchProblem(_mlp(double), X, y)
    loop = TorchProblem(_mlp(double), X, y, batched=False)
    rel = F64 if double else F32
    batches = _batches([16, 3, 12, 40, 1, 7, 9], 600)  # unequal sizes: padded rows
    x = prob.x0
    shared = prob.grad_batch(x, batches)
    assert shared.shape == (7, prob.dim) and shared.dtype == np.float64
    each = np.stack([prob.grad(x, b) for b in batches])
    _close(shared, each, rel)
    _close(loop.grad_batch(x, batches), each, rel)
    points = x + 0.1 * np.random.default_rng(2).standard_normal((7, prob.dim))  # one local iterate per worker
    per = prob.grad_batch(points, batches)
    _close(per, np.stack([prob.grad(p, b) for p, b in zip(points, batches)]), rel)
    _close(loop.grad_batch(points, batches), per, rel)
    # Chunking over workers changes nothing but the calls: largest first, at most max_samples
    # padded samples per call, no batch padded beyond twice its size.
    sizes = [b.size for b in batches]
    assert prob._chunks(sizes) == [[3], [0, 2, 6], [5], [1], [4]]  # 12 and 9 padded to 16
    small = TorchProblem(_mlp(double), X, y, max_samples=20)
    assert small._chunks(sizes) == [[3], [0], [2], [6, 5], [1], [4]]  # 7 padded to 9
    assert small._chunks([5, 4, 3, 9, 6]) == [[3, 4], [0, 1, 2]]
    _close(small.grad_batch(points, batches), per, rel)


def test_batch_statistics_models_are_grouped_not_padded(digits):
    """BatchNorm with track_running_stats=False normalises over each call's samples: padding would
    change the statistics, so equal batch sizes share a call and nothing is padded."""
    X, y = digits
    def build():
        return torch.nn.Sequential(torch.nn.Linear(64, 8), torch.nn.BatchNorm1d(8, track_running_stats=False),
                                   torch.nn.Tanh(), torch.nn.Linear(8, 10)).double()

    prob, loop = TorchProblem(_seeded(build), X, y), TorchProblem(_seeded(build), X, y, batched=False)
    assert prob._chunks([4, 9, 4, 9, 2]) == [[1, 3], [0, 2], [4]]
    batches = _batches([4, 9, 4, 9, 2], 600)
    _close(prob.grad_batch(prob.x0, batches), loop.grad_batch(prob.x0, batches), F64)
    _close(prob.grad(prob.x0, np.arange(600)), loop.grad(prob.x0, np.arange(600)), F64)
    bn_eval = _seeded(lambda: torch.nn.Sequential(torch.nn.Linear(64, 8), torch.nn.BatchNorm1d(8),
                                                  torch.nn.Linear(8, 10))).eval()
    assert not TorchProblem(bn_eval, X, y)._batch_stats  # eval: running statistics are fixed buffers


def test_mse_and_callable_losses(digits):
    X, y = digits
    target = np.eye(10, dtype=np.float32)[y]
    mse = TorchProblem(_mlp(True), X, target, loss="mse")
    own = TorchProblem(_mlp(True), X, target, loss=lambda out, t: ((out - t) ** 2).mean())
    batches = _batches([5, 11, 2], 600)
    _close(own.grad_batch(own.x0, batches), mse.grad_batch(mse.x0, batches), F64)
    assert own.loss(own.x0) == pytest.approx(mse.loss(mse.x0), rel=1e-12)
    reg = TorchProblem(_seeded(lambda: torch.nn.Linear(64, 1)), X, y.astype(np.float32), loss="mse")
    assert reg.y.shape == (600, 1)  # a 1-D target fits a (n, 1) output
    assert reg.predict(reg.x0).shape == (600, 1)
    with pytest.raises(ValueError, match="accuracy"):
        reg.accuracy(reg.x0)


# -- simulate ----------------------------------------------------------------------------------
def _pair(X, y, **kw):
    return TorchProblem(_mlp(), X, y, **kw), TorchProblem(_mlp(), X, y, batched=False, **kw)


@pytest.mark.parametrize("kw", [
    {"batch_size": [8, 16, 4, 32, 16]},
    {"batch_size": 12, "participation": [0.3, 0.6, 0.9, 1.0, 0.5]},
    {"batch_size": 10, "tau": 2},
    {"local_steps": 3, "local_lr": 0.2, "batch_size": [5, 10, 10, 20, 8]},
    {"local_steps": 2, "local_lr": 0.2},  # full local batches of unequal shards: padded
], ids=["hetero-batches", "participation", "tau", "local-steps", "local-full-batches"])
def test_batched_and_loop_give_the_same_run(digits, kw):
    X, y = digits
    fast, slow = _pair(X, y)
    parts = pq.data.partition(y, 5, scheme="dirichlet", alpha=1.0, min_size=40, key=0)
    common = dict(n_workers=5, rounds=10, lr=0.5, x0=fast.x0, partition=parts, key=3, log_every=2, **kw)
    method = pq.methods.EF21(pq.TopK(ratio=0.05))
    hf, hs = pq.simulate(fast, method, **common), pq.simulate(slow, method, **common)
    for c in ("round", "bits_up", "bits_down", "uploads", "skipped"):
        assert np.array_equal(getattr(hf, c), getattr(hs, c)), c
    np.testing.assert_allclose(hf.loss, hs.loss, rtol=F32)
    _close(hf.x, hs.x, F32)
    assert hf.loss[-1] < hf.loss[0] and hf.status == "ok"


def test_runs_are_deterministic_and_leave_the_global_rng_alone(digits):
    X, y = digits
    state = torch.get_rng_state()
    prob = TorchProblem(_mlp(), X, y)
    common = dict(n_workers=6, rounds=8, lr=0.5, x0=prob.x0, batch_size=[8, 16, 4, 16, 16, 2], key=5,
                  participation=0.7, local_steps=2, local_lr=0.1)
    method = pq.methods.DIANA(pq.QSGD(levels=4))
    runs = []
    for threads in (1, 2, 1):
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            runs.append(pq.simulate(prob, method, **common))
        finally:
            torch.set_num_threads(before)
    assert torch.equal(torch.get_rng_state(), state)
    # Same key and threads: bitwise. 1 vs 2 threads: bitwise too for this linear model, because
    # every gradient is a short reduction (a minibatch, or a 64-sample piece of the full data,
    # summed in float64: TorchProblem.grad) that torch's CPU kernels do not split over threads.
    for h in runs[1:]:
        for c in ("loss", "grad_norm_sq", "bits_up", "x"):
            assert np.array_equal(getattr(h, c), getattr(runs[0], c)), c


@pytest.mark.parametrize("method", [
    pq.methods.DCGD(pq.RandK(ratio=0.1)),
    pq.methods.EF(pq.TopK(ratio=0.05)),
    pq.methods.DIANA(pq.QSGD(levels=8)),
    pq.methods.EF21(pq.blockwise(pq.TopK(ratio=0.05), [768, 12, 120, 10])),
    pq.methods.EFSignSGD(),
    pq.methods.SignSGDFV(T_in=2),
    pq.methods.DAGC(mean=0.2),
], ids=lambda m: type(m).__name__ + ("-blockwise" if "blockwise" in repr(m) else ""))
def test_methods_run_on_a_torch_problem(digits, method):
    X, y = digits
    prob = TorchProblem(_mlp(), X, y)
    lr = 0.02 if isinstance(method, pq.methods.SignSGDFV) else 0.5  # sign steps have size lr per entry
    hist = pq.simulate(prob, method, n_workers=5, rounds=12, lr=lr, x0=prob.x0, batch_size=[16, 16, 8, 32, 16],
                       key=1, log_every=12)
    assert hist.status == "ok" and np.isfinite(hist.x).all()
    assert hist.uploads[-1] == 5 * 12 - hist.skipped[-1]
    assert hist.loss[-1] < hist.loss[0], (hist.loss, method)
    if isinstance(method, pq.methods.SignSGDFV):
        assert hist.bits_up[-1] == 5 * 12 * prob.dim  # one sign bit per entry per worker per round


def test_cnn_on_digits_learns_with_ef21_topk():
    X, y = pq.data.load_bundled("digits")
    prob = TorchProblem(_cnn(), X.reshape(-1, 1, 8, 8), y)
    parts = pq.data.partition(y, 10, scheme="dirichlet", alpha=0.5, min_size=32, key=0)
    method = pq.methods.EF21(pq.blockwise(pq.TopK(ratio=0.05), prob.blocks))
    hist = pq.simulate(prob, method, n_workers=10, rounds=60, lr=0.5, x0=prob.x0, partition=parts,
                       batch_size=32, key=0, log_every=20)
    assert hist.loss[-1] < 0.6 * hist.loss[0], hist.loss  # ln 10 = 2.30 at a near-uniform start
    assert prob.accuracy(hist.x) > 0.6 > prob.accuracy(prob.x0)
    assert prob.predict(hist.x, [0, 1, 2]).shape == (3,)


class _Rows(pq.problems_py.MLPProblem):
    """MLPProblem plus grad_batch by rows: simulate must then give the bit-identical run."""

    def grad_batch(self, x, batches):
        x = np.asarray(x)
        return np.stack([self.grad(x if x.ndim == 1 else x[j], b) for j, b in enumerate(batches)])


@pytest.mark.parametrize("kw", [{"batch_size": [4, 8, 16]}, {"participation": 0.5, "batch_size": 8},
                                {"local_steps": 2, "local_lr": 0.3, "batch_size": 8}],
                         ids=["batches", "participation", "local"])
def test_grad_batch_protocol_gives_the_loop_run_bit_for_bit(digits, kw):
    X, y = digits
    plain, rows = pq.problems_py.MLPProblem(X, y, hidden=6), _Rows(X, y, hidden=6)
    common = dict(n_workers=3, rounds=6, lr=0.5, x0=plain.init(key=0), key=2, **kw)
    h1 = pq.simulate(plain, pq.methods.EF21(pq.TopK(k=20)), **common)
    h2 = pq.simulate(rows, pq.methods.EF21(pq.TopK(k=20)), **common)
    for c in ("loss", "grad_norm_sq", "bits_up", "uploads", "x"):
        assert np.array_equal(getattr(h1, c), getattr(h2, c)), c


def test_grad_batch_of_the_wrong_shape_is_reported(digits):
    X, y = digits

    class Short(_Rows):
        def grad_batch(self, x, batches):
            return super().grad_batch(x, batches)[:1]

    prob = Short(X, y, hidden=4)
    with pytest.raises(ValueError, match=r"grad_batch must return one gradient row per batch"):
        pq.simulate(prob, pq.methods.DCGD(pq.Identity()), n_workers=3, rounds=2, x0=prob.init(), batch_size=4)


def test_pickle_and_docstring():
    X, y = pq.data.load_bundled("digits")
    prob = TorchProblem(_mlp(), X[:100], y[:100])
    again = pickle.loads(pickle.dumps(prob))
    b = _batches([5, 9], 100)
    np.testing.assert_array_equal(again.grad_batch(prob.x0, b), prob.grad_batch(prob.x0, b))
    result = doctest.testmod(problems_torch, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


# -- bad input -----------------------------------------------------------------------------------
class _IntParam(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(64, 10)
        self.steps = torch.nn.Parameter(torch.zeros(1, dtype=torch.int64), requires_grad=False)

    def forward(self, x):
        return self.lin(x)


class _Noisy(torch.nn.Module):
    """Randomness that no module check can see: only the probe finds it."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(64, 10)

    def forward(self, x):
        return self.lin(x + torch.randn_like(x))


def _bn_train():
    return torch.nn.Sequential(torch.nn.Linear(64, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 10))


@pytest.mark.parametrize("model, X, y, kw, exc, match", [
    ("not a model", None, None, {}, TypeError, "model must be a torch.nn.Module"),
    (_IntParam, None, None, {}, TypeError, r"model parameter 'steps' has dtype torch.int64"),
    (lambda: torch.nn.Sequential(torch.nn.Linear(64, 8), torch.nn.Linear(8, 10).double()), None, None, {},
     TypeError, "mix dtypes.*model.float"),
    (_bn_train, None, None, {}, ValueError, r"model.1 \(BatchNorm1d\).*eval\(\).*GroupNorm.*track_running_stats=False"),
    (lambda: torch.nn.Sequential(torch.nn.Linear(64, 8), torch.nn.Dropout(0.2), torch.nn.Linear(8, 10)), None, None,
     {}, ValueError, r"model.1 \(Dropout.*model.eval\(\) or remove the dropout"),
    (_Noisy, None, None, {}, ValueError, "different outputs for the same input.*model.eval"),
    (_mlp, None, np.zeros(599, dtype=np.int64), {}, ValueError, "one entry per sample of X"),
    (_mlp, np.zeros((0, 64), np.float32), np.zeros(0, np.int64), {}, ValueError, "X must hold at least one sample"),
    (_mlp, "nan", None, {}, ValueError, "X contains NaN or Inf"),
    (_mlp, None, "float", {}, TypeError, "needs integer class labels y.*astype"),
    (_mlp, None, "big", {}, ValueError, r"labels must lie in \[0, 10\)"),
    (_mlp, None, None, {"loss": "hinge"}, ValueError, "unknown loss 'hinge'.*cross_entropy, nll, mse"),
    (_mlp, None, None, {"loss": lambda o, t: torch.nn.functional.cross_entropy(o, t, reduction="none")},
     ValueError, "must return a 0-d tensor"),
    (_mlp, None, None, {"loss": 3}, TypeError, "loss must be a name or a callable"),
    (_mlp, None, None, {"batched": 1}, TypeError, "batched must be True or False"),
    (_mlp, None, None, {"max_samples": 0}, ValueError, "max_samples"),
], ids=["not-module", "int-param", "mixed-dtypes", "batchnorm-train", "dropout", "hidden-randomness",
        "X-y-length", "empty-X", "nan-X", "float-labels", "label-range", "unknown-loss", "non-scalar-loss",
        "loss-type", "batched-type", "max-samples"])
def test_bad_construction(digits, model, X, y, kw, exc, match):
    Xd, yd = digits
    X = Xd if X is None else X
    if isinstance(X, str):  # "nan": the digits with one NaN pixel
        X = Xd.copy()
        X[3, 5] = np.nan
    if y is None or isinstance(y, str):  # the digits labels, or a named variant of them
        y = {None: yd, "float": yd.astype(np.float32), "big": yd + 1}[y]
    model = model() if callable(model) else model
    with pytest.raises(exc, match=match):
        TorchProblem(model, X, y, **kw)


def test_bad_points_and_indices(digits):
    X, y = digits
    prob = TorchProblem(_mlp(), X, y)
    x = prob.x0
    for call in (lambda: prob.grad(x[:-1], [0]), lambda: prob.loss(np.zeros(3)),
                 lambda: prob.to_module(np.zeros((2, prob.dim))),
                 lambda: prob.grad_batch(np.zeros((2, 2, prob.dim)), [[0]])):
        with pytest.raises(ValueError, match=f"dim={prob.dim}"):
            call()
    with pytest.raises(ValueError, match="indices must be non-empty"):
        prob.grad(x, [])
    with pytest.raises(ValueError, match=r"batches\[1\].*non-empty"):
        prob.grad_batch(x, [[0], []])
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 600\)"):
        prob.grad(x, [0, 600])
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 600\)"):
        prob.loss(x, [-1])
    with pytest.raises(TypeError, match="indices must be integers"):
        prob.grad(x, [0.5])
    with pytest.raises(ValueError, match="x has 3 rows for 2 batches"):
        prob.grad_batch(np.zeros((3, prob.dim)), [[0], [1]])
    with pytest.raises(ValueError, match="at least one index array"):
        prob.grad_batch(x, [])
