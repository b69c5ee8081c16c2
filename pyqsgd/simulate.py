"""simulate(): distributed training with many simulated workers.

Native problems run as one GIL-free C++ call per chunk of rounds, parallel over workers;
Python problems (objects with ``loss(x)``, ``grad(x, indices)`` and a sample count: ``n_samples``,
``len()``, or an explicit partition) take a slower
path with the same sampling, methods and accounting.

A Python problem may also define ``grad_batch(x, batches)``: ``batches`` is the list of the k
participating workers' index arrays (in worker order) and ``x`` either the shared model, shape
(d,), or one local iterate per worker, shape (k, d) (local steps); it returns the (k, d) array
whose row j is ``grad(x or x[j], batches[j])``. The Python path then asks for all workers'
gradients in one call per round (per local step), so a problem can vectorise over workers
(:class:`pyqsgd.problems_torch.TorchProblem` does, with ``torch.func.vmap``). Without it the
path calls ``grad`` once per worker; both give the same history when the rows agree.
"""
from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

from . import _core
from ._validate import as_key, check_float, check_int
from .history import History
from .methods.base import Method
from .methods.python import PythonMethod
from .problems import Problem, dataset_columns, is_python_problem
from .threads import get_num_threads

__all__ = ["simulate"]


def _iid_partition(n, m, key):
    from .data import partition

    return partition(n, m, scheme="iid", key=key)


def _per_worker(value, m, name, kind):
    """A scalar or one entry per worker."""
    if isinstance(value, (list, tuple, np.ndarray)):
        arr = list(np.asarray(value).tolist())
        if len(arr) != m:
            raise ValueError(f"simulate: {name} must have one entry per worker ({m}), got {len(arr)}")
        return arr
    return [value] * m


def _batches(batch_size, parts):
    m = len(parts)
    if batch_size is None:
        return [0] * m
    out = []
    for i, b in enumerate(_per_worker(batch_size, m, "batch_size", int)):
        if b is None:
            out.append(0)
            continue
        b = check_int("simulate", "batch_size", b, low=1)
        if b > len(parts[i]):
            raise ValueError(f"simulate: batch_size {b} of worker {i} exceeds its shard size {len(parts[i])}; "
                             "use a smaller batch or fewer workers")
        out.append(b)
    return out


def _probabilities(participation, m):
    if participation is None:
        return [1.0] * m
    probs = [check_float("simulate", "participation", p) for p in _per_worker(participation, m, "participation", float)]
    for p in probs:
        if not 0.0 < p <= 1.0:
            raise ValueError(f"simulate: participation probabilities must be in (0, 1], got {p}")
    return probs


def _partition(partition, n, m, key):
    if partition is None:
        return _iid_partition(n, m, key)
    if isinstance(partition, str):  # a scheme name: pyqsgd.data.partition with that scheme's defaults
        from .data import partition as split
        from .data.partitions import SCHEMES

        if partition not in SCHEMES:
            raise ValueError(f"simulate: unknown partition scheme {partition!r}; choose {', '.join(SCHEMES)} "
                             "(or pass a list of index arrays, one per worker)")
        try:
            return split(n, m, scheme=partition, key=key)
        except ValueError as e:  # the scheme needs a parameter (alpha, skew) that a name cannot carry
            how = {"dirichlet": "pq.data.partition(y, n_workers, scheme='dirichlet', alpha=0.5, key=0) (y: labels)",
                   "size_skew": "pq.data.partition(n_samples, n_workers, scheme='size_skew', skew=10, key=0)"}
            raise ValueError(f"simulate: partition={partition!r} needs a parameter ({e}); build the shards with "
                             f"{how.get(partition, 'pq.data.partition(...)')} and pass the list as partition=") from e
    parts = []
    for i, p in enumerate(partition):
        a = np.asarray(p)
        if a.dtype == bool or a.dtype.kind not in "iu":
            raise TypeError(f"simulate: partition shard {i} must be an integer index array, got dtype {a.dtype}"
                            + ("; convert a boolean mask with np.flatnonzero(mask)" if a.dtype == bool else ""))
        parts.append(np.ascontiguousarray(a, dtype=np.int64))
    if len(parts) != m:
        raise ValueError(f"simulate: partition has {len(parts)} shards for n_workers={m}")
    for i, p in enumerate(parts):
        if p.ndim != 1:
            raise ValueError(f"simulate: partition shard {i} must be a 1-D index array")
        if p.size == 0:
            raise ValueError(f"simulate: worker {i} has an empty shard; every worker needs data")
        if p.min() < 0 or p.max() >= n:
            raise ValueError(f"simulate: partition shard {i} has indices outside [0, {n})")
    everything = np.concatenate(parts)
    if np.unique(everything).size != everything.size:
        raise ValueError("simulate: partition shards overlap or repeat an index; shards must be disjoint "
                         "(pyqsgd.data.partition builds valid ones)")
    return parts


def simulate(problem, method, n_workers=20, rounds=500, lr=0.1, batch_size=None, partition=None,
             participation=None, x0=None, key=0, log_every=1, progress=False, *, tau=None, local_steps=None,
             local_lr=None, dtype="float64", chunk=None, state_dtype="float64", streaming=True):
    """Runs ``method`` on ``problem`` with ``n_workers`` simulated workers for ``rounds`` rounds.

    Parameters
    ----------
    problem : pyqsgd.problems.Problem or object with loss(x), grad(x, indices), n_samples
        A Python problem may add ``grad_batch(x, batches)`` (all workers' gradients in one
        call, see the module docstring), e.g. :class:`pyqsgd.problems_torch.TorchProblem`.
    method : pyqsgd.methods.Method
    n_workers, rounds : int
    lr : float
        Server step size (with ``local_steps`` it scales the aggregated model change).
    batch_size : None, int or list of int
        None = full local batch; one int for all, or one per worker (heterogeneous batches).
    partition : None, "iid" or list of index arrays
        None or ``"iid"`` = iid split (``pyqsgd.data.partition(n, m, "iid", key=key)``). Other
        schemes need a parameter: build them with ``pyqsgd.data.partition(..., scheme="dirichlet",
        alpha=...)`` (or ``"size_skew"``, ``skew=...``) and pass the list.
    participation : None, float or list of float
        Per-worker participation probabilities p_i in (0, 1]; the server weights by 1/p_i.
    tau : int, optional
        tau-nice sampling: exactly tau workers chosen uniformly each round (p_i = tau/m).
    local_steps, local_lr : int, float, optional
        Workers run ``local_steps`` SGD steps with ``local_lr`` from x and send the compressed
        model change (federated-averaging style, ALGORITHMS.md §3).
    x0 : array, optional (zeros)
    key : int
        Seed of every random draw; same key ⇒ bitwise-identical history at any thread count.
    log_every : int
        Log every this many rounds (round 0 and the last round are always logged).
    progress : bool
        Show a tqdm progress bar.
    dtype : "float64" or "float32"
        dtype of ``hist.x``. The model and server state are float64; messages are float32 on
        the wire.
    state_dtype : "float64" or "float32"
        dtype of the built-in methods' per-worker state (m × d: EF errors, EF21 g_i, DIANA h_i,
        LE-SignGD ĝ_i and e_i, Signum momentum). ``"float32"`` halves the largest allocation of
        a run with many workers; arithmetic stays float64 and only stored values are rounded.
        ``hist.state`` keeps the dtype. A :class:`~pyqsgd.methods.PythonMethod` keeps its own
        state and takes only ``"float64"``. Memory formula: docs guide "Memory".
    streaming : bool
        Take the workers a chunk at a time when the method's server step is a weighted sum
        (DCGD, EF, EF21, DIANA, LE-SignGD, DAGC without a Python aggregator): local vectors and
        decoded messages then need O(threads × d) memory instead of O(m × d). Results are
        bitwise identical either way; ``False`` keeps all m rows (for comparisons).
        ``hist.meta["streaming"]`` says which path ran.

    Returns
    -------
    History
        ``hist.to_frame()`` has columns round, loss, grad_norm_sq, bits_up, bits_down, uploads,
        skipped, bits. Ctrl-C stops cleanly between chunks and returns the history so far
        (``hist.status == "stopped"``); a non-finite loss, gradient or model stops the run with a
        warning and keeps the history (``hist.status == "diverged"``); otherwise ``"ok"``.
        ``hist.meta`` records the data used (``dataset``, ``dataset_n``, ``dataset_d``,
        ``dataset_hash``).

    >>> import numpy as np, pyqsgd as pq
    >>> A = np.random.default_rng(0).standard_normal((200, 5)).astype(np.float32)
    >>> prob = pq.problems.LogisticRegression(A, np.sign(A[:, 0]) + (A[:, 0] == 0))
    >>> hist = pq.simulate(prob, pq.methods.EF21(pq.TopK(k=2)), n_workers=4, rounds=50, lr=0.5)
    >>> bool(hist.loss[-1] < hist.loss[0])
    True
    """
    if not isinstance(method, Method):
        raise TypeError(f"simulate: method must be a pyqsgd method (e.g. pq.methods.EF21(pq.TopK(k=10))), "
                        f"got {type(method).__name__}")
    native_problem = isinstance(problem, Problem)
    if not native_problem and not is_python_problem(problem):
        raise TypeError("simulate: problem must be a pyqsgd problem or an object with loss(x), grad(x, indices) "
                        f"and n_samples, got {type(problem).__name__}")
    m = check_int("simulate", "n_workers", n_workers, low=1)
    rounds = check_int("simulate", "rounds", rounds, low=0, high=2**63 - 1)  # highs: the native counters
    lr = check_float("simulate", "lr", lr, low=0.0, low_open=True)
    log_every = check_int("simulate", "log_every", log_every, low=1, high=2**63 - 1)
    seed = as_key(key).seed
    if dtype not in ("float64", "float32", np.float64, np.float32):
        raise ValueError(f"simulate: dtype must be 'float64' or 'float32', got {dtype!r}")
    if state_dtype not in ("float64", "float32", np.float64, np.float32):
        raise ValueError(f"simulate: state_dtype must be 'float64' or 'float32', got {state_dtype!r}")
    state_f32 = state_dtype in ("float32", np.float32)
    if state_f32 and isinstance(method, PythonMethod):
        raise ValueError("simulate: state_dtype='float32' applies to the built-in methods' per-worker state; a "
                         "PythonMethod keeps its own state (store it as float32 in init_state), so pass "
                         "state_dtype='float64'")
    if not isinstance(progress, (bool, np.bool_)):
        raise TypeError(f"simulate: progress must be a bool, got {progress!r}")
    if not isinstance(streaming, (bool, np.bool_)):
        raise TypeError(f"simulate: streaming must be a bool, got {streaming!r}")
    check_int("simulate", "local_steps", local_steps, low=1, high=2**32 - 1, allow_none=True)
    check_int("simulate", "chunk", chunk, low=1, allow_none=True)
    if partition is not None and (isinstance(partition, bytes) or not hasattr(partition, "__iter__")):
        raise TypeError(f"simulate: partition must be None, a scheme name or a list of index arrays (one per "
                        f"worker), got {type(partition).__name__}")

    if native_problem:
        n, d = problem.n_samples, problem.dim
    else:
        n = _python_samples(problem, partition)
        d = getattr(problem, "dim", None)
        if d is None and x0 is None:
            raise ValueError("simulate: give x0 (or a `dim` attribute) for a Python problem")
    if m > n:
        raise ValueError(f"simulate: n_workers={m} exceeds the number of samples {n}")
    if x0 is None:
        x0 = np.zeros(int(d))
    x0 = np.asarray(x0)
    if x0.dtype == bool or x0.dtype.kind not in "fiu":
        raise TypeError(f"simulate: x0 must be a real numeric array (float or int), got dtype {x0.dtype}")
    x0 = np.array(x0, dtype=np.float64).ravel()
    if d is not None and x0.shape[0] != int(d):
        raise ValueError(f"simulate: x0 has length {x0.shape[0]}, the problem has dimension {d}")
    if not np.isfinite(x0).all():
        raise ValueError("simulate: x0 contains NaN or Inf")
    d = x0.shape[0]

    parts = _partition(partition, n, m, seed)
    cfg = _core.SimConfig()
    cfg.m = m
    cfg.rounds = rounds
    cfg.lr = lr
    cfg.key = _core.Key(seed=seed)
    cfg.parts = parts
    cfg.batch = _batches(batch_size, parts)
    cfg.prob = _probabilities(participation, m)
    if tau is not None:
        if participation is not None:
            raise ValueError("simulate: give participation probabilities or tau, not both")
        cfg.tau = check_int("simulate", "tau", tau, low=1, high=m)
    if local_steps is not None:
        cfg.local_steps = check_int("simulate", "local_steps", local_steps, low=1)
        if local_lr is None:
            raise ValueError("simulate: local_steps needs local_lr (the workers' SGD step size)")
        cfg.local_lr = check_float("simulate", "local_lr", local_lr, low=0.0, low_open=True)
    elif local_lr is not None:
        raise ValueError("simulate: local_lr is only used with local_steps")
    cfg.log_every = log_every
    sizes = np.array([len(p) for p in parts], dtype=np.float64)
    cfg.weights = list(method.worker_weights(sizes))
    cfg.state_f32 = state_f32
    cfg.streaming = bool(streaming)

    native_method = method.build(d, m, sizes=sizes)
    sim = _core.Simulator(problem._native if native_problem else None, native_method, cfg, x0)
    meta = {
        "method": repr(method), "problem": repr(problem), "key": seed, "n_workers": m, "rounds": rounds, "lr": lr,
        "batch_size": batch_size if not isinstance(batch_size, np.ndarray) else batch_size.tolist(),
        "participation": participation if not isinstance(participation, np.ndarray) else participation.tolist(),
        "tau": tau, "local_steps": local_steps, "local_lr": local_lr, "log_every": log_every,
        "threads": get_num_threads(), "version": getattr(_core, "__version__", "?"),
        "state_dtype": "float32" if state_f32 else "float64", "streaming": sim.streaming,
        **dataset_columns(problem, n),  # the data actually used: name, n, d, content hash
    }
    if chunk is None:
        chunk = max(1, math.ceil(rounds / 200))
    chunk = check_int("simulate", "chunk", chunk, low=1)
    stopped, interrupted = None, False
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=rounds, desc=type(method).__name__, leave=False)
    try:
        done = 0
        if native_problem:
            if rounds == 0:
                sim.run(0)
            while done < rounds:
                step = min(chunk, rounds - done)
                ok = sim.run(step)
                done = sim.round
                if bar is not None:
                    bar.update(step)
                if not ok:
                    stopped = f"non-finite loss, gradient or model at round {done}"
                    break
        else:
            stopped = _run_python(problem, sim, cfg, rounds, x0, bar, n)
    except KeyboardInterrupt:
        stopped, interrupted = f"interrupted at round {sim.round}", True
    except Exception as e:
        # User code (a Python compressor, aggregator, method or problem) raised: the caller gets
        # that very exception, with the history up to the last logged round attached.
        e.history = _history(sim, method, meta, dtype, f"{type(e).__name__} at round {sim.round}", "error")
        if hasattr(e, "add_note"):
            e.add_note(f"pyqsgd.simulate: raised at round {sim.round}; the history so far is on this "
                       "exception's .history")
        raise
    finally:
        if bar is not None:
            bar.close()
    # Every early stop that is not an interrupt is a non-finite loss, gradient or model.
    status = "ok" if not stopped else ("stopped" if interrupted else "diverged")
    if stopped:
        hint = "" if interrupted else "; try a smaller lr"
        warnings.warn(f"simulate stopped early: {stopped}; the history so far is returned, with "
                      f"status={status!r}{hint}", RuntimeWarning, stacklevel=2)
    return _history(sim, method, meta, dtype, stopped, status)


def _history(sim, method, meta, dtype, stopped, status):
    arrays = sim.log_arrays()
    x = sim.x.astype(np.float32 if dtype in ("float32", np.float32) else np.float64)
    try:
        state = sim.take_method_state()  # moved, not copied: the run is over
    except Exception:  # noqa: BLE001 - a Python method's state hook failing must not hide the run
        state = {}
    try:
        method.state_ = state
    except AttributeError:  # pragma: no cover - slots-based user subclasses
        pass
    return History(arrays, x, state, meta, stopped, status)


# Local vectors a Python problem computes at once on the streamed path (float64 rows).
WINDOW_BYTES = 128 * 2**20


def _python_samples(problem, partition):
    """Sample count of a Python problem: ``n_samples``, else ``len(problem)``, else implied by an
    explicit partition (largest index + 1)."""
    n = getattr(problem, "n_samples", None)
    if n is None and hasattr(problem, "__len__"):
        n = len(problem)
    if n is None and partition is not None:
        n = 1 + max(int(np.max(p)) for p in partition if len(p))
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise TypeError("simulate: a Python problem needs its sample count: an integer attribute n_samples >= 1, "
                        "__len__, or an explicit partition")
    return int(n)


def _python_metrics(problem, x, n):
    loss = float(problem.loss(x))
    g = np.asarray(problem.grad(x, np.arange(n)), dtype=np.float64)
    return loss, float(g @ g)


def _run_python(problem, sim, cfg, rounds, x0, bar, n):
    """The slower path: Python computes each participant's local vector, C++ does the rest."""
    m, d = cfg.m, x0.shape[0]
    if not sim.log_external(*_python_metrics(problem, sim.x, n)):
        return "non-finite loss or model at round 0"
    local = _local_batched if callable(getattr(problem, "grad_batch", None)) else _local_loop
    # Streamed (sim.streaming): the simulator asks for the local vectors a window of workers at
    # a time, so at most WINDOW_BYTES of them exist; otherwise one window of all m workers.
    per_call = max(1, min(m, WINDOW_BYTES // (8 * d))) if sim.streaming else m
    V = np.zeros((per_call, d))
    for t in range(rounds):
        x = sim.x
        active = sim.participation(t)

        def rows(w0, k, t=t, x=x, active=active):
            local(problem, sim, cfg, t, x, V[:k], active, w0)
            return V[:k]

        if not sim.step_external_rows(rows, per_call):
            # A vector for the wire was NaN/Inf or overflowed float32: log this round (unless
            # it already is) and stop.
            if not sim.due_for_log:
                sim.log_external(*_python_metrics(problem, x, n))
            return f"non-finite loss, gradient or model at round {sim.round}"
        if bar is not None:
            bar.update(1)
        if sim.due_for_log and not sim.log_external(*_python_metrics(problem, sim.x, n)):
            return f"non-finite loss or model at round {sim.round}"
    return None


def _local_loop(problem, sim, cfg, t, x, V, active, w0):
    """Round t's local vectors of workers w0.. into the rows of V (row j = worker w0 + j), one
    ``grad`` call per participant and step."""
    for j in np.flatnonzero(active[w0:w0 + V.shape[0]]):
        i = int(w0 + j)
        if cfg.local_steps == 0:
            V[j] = problem.grad(x, sim.batch(t, i, 0))
        else:
            xl = x.copy()
            for h in range(cfg.local_steps):
                xl -= cfg.local_lr * np.asarray(problem.grad(xl, sim.batch(t, i, h)), dtype=np.float64)
            V[j] = x - xl


def _local_batched(problem, sim, cfg, t, x, V, active, w0):
    """As :func:`_local_loop`, with one ``grad_batch`` call per window (per local step) for its
    participants; the same float64 updates row by row, so equal gradients give equal vectors."""
    rows = np.flatnonzero(active[w0:w0 + V.shape[0]])
    if rows.size == 0:
        return
    workers = [int(w0 + j) for j in rows]
    if cfg.local_steps == 0:
        V[rows] = _grad_rows(problem, x, [sim.batch(t, i, 0) for i in workers], V.shape[1])
        return
    XL = np.tile(x, (rows.size, 1))
    for h in range(cfg.local_steps):
        G = _grad_rows(problem, XL, [sim.batch(t, i, h) for i in workers], V.shape[1])
        XL -= cfg.local_lr * G.astype(np.float64, copy=False)
    V[rows] = x - XL


def _grad_rows(problem, x, batches, d):
    # Kept in its own dtype: the assignment into V casts exactly, without an m x d float64 copy.
    G = np.asarray(problem.grad_batch(x, batches))
    if G.dtype.kind not in "fiu" or G.dtype == bool:
        raise TypeError(f"simulate: {type(problem).__name__}.grad_batch must return real numbers, got dtype {G.dtype}")
    if G.shape != (len(batches), d):
        raise ValueError(f"simulate: {type(problem).__name__}.grad_batch must return one gradient row per batch, "
                         f"shape ({len(batches)}, {d}), got {G.shape}")
    return G
