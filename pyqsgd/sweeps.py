"""Resumable parameter sweeps: a grid of nested parameters x seeds, run in this process, in local
worker processes or on a cluster (Dask, Ray, any ``concurrent.futures.Executor``), with every
finished run written atomically by the driver so an interrupted sweep restarts where it stopped.

Storage (:mod:`pyqsgd.sweep_store`): ``out="results.parquet"`` (or ``.csv``) keeps one
checksummed part file per finished run under ``results.parquet.parts/``; when the sweep ends they
are combined into ``results.parquet`` and the part folder is removed. ``out`` without a suffix is
a folder of part files only. :func:`load_sweep` reads either form (and a half-combined mix after a
crash). Execution: :mod:`pyqsgd.sweep_executors`.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import numbers
import os
import re
import time
import traceback

import numpy as np

from . import sweep_executors
from .experiment import Spec, column_value
from .problems import DATASET_COLUMNS
# _layout and load_sweep: also importable from here, as before storage had its own module.
from .sweep_store import PartStore, _kind, _layout, _uniform, load_sweep  # noqa: F401

__all__ = ["sweep", "load_sweep", "run_id", "expand_grid"]

# Columns a sweep adds to each run's rows; a grid may not use these names.
RUN_COLUMNS = ("seed", "run_id", "status", "error", "seconds")


def expand_grid(grid):
    """The Cartesian product of ``grid`` (``{name: list of values}``) as a list of dicts, in order."""
    if grid is None:
        return [{}]
    if not isinstance(grid, dict):
        raise TypeError(f"sweep: grid must be a dict of parameter name -> list of values, got {type(grid).__name__}")
    names = list(grid)
    values = []
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"sweep: grid keys must be parameter names (str), got {name!r}")
        if name in RUN_COLUMNS:
            raise ValueError(f"sweep: grid key {name!r} is reserved for a result column")
        v = grid[name]
        if isinstance(v, (dict, set, frozenset)):
            # Iterating would sweep over the keys / in an arbitrary order: almost certainly not meant.
            kind = type(v).__name__
            hint = f"[{v!r}]" if isinstance(v, dict) else f"sorted({v!r})"
            raise TypeError(f"sweep: grid[{name!r}] must be a list of values, got a {kind} ({v!r}); "
                            f"write a list, e.g. grid[{name!r}] = {hint}")
        if isinstance(v, (str, bytes)) or not hasattr(v, "__iter__"):
            raise TypeError(f"sweep: grid[{name!r}] must be a list of values, got {v!r}; "
                            f"write a list, e.g. grid[{name!r}] = [{v!r}]")
        v = list(v)
        if not v:
            raise ValueError(f"sweep: grid[{name!r}] is empty")
        values.append(v)
    return [dict(zip(names, combo)) for combo in itertools.product(*values)]


# The default repr of an object (or a function, a class instance inside a container, ...) holds its
# memory address: different in every process, so it cannot identify a run.
_ADDRESS = re.compile(r"<[^<>]*\bat 0x[0-9a-fA-F]+>")


def _check_stable(name, text):
    """Raises if the cell text of parameter ``name`` holds a memory address."""
    if isinstance(text, str):
        m = _ADDRESS.search(text)
        if m:
            raise ValueError(
                f"sweep: parameter {name!r} has no stable text: {m.group(0)} holds a memory address, so its "
                "run id would change in every process and a resumed sweep would recompute every run; give "
                "the class a __repr__ that shows its settings (or a `name` attribute, used instead)")


def run_id(params, seed):
    """Stable identifier of (params, seed): the first 16 hex digits of a SHA-1 of their JSON.

    Raises ValueError if a value's text holds a memory address (an object with the default repr)."""
    record = {k: column_value(v) for k, v in params.items()}
    for k, v in record.items():
        _check_stable(k, v)
    text = json.dumps({"params": record, "seed": int(seed)}, sort_keys=True, default=repr)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def _seeds(seeds):
    if isinstance(seeds, numbers.Integral) and not isinstance(seeds, bool):
        if seeds < 0:
            raise ValueError(f"sweep: seeds must be a count >= 1 or a list of seeds, got seeds={int(seeds)}")
        seeds = range(int(seeds))
    if isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__iter__"):
        raise TypeError(f"sweep: seeds must be an int n (seeds 0..n-1) or a list of non-negative int seeds, "
                        f"got {seeds!r}")
    out = list(seeds)
    if not out:
        raise ValueError("sweep: seeds is empty")
    for s in out:
        if isinstance(s, bool) or not isinstance(s, numbers.Integral) or not 0 <= s < 2**64:
            raise ValueError(f"sweep: seeds must be non-negative ints below 2**64, got {s!r}")
    return [int(s) for s in out]


# ---- running one job (in a worker process or in-process) --------------------------------------

def _to_frame(result):
    import pandas as pd

    from .history import History

    if isinstance(result, History):
        df = result.to_frame()
        # The data the run actually used, on every row (a fallback dataset shows here, not the
        # requested one).
        data = {name: result.meta.get(name) for name in DATASET_COLUMNS}
        lead = pd.DataFrame({k: [v] * len(df) for k, v in data.items()}, index=df.index)
        return pd.concat([lead, df], axis=1), result.status, result.stopped
    if isinstance(result, pd.DataFrame):
        return result.reset_index(drop=True), "ok", None
    if isinstance(result, dict):
        bad = [k for k, v in result.items() if not (v is None or isinstance(v, (numbers.Number, str, bool)))]
        if bad:
            raise TypeError(f"run result dict must hold scalars; {bad[0]!r} is {type(result[bad[0]]).__name__}")
        return pd.DataFrame([result]), "ok", None
    raise TypeError(f"a run must return a History, a DataFrame or a dict of scalars, got {type(result).__name__}")


def _run_job(job, runner):
    """Runs one (params, seed); never raises: failures come back as an error record."""
    import pandas as pd

    params, seed, rid, columns = job
    t0 = time.perf_counter()
    try:
        if isinstance(runner, Spec):
            result = runner.configure(**params).run(key=seed)
        else:
            result = runner(**params, key=seed)
        df, status, error = _to_frame(result)
    except Exception as e:  # noqa: BLE001 - a failing run is recorded, the sweep goes on
        df = pd.DataFrame(index=[0])
        status, error = "error", f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=-3)}"
    return rid, _record(job, df, status, error, round(time.perf_counter() - t0, 4))


def _record(job, df, status, error, seconds):
    """The run's rows: parameter and run columns first, then the result columns."""
    import pandas as pd

    _, seed, rid, columns = job
    head = {**columns, "seed": seed, "run_id": rid, "status": status, "error": error, "seconds": seconds}
    head = {k: v for k, v in head.items() if k not in df.columns or k in RUN_COLUMNS}
    df = df.drop(columns=[c for c in head if c in df.columns])
    lead = pd.DataFrame({k: [v] * len(df) for k, v in head.items()}, index=df.index)
    return pd.concat([lead, df], axis=1)


# ---- the sweep -------------------------------------------------------------------------------

def _jobs(runner, grid, seeds):
    jobs = []
    for point in expand_grid(grid):
        if isinstance(runner, Spec):
            # Validates the names now (cheap: no data is loaded), so a typo fails before any run.
            configured = runner.configure(**point)
            columns = configured.params()
            for head in ("problem", "method"):  # an object without a __repr__ may have a `name`
                if _ADDRESS.search(columns[head]):
                    columns[head] = column_value(getattr(configured, head))
            columns.update({k: column_value(v) for k, v in point.items()})
        else:
            columns = {k: column_value(v) for k, v in point.items()}
        for seed in seeds:
            jobs.append((point, seed, run_id(columns, seed), columns))
    ids = [j[2] for j in jobs]
    if len(set(ids)) != len(ids):
        raise ValueError("sweep: the grid has duplicate points (two runs with the same parameters and seed)")
    # A column mixing kinds of values (32 and "[8, 16]") is stored as text in every run's part file
    # (as load_sweep would combine it), so the parts and the combined file agree. Run ids above
    # come from the values themselves: they do not depend on the rest of the grid.
    mixed = {name for name in {k for j in jobs for k in j[3]}
             if len({_kind(j[3][name]) for j in jobs if j[3].get(name) is not None}) > 1}
    if mixed:
        jobs = [(p, s, rid, {k: (str(v) if k in mixed and v is not None else v) for k, v in cols.items()})
                for p, s, rid, cols in jobs]
    return jobs


def _n_jobs(n_jobs, n):
    cpus = os.cpu_count() or 1
    if n_jobs is None:
        n_jobs = 1
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, numbers.Integral) or n_jobs == 0:
        raise ValueError(f"sweep: n_jobs must be a positive int or -1 (all cores), got {n_jobs!r}")
    if n_jobs < 0:
        n_jobs = max(1, cpus + 1 + n_jobs)
    return max(1, min(int(n_jobs), n))


def sweep(run, grid=None, seeds=(0,), out=None, n_jobs=None, progress=True, retry_failed=True, *,
          executor=None, backend=None, address=None):
    """Runs ``run`` for every grid point and seed; returns a tidy DataFrame of all results.

    Parameters
    ----------
    run : callable or Spec
        ``run(**params, key=seed)`` returning a History, a DataFrame or a dict of scalars; or a
        :class:`pyqsgd.Spec` (problem + method + simulate arguments), configured per grid point
        with :meth:`Spec.configure` (nested names such as ``"method__compressor__k"``).
        Outside this process it must be picklable (a module-level function, or a Spec).
    grid : dict, optional
        ``{parameter name: list of values}``; runs the Cartesian product.
    seeds : list of int or int
        Seeds (an int n means ``range(n)``); each grid point runs once per seed.
    out : path, optional
        Where results go (``.parquet``, ``.csv``, or a folder). Each finished run is written
        atomically as it completes, by this process alone, whatever runs it; rerunning the same
        sweep skips runs already in ``out`` (matched by run id), so an interrupted sweep resumes
        without losing or repeating work. A damaged part file is reported and recomputed.
    n_jobs : int, optional
        Local worker processes (spawned; -1 = all cores); default 1: in this process. Native
        threads are split among workers. With ``backend="dask"`` (no address) or ``"ray"``: the
        size of the local cluster. Not with ``executor``.
    progress : bool
        Show a progress bar (it counts finished runs, wherever they ran).
    retry_failed : bool
        On resume, rerun runs whose stored status is "error" or "failed".
    executor : concurrent.futures.Executor, optional
        Runs the runs: e.g. ``dask.distributed.Client(...).get_executor()`` (a ``Client`` is
        accepted too), a ``ProcessPoolExecutor``, or :class:`pyqsgd.sweep_executors.RayExecutor`.
        Its workers need pyqsgd installed. A runner larger than 1 MiB pickled (say, a Spec holding
        its data) goes once to each worker (Dask scatter, the Ray object store, or a file read once
        per worker process), not with every run; a :class:`pyqsgd.ProblemSpec` loads its data by name
        on the worker instead.
    backend : {"processes", "dask", "ray"}, optional
        A shortcut: ``"processes"`` is a local process pool of ``n_jobs`` workers (default all
        cores); ``"dask"`` connects to the scheduler at ``address`` (``"tcp://HOST:8786"``), or starts a
        local cluster of ``n_jobs`` processes; ``"ray"`` uses the Ray cluster at ``address``
        (``"auto"``, ``"HOST:6379"``, ``"ray://HEAD:10001"``) or a local Ray.
    address : str, optional
        The scheduler of ``backend``; an unreachable one fails within seconds, naming it.

    Returns
    -------
    pandas.DataFrame
        One row per logged round per run (one row per run for dict results): the parameter
        columns (for a Spec: ``problem``, ``method`` and every simulate argument, then the grid
        names), ``seed``, ``run_id`` (stable hash of parameters and seed), ``status`` ("ok";
        "diverged" for a run stopped by a non-finite loss, gradient or model; "stopped" for an
        interrupted run; "error" when the run raised; "failed" when its worker process died in
        two attempts), ``error`` (text: the exception, or why the run stopped), ``seconds``, then
        the result columns. For a History: the data actually used (``dataset``, ``dataset_n``,
        ``dataset_d``, ``dataset_hash``; see :func:`pyqsgd.data.content_hash`), then ``round``,
        ``loss``, ``bits_up``, ... Run ids and numbers do not depend on where the runs ran.

    Notes
    -----
    Faults: a run whose worker process dies is retried once, alone (so a run that kills its
    worker cannot fail others twice), then stored with ``status="failed"``; it is never lost or
    stored twice. A Dask
    scheduler may itself retry a task whose worker died (``distributed.scheduler.allowed-failures``)
    before the sweep sees the failure. Stopping the driver (Ctrl-C, a kill) keeps every stored run;
    rerunning completes the rest.

    Examples
    --------
    >>> import pyqsgd as pq
    >>> def run(a, key):
    ...     return {"value": a * 10 + key}
    >>> pq.sweep(run, grid={"a": [1, 2]}, seeds=[0, 1], progress=False)["value"].tolist()
    [10, 11, 20, 21]

    On a Slurm cluster through dask-jobqueue, or on a Ray cluster (see
    :mod:`pyqsgd.sweep_executors`)::

        from dask.distributed import Client
        from dask_jobqueue import SLURMCluster
        cluster = SLURMCluster(cores=1, processes=1, memory="4GB", walltime="02:00:00")
        cluster.scale(jobs=50)
        df = pq.sweep(spec, grid=grid, seeds=5, out="results.parquet", executor=Client(cluster))
        df = pq.sweep(spec, grid=grid, seeds=5, out="results.parquet", backend="ray", address="auto")
    """
    import pandas as pd

    if not (callable(run) or isinstance(run, Spec)):
        raise TypeError(f"sweep: run must be a callable or a pyqsgd.Spec, got {type(run).__name__}")
    for name, flag in (("progress", progress), ("retry_failed", retry_failed)):
        if not isinstance(flag, (bool, np.bool_)):
            raise TypeError(f"sweep: {name} must be a bool, got {flag!r}")
    sweep_executors.check(executor, backend, address, n_jobs)
    jobs = _jobs(run, grid, _seeds(seeds))
    order = {j[2]: i for i, j in enumerate(jobs)}
    store = PartStore(out) if out is not None else None
    done = set()
    if store is not None:
        store.prepare()
        previous = store.scan(quarantine=True)
        if len(previous):
            keep = previous if not retry_failed else previous[~previous["status"].isin(["error", "failed"])]
            done = {rid for rid in keep["run_id"].unique() if rid in order}
    todo = [j for j in jobs if j[2] not in done]
    plan = sweep_executors.plan(executor, backend, address, n_jobs, len(todo), _n_jobs)
    results = {}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(jobs), initial=len(jobs) - len(todo), desc="sweep", unit="run")

    def emit(rid, df):
        if store is not None:
            store.write(rid, df)
        else:
            results[rid] = df
        if bar is not None:
            bar.update(1)

    def fail(job, error):
        emit(job[2], _record(job, pd.DataFrame(index=[0]), "failed", error, float("nan")))

    ok = False
    try:
        sweep_executors.execute(plan, run, todo, emit, fail, folder=store.parts if store is not None else None)
        ok = True
    finally:
        plan.close(wait=ok)
        if bar is not None:
            bar.close()
    if store is not None:
        store.finalize()
        stored = store.scan()
        frame = stored[stored["run_id"].isin(order)] if len(stored) else stored
    else:
        frame = _uniform(pd.concat(results.values(), ignore_index=True)) if results else pd.DataFrame()
    if len(frame):
        rank = frame["run_id"].map(order)
        frame = frame.iloc[rank.argsort(kind="stable")].reset_index(drop=True)
    return frame
