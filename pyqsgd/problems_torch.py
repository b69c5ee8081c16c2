"""PyTorch models as problems for the Python path of :func:`pyqsgd.simulate`.

``TorchProblem(model, X, y)`` presents any ``torch.nn.Module`` as the flat-parameter objective
the simulator works on: ``loss(x)``, ``grad(x, indices)`` and ``grad_batch(x, batches)``, all
participants' minibatch gradients in one vectorised call (``torch.func.functional_call`` +
``vmap`` + ``grad``). pyqsgd never imports torch; import torch first, then pyqsgd (for
torch's multi-threaded speed, docs: concepts, threads) and ``pyqsgd.problems_torch``.
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch.func import functional_call, vmap
from torch.func import grad as func_grad
from torch.nn.modules.batchnorm import _BatchNorm, _NormBase
from torch.nn.modules.dropout import _DropoutNd

from ._torch_losses import CLASSIFICATION as _CLASSIFICATION
from ._torch_losses import LOSSES as _LOSSES
from ._torch_losses import each_named as _each_named
from ._torch_losses import mean_named as _mean_named
from ._validate import check_int

__all__ = ["TorchProblem"]

_OWNER = "TorchProblem"
# Samples per piece of a large-gradient sum in the batched path (see TorchProblem.grad).
_PIECE = 64
# Gradient rows one vmap call may hold (~16 B per entry: float32 rows, their concatenation, the
# float64 result): large models get fewer rows per call, bounding memory at any worker count.
_CALL_BYTES = 256 * 2**20


def _as_tensor(v, name):
    if isinstance(v, torch.Tensor):
        return v.detach()
    a = np.asarray(v)
    if a.dtype.kind in "OSUV":  # object, bytes, str, void: torch.from_numpy would fail unnamed
        raise TypeError(f"{_OWNER}: {name} must be a numeric tensor or array, got dtype {a.dtype}")
    return torch.from_numpy(np.ascontiguousarray(a))


def _where(name):
    return f"model.{name}" if name else "model"


class TorchProblem:
    """A ``torch.nn.Module`` with its data, as the flat-parameter problem the simulator runs.

    f(x) = (1/n) sum_i loss(model_x(X_i), y_i), where ``model_x`` is the model with its trainable
    parameters (``requires_grad=True``, in ``model.parameters()`` order, each flattened) set to
    the flat vector ``x``; frozen parameters and buffers stay fixed. A worker's local objective
    is the same mean over its shard. The model computes in its parameter dtype (float32
    usually, float64 works); ``x`` and every returned gradient are float64 NumPy arrays.

    ``grad_batch(x, batches)`` (used by :func:`pyqsgd.simulate` once per round, and once per
    local step) computes all workers' gradients in one ``torch.func.vmap`` call; unequal batch
    sizes are padded to the largest with zero sample weights, so each row is exactly that
    worker's mean-loss gradient. ``batched=False`` computes the same rows one worker at a time
    with ordinary autograd (load the parameters, forward, backward), as Flower or FedLab run
    their clients; both agree to float rounding. Randomness: none. Batches come from the
    simulator's keyed streams and the model must be deterministic (no dropout in training
    mode): the same key gives the same run, bitwise, at a fixed torch thread count (and any
    pyqsgd one). Across torch thread counts it is as reproducible as torch's CPU kernels: an
    MLP is bitwise at 1 and 2 threads, convolutions of some shapes are not (2e-8 relative).

    Parameters
    ----------
    model : torch.nn.Module
        Copied at construction (the run never touches it). Every parameter a real floating
        tensor of one dtype, on one device. Modules that change state or draw random numbers
        in training mode are refused: BatchNorm/InstanceNorm tracking running statistics (use
        ``model.eval()``, GroupNorm/LayerNorm, or ``track_running_stats=False``) and dropout
        (``model.eval()`` or remove it).
    X : tensor or array, shape (n, ...)
        Model inputs, one per sample, converted once to the model's dtype and device.
    y : tensor or array, shape (n, ...)
        Targets: integer class labels for ``"cross_entropy"``/``"nll"``; values of the output's
        shape for ``"mse"`` (a 1-D ``y`` fits a ``(n, 1)`` output).
    loss : {"cross_entropy", "nll", "mse"} or callable, default "cross_entropy"
        A callable ``loss(output, target)`` must return the 0-d mean over the batch of a
        per-sample loss (padding evaluates it per sample and weights the samples). Stored as
        ``criterion`` (``loss`` is the method).
    batched : bool, default True
        Vectorise over workers (``torch.func``); False loops over workers with autograd.
    eval_chunk : int, default 1024
        Samples per forward pass in :meth:`loss` and :meth:`outputs` (and per autograd pass of a
        large :meth:`grad` with ``batched=False``), so memory stays bounded. Not for
        batch-statistics models (BatchNorm with ``track_running_stats=False``), whose output
        depends on every sample of the call: they always see the whole index set at once.
    max_samples : int, default 4096
        At most this many samples (workers x padded batch) per vectorised call of
        :meth:`grad_batch`; more workers are split into several calls.
    dataset : str, optional
        Name recorded by :func:`pyqsgd.simulate` as ``dataset``.

    Examples
    --------
    >>> import torch, pyqsgd as pq
    >>> from pyqsgd.problems_torch import TorchProblem
    >>> X, y = pq.data.load_bundled("digits")
    >>> with torch.random.fork_rng():   # a seeded init that leaves the global RNG as it was
    ...     _ = torch.manual_seed(0)
    ...     net = torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.Tanh(), torch.nn.Linear(16, 10))
    >>> prob = TorchProblem(net, X, y)
    >>> prob.dim, prob.blocks
    (1210, [1024, 16, 160, 10])
    >>> method = pq.methods.EF21(pq.blockwise(pq.TopK(ratio=0.1), prob.blocks))
    >>> hist = pq.simulate(prob, method, n_workers=10, rounds=20, lr=0.5, batch_size=32, x0=prob.x0)
    >>> bool(hist.loss[-1] < hist.loss[0]), prob.accuracy(hist.x) > 0.5
    (True, True)
    """

    def __init__(self, model, X, y, loss="cross_entropy", *, batched=True, eval_chunk=1024, max_samples=4096,
                 dataset=None):
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"{_OWNER}: model must be a torch.nn.Module, got {type(model).__name__}")
        if not isinstance(batched, bool):
            raise TypeError(f"{_OWNER}: batched must be True or False, got {batched!r}")
        if dataset is not None and not isinstance(dataset, str):
            raise TypeError(f"{_OWNER}: dataset must be a name (str) or None, got {dataset!r}")
        if isinstance(loss, str):
            if loss not in _LOSSES:
                raise ValueError(f"{_OWNER}: unknown loss {loss!r}; choose one of {', '.join(_LOSSES)} or pass a "
                                 "callable(output, target) returning the scalar mean loss")
        elif not callable(loss):
            raise TypeError(f"{_OWNER}: loss must be a name or a callable(output, target), got {type(loss).__name__}")
        self.model, self.criterion, self.batched, self.dataset = model, loss, batched, dataset
        self.eval_chunk = check_int(_OWNER, "eval_chunk", eval_chunk, low=1)
        self.max_samples = check_int(_OWNER, "max_samples", max_samples, low=1)
        self._module = copy.deepcopy(model)  # private: the sequential path writes its parameters
        self._parameters()
        self._check_modules()
        self.X, self.y = self._data(X, y)
        self._probe()
        self._data_hash = None

    # -- construction -------------------------------------------------------------------------
    def _parameters(self):
        named = list(self._module.named_parameters())
        for name, p in named:
            if not p.is_floating_point():
                raise TypeError(f"{_OWNER}: model parameter {name!r} has dtype {p.dtype}; every parameter must be "
                                "a real floating tensor (e.g. model.float())")
        if len({p.dtype for _, p in named}) > 1:
            raise TypeError(f"{_OWNER}: model parameters mix dtypes {sorted({str(p.dtype) for _, p in named})}; "
                            "convert the model with model.float() or model.double()")
        if len({p.device for _, p in named}) > 1:
            raise ValueError(f"{_OWNER}: model parameters lie on several devices; move the model with model.to(device)")
        trainable = [(n, p) for n, p in named if p.requires_grad]
        if not trainable:
            raise ValueError(f"{_OWNER}: model has no trainable parameters (requires_grad=True); nothing to optimise")
        self._names = [n for n, _ in trainable]
        self._shapes = [tuple(p.shape) for _, p in trainable]
        self._trainable = [p for _, p in trainable]
        self.blocks = [int(p.numel()) for _, p in trainable]
        self.dtype, self.device = trainable[0][1].dtype, trainable[0][1].device
        self.x0 = torch.cat([p.detach().reshape(-1) for p in self._trainable]).to("cpu", torch.float64).numpy()

    def _check_modules(self):
        for name, mod in self._module.named_modules():
            if isinstance(mod, _NormBase) and mod.training and mod.track_running_stats:
                raise ValueError(
                    f"{_OWNER}: {_where(name)} ({type(mod).__name__}) is in training mode with "
                    "track_running_stats=True, so every forward pass would update its running statistics: "
                    "buffers that change under vmap, and results that depend on call order. Put the model in "
                    "eval() mode (the statistics become fixed buffers), use GroupNorm or LayerNorm, or build it "
                    "with track_running_stats=False")
            if isinstance(mod, _DropoutNd) and mod.training and mod.p > 0:
                raise ValueError(
                    f"{_OWNER}: {_where(name)} ({type(mod).__name__}, p={mod.p}) draws random masks in training "
                    "mode; runs must be deterministic (same key => same history) and vmap's random draws differ "
                    "from a loop's. Call model.eval() or remove the dropout")
        # Batch statistics make a sample's output depend on the other samples in its call, so such
        # models are never padded or chunked (see _chunks and eval_chunk).
        self._batch_stats = any(isinstance(m, _BatchNorm) and m.running_mean is None for m in self._module.modules())

    def _data(self, X, y):
        X, y = _as_tensor(X, "X"), _as_tensor(y, "y")
        if X.ndim == 0 or X.shape[0] == 0:
            raise ValueError(f"{_OWNER}: X must hold at least one sample (first dimension), got shape {tuple(X.shape)}")
        if y.ndim == 0 or y.shape[0] != X.shape[0]:
            raise ValueError(f"{_OWNER}: y must have one entry per sample of X ({X.shape[0]}), got shape "
                             f"{tuple(y.shape)}")
        if X.dtype == torch.bool or X.is_complex():
            raise TypeError(f"{_OWNER}: X must be real numeric, got dtype {X.dtype}")
        X = X.to(self.device, self.dtype).contiguous()
        if not torch.isfinite(X).all():
            raise ValueError(f"{_OWNER}: X contains NaN or Inf; clean or impute the data first")
        integer = not (y.is_floating_point() or y.is_complex() or y.dtype == torch.bool)
        if self.criterion in _CLASSIFICATION:
            if not integer:
                raise TypeError(f"{_OWNER}: loss={self.criterion!r} needs integer class labels y, got dtype "
                                f"{y.dtype}; convert with y.astype(np.int64) (or pass loss='mse')")
            if y.ndim != 1:
                raise ValueError(f"{_OWNER}: class labels y must be 1-D, got shape {tuple(y.shape)}")
            y = y.to(self.device, torch.int64)
            if int(y.min()) < 0:
                raise ValueError(f"{_OWNER}: class labels y must be >= 0, got {int(y.min())}")
        elif integer and callable(self.criterion):
            y = y.to(self.device, torch.int64)
        else:
            y = y.to(self.device, self.dtype)
            if y.is_floating_point() and not torch.isfinite(y).all():
                raise ValueError(f"{_OWNER}: y contains NaN or Inf")
        return X, y.contiguous()

    def _probe(self):
        """One tiny forward (twice) and, batched, one vmapped gradient: bad outputs, losses and
        hidden randomness fail here with a clear message instead of in round 1."""
        b = min(2, self.n_samples)
        xb, yb = self.X[:b], self.y[:b]
        params = self._params(self._tensor(self.x0))
        with torch.no_grad(), torch.random.fork_rng(devices=[]):  # the user's global RNG is left as it was
            try:
                out, again = (functional_call(self._module, params, (xb,)) for _ in range(2))
            except RuntimeError as e:  # e.g. X with the wrong number of features for the model
                raise ValueError(f"{_OWNER}: the model cannot run on X of shape {tuple(self.X.shape)} "
                                 f"(samples of shape {tuple(self.X.shape[1:])}): {e}") from e
        if not isinstance(out, torch.Tensor) or out.ndim == 0 or out.shape[0] != b:
            raise ValueError(f"{_OWNER}: model must return a tensor with one row per input sample, got "
                             f"{getattr(out, 'shape', type(out).__name__)} for {b} samples")
        if not torch.equal(out, again):
            raise ValueError(f"{_OWNER}: model gives different outputs for the same input (random operations in "
                             "training mode); runs must be deterministic. Call model.eval() or remove the randomness")
        if self.criterion in _CLASSIFICATION:
            if out.ndim != 2:
                raise ValueError(f"{_OWNER}: loss={self.criterion!r} needs outputs of shape (batch, classes), got "
                                 f"{tuple(out.shape)}")
            if int(self.y.max()) >= out.shape[1]:
                raise ValueError(f"{_OWNER}: class labels y reach {int(self.y.max())} but the model has "
                                 f"{out.shape[1]} outputs; labels must lie in [0, {out.shape[1]})")
        elif self.criterion == "mse":
            if self.y.ndim == 1 and tuple(out.shape) == (b, 1):
                self.y = self.y[:, None].contiguous()
                yb = self.y[:b]
            if out.shape[1:] != yb.shape[1:]:
                raise ValueError(f"{_OWNER}: loss='mse' needs y shaped like the output: output per sample "
                                 f"{tuple(out.shape[1:])}, y per sample {tuple(yb.shape[1:])}")
        else:
            value = self.criterion(out, yb)
            if not isinstance(value, torch.Tensor) or value.ndim != 0:
                raise ValueError(f"{_OWNER}: the loss callable must return a 0-d tensor (the mean loss over the "
                                 f"batch, e.g. ....mean()), got {getattr(value, 'shape', type(value).__name__)}")
        if self.batched:
            try:
                # Two workers, unequal batches (the padded path) unless padding is never used.
                probe = [np.arange(b), np.arange(b if self._batch_stats else 1)]
                self._vmapped(self._tensor(self.x0), probe)
            except RuntimeError as e:
                hint = ("it calls a random operation; call model.eval() or remove the randomness"
                        if "random" in str(e) else "rewrite the forward without in-place updates of its tensors, "
                        "or use batched=False (a per-worker loop)")
                raise ValueError(f"{_OWNER}: the model cannot run under torch.func.vmap ({e}); {hint}") from e

    # -- conversion and validation -------------------------------------------------------------
    @property
    def n_samples(self):
        return int(self.X.shape[0])

    @property
    def dim(self):
        return sum(self.blocks)

    def _tensor(self, x):
        return torch.from_numpy(x).to(self.device, self.dtype)

    def _point(self, x, where, batch=False):
        if x is None or isinstance(x, (str, bytes)) or np.asarray(x).dtype.kind not in "iuf":
            got = f"dtype {np.asarray(x).dtype}" if x is not None and not isinstance(x, (str, bytes)) else repr(x)
            raise TypeError(f"{_OWNER}.{where}: x must be a real numeric array, got {got}")
        x = np.ascontiguousarray(x, dtype=np.float64)
        if x.shape[-1:] != (self.dim,) or x.ndim != 1 and not (batch and x.ndim == 2):
            want = "(dim,) or (workers, dim)" if batch else "(dim,)"
            raise ValueError(f"{_OWNER}.{where}: x must have shape {want} with dim={self.dim}, got {x.shape}")
        return x

    def _idx(self, indices, where):
        a = np.asarray(indices)
        if a.size == 0:  # checked first: an empty list has dtype float64
            raise ValueError(f"{_OWNER}.{where}: indices must be non-empty (a gradient needs at least one sample)")
        if a.dtype == bool or a.dtype.kind not in "iu":
            raise TypeError(f"{_OWNER}.{where}: indices must be integers, got dtype {a.dtype}")
        a = a.astype(np.int64, copy=False).ravel()
        if a.min() < 0 or a.max() >= self.n_samples:
            raise ValueError(f"{_OWNER}.{where}: indices must lie in [0, {self.n_samples}), got range "
                             f"[{a.min()}, {a.max()}]")
        return a

    def _params(self, xt):
        """Views of a flat (d,) or (k, d) tensor as the trainable parameters, by name."""
        lead, out, o = tuple(xt.shape[:-1]), {}, 0
        for name, shape, size in zip(self._names, self._shapes, self.blocks):
            out[name] = xt[..., o:o + size].reshape(lead + shape)
            o += size
        return out

    def _all(self, indices, where):
        return np.arange(self.n_samples) if indices is None else self._idx(indices, where)

    def _pieces(self, idx):
        step = idx.size if self._batch_stats else self.eval_chunk
        return [idx[s:s + step] for s in range(0, idx.size, step)]

    # -- losses ---------------------------------------------------------------------------------
    def _mean_loss(self, out, y):
        if callable(self.criterion):
            return self.criterion(out, y)
        return _mean_named(self.criterion, out, y)

    def _each_loss(self, out, y):
        if callable(self.criterion):
            return vmap(lambda o, t: self.criterion(o[None], t[None]))(out, y)
        return _each_named(self.criterion, out, y)

    def _batch_loss(self, params, xb, yb):
        return self._mean_loss(functional_call(self._module, params, (xb,)), yb)

    def _weighted_loss(self, params, xb, yb, wb):
        return (self._each_loss(functional_call(self._module, params, (xb,)), yb) * wb).sum()

    # -- the protocol -----------------------------------------------------------------------------
    def loss(self, x, indices=None):
        """Mean loss over ``indices`` (default: all samples), evaluated ``eval_chunk`` at a time."""
        params = self._params(self._tensor(self._point(x, "loss")))
        idx = self._all(indices, "loss")
        total = 0.0
        with torch.no_grad():
            for piece in self._pieces(idx):
                p = torch.from_numpy(piece).to(self.device)
                total += float(self._batch_loss(params, self.X[p], self.y[p])) * piece.size
        return total / idx.size

    def grad(self, x, indices):
        """Gradient of the mean loss over ``indices`` (float64, shape (dim,)).

        Batched, a large index set is cut into pieces of ``_PIECE`` (64) samples whose
        gradients (:meth:`grad_batch` calls of at most ``max_samples`` samples) are summed in
        float64 in piece order, weighted by their share. torch may reorder a long reduction
        with its thread count; a float64 sum of short ones in fixed order keeps that out of
        the logged ``grad_norm_sq``, as far as torch's kernels on the short pieces allow (see
        the class docstring).
        ``batched=False`` sums autograd passes of ``eval_chunk`` samples the same way.
        """
        x = self._point(x, "grad")
        idx = self._idx(indices, "grad")
        g = np.zeros(self.dim)
        if not self.batched:
            xt = self._tensor(x)
            for piece in self._pieces(idx):
                g += self._autograd(xt, piece) * (piece.size / idx.size)
            return g
        if self._batch_stats:
            return self.grad_batch(x, [idx])[0]
        pieces = [idx[s:s + _PIECE] for s in range(0, idx.size, _PIECE)]
        per_call = max(1, min(self.max_samples // _PIECE, self._max_rows()))  # rows held at once
        for c in range(0, len(pieces), per_call):
            group = pieces[c:c + per_call]
            for piece, row in zip(group, self.grad_batch(x, group)):
                g += row * (piece.size / idx.size)
        return g

    def grad_batch(self, x, batches):
        """Row j = the gradient of the mean loss over ``batches[j]`` at x (shape (d,), shared by
        all rows) or at ``x[j]`` (shape (k, d), one point per worker); float64, shape (k, d).

        Batched: one ``vmap`` call per chunk of at most ``max_samples`` samples, workers sorted
        by batch size so padding stays small. ``batched=False``: one autograd pass per row.
        """
        x = self._point(x, "grad_batch", batch=True)
        if isinstance(batches, np.ndarray) and batches.ndim == 2:
            batches = list(batches)
        if isinstance(batches, (str, bytes)) or not isinstance(batches, (list, tuple)):
            raise TypeError(f"{_OWNER}.grad_batch: batches must be a list of index arrays (or a 2-D int array), "
                            f"got {type(batches).__name__}")
        idx = [self._idx(b, f"grad_batch (batches[{j}])") for j, b in enumerate(batches)]
        if not idx:
            raise ValueError(f"{_OWNER}.grad_batch: batches must list at least one index array")
        if x.ndim == 2 and x.shape[0] != len(idx):
            raise ValueError(f"{_OWNER}.grad_batch: x has {x.shape[0]} rows for {len(idx)} batches; give one point "
                             "per batch or a single shared point")
        xt = self._tensor(x)
        if not self.batched:
            return np.stack([self._autograd(xt if x.ndim == 1 else xt[j], b) for j, b in enumerate(idx)])
        out = np.empty((len(idx), self.dim))
        for rows in self._chunks([b.size for b in idx]):
            out[rows] = self._vmapped(xt if x.ndim == 1 else xt[rows], [idx[r] for r in rows])
        return out

    def _chunks(self, sizes):
        """Groups of rows for one vmap call each: largest batches first, at most ``max_samples``
        padded samples and ``_max_rows()`` rows per group, no batch padded to more than twice its
        size (a call costs about its padded samples, so more than 2x padding costs more than
        another call); batch-statistics models group equal sizes only (no padding)."""
        order = sorted(range(len(sizes)), key=lambda r: -sizes[r])  # stable: ties keep worker order
        max_rows = self._max_rows()
        groups, start = [], 0
        while start < len(order):
            top, end = sizes[order[start]], start + 1
            while (end < len(order) and (end - start + 1) * top <= self.max_samples and 2 * sizes[order[end]] >= top
                   and end - start < max_rows and not (self._batch_stats and sizes[order[end]] != top)):
                end += 1
            groups.append(order[start:end])
            start = end
        return groups

    def _max_rows(self):
        return max(1, _CALL_BYTES // (16 * self.dim))

    def _vmapped(self, xt, idx):
        k, top = len(idx), max(b.size for b in idx)
        grid = np.empty((k, top), dtype=np.int64)
        for r, b in enumerate(idx):
            grid[r, :b.size] = b
            grid[r, b.size:] = b[0]  # a real sample, so padding never computes on garbage; weight 0
        g = torch.from_numpy(grid).to(self.device)
        pd = None if xt.ndim == 1 else 0  # one shared point, or one point per worker
        params, xb, yb = self._params(xt), self.X[g], self.y[g]
        if all(b.size == top for b in idx):
            grads = vmap(func_grad(self._batch_loss), in_dims=(pd, 0, 0))(params, xb, yb)
        else:
            w = np.zeros((k, top))
            for r, b in enumerate(idx):
                w[r, :b.size] = 1.0 / b.size
            wt = torch.from_numpy(w).to(self.device, self.dtype)
            grads = vmap(func_grad(self._weighted_loss), in_dims=(pd, 0, 0, 0))(params, xb, yb, wt)
        flat = torch.cat([grads[n].reshape(k, -1) for n in self._names], dim=1)
        return flat.to("cpu", torch.float64).numpy()

    def _autograd(self, xt, idx):
        """The per-worker way: load x into the module, forward, backward, read .grad."""
        with torch.no_grad():
            for p, v in zip(self._trainable, self._params(xt).values()):
                p.copy_(v)
        self._module.zero_grad(set_to_none=True)
        t = torch.from_numpy(idx).to(self.device)
        self._mean_loss(self._module(self.X[t]), self.y[t]).backward()
        g = [p.grad.reshape(-1) if p.grad is not None else torch.zeros(p.numel(), dtype=self.dtype)
             for p in self._trainable]
        return torch.cat(g).to("cpu", torch.float64).numpy()

    # -- results ---------------------------------------------------------------------------------
    def to_module(self, x):
        """A deep copy of the model with its trainable parameters set to ``x`` (the model given at
        construction is untouched)."""
        xt = self._tensor(self._point(x, "to_module"))
        module = copy.deepcopy(self._module)
        module.zero_grad(set_to_none=True)
        trainable = [p for p in module.parameters() if p.requires_grad]
        with torch.no_grad():
            for p, v in zip(trainable, self._params(xt).values()):
                p.copy_(v)
        return module

    def outputs(self, x, indices=None):
        """Model outputs on ``indices`` (default all), float64 NumPy, ``eval_chunk`` at a time."""
        params = self._params(self._tensor(self._point(x, "outputs")))
        with torch.no_grad():
            outs = [functional_call(self._module, params, (self.X[torch.from_numpy(p).to(self.device)],))
                    for p in self._pieces(self._all(indices, "outputs"))]
        return torch.cat(outs).to("cpu", torch.float64).numpy()

    def predict(self, x, indices=None):
        """Class labels (argmax of the outputs) for a classification loss, else the outputs."""
        out = self.outputs(x, indices)
        return np.argmax(out, axis=1) if self._classifies() else out

    def accuracy(self, x, indices=None):
        """Fraction of samples whose predicted class is the label."""
        if not self._classifies():
            raise ValueError(f"{_OWNER}.accuracy: needs integer class labels y and (batch, classes) outputs "
                             f"(loss 'cross_entropy' or 'nll'), this problem has loss={self._loss_name()}")
        idx = self._all(indices, "accuracy")
        return float(np.mean(self.predict(x, idx) == self.y.cpu().numpy()[idx]))

    def _classifies(self):
        return self.criterion in _CLASSIFICATION or (callable(self.criterion) and self.y.dtype == torch.int64
                                                     and self.y.ndim == 1)

    @property
    def data_hash(self):
        """Content hash of X and y as used (model dtype), computed once; recorded by
        :func:`pyqsgd.simulate` as ``dataset_hash`` (a float32 2-D X with int64 labels hashes
        as :func:`pyqsgd.data.content_hash` does)."""
        if self._data_hash is None:
            from .data.fingerprint import hash_arrays

            X = self.X.cpu().numpy()
            self._data_hash = hash_arrays("dense", X.shape, (X,), self.y.cpu().numpy())
        return self._data_hash

    def _loss_name(self):
        return repr(self.criterion) if isinstance(self.criterion, str) else getattr(self.criterion, "__name__", "?")

    def __repr__(self):
        dtype = str(self.dtype).replace("torch.", "")
        return (f"TorchProblem(model={type(self.model).__name__}, n={self.n_samples}, dim={self.dim}, "
                f"loss={self._loss_name()}, batched={self.batched}, dtype={dtype})")
