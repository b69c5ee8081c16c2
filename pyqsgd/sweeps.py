"""Resumable parameter sweeps: a grid of nested parameters x seeds, run in worker processes, with
every finished run written atomically so an interrupted sweep restarts where it stopped.

Storage: ``out="results.parquet"`` (or ``.csv``) keeps one part file per finished run under
``results.parquet.parts/``; when the sweep ends they are combined into ``results.parquet`` and
the part folder is removed. ``out`` without a suffix is a folder of part files only.
:func:`load_sweep` reads either form (and a half-combined mix after a crash).
"""
from __future__ import annotations

import hashlib
import itertools
import json
import numbers
import os
import re
import shutil
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

import multiprocessing as mp

from .experiment import Spec, column_value
from .problems import DATASET_COLUMNS

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
        seeds = range(int(seeds))
    out = list(seeds)
    if not out:
        raise ValueError("sweep: seeds is empty")
    for s in out:
        if isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 0:
            raise ValueError(f"sweep: seeds must be non-negative ints, got {s!r}")
    return [int(s) for s in out]


# ---- storage ---------------------------------------------------------------------------------

def _layout(out):
    """(combined file or None, parts folder, part suffix)."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix in (".parquet", ".csv"):
        return out, out.with_name(out.name + ".parts"), suffix
    if suffix:
        raise ValueError(f"sweep: out must end in .parquet or .csv (or be a folder), got '{out}'")
    return None, out, ".parquet"


def _write(df, path):
    """Writes atomically: a temporary file in the same folder, then os.replace."""
    path = Path(path)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    if path.suffix == ".csv":
        df.to_csv(tmp, index=False)
    else:
        df.to_parquet(tmp, index=False)
    os.replace(tmp, path)


# Read as text from CSV: type inference would turn an all-digit run id (or dataset hash) into an
# int (or one like "123e45..." into a float), and the finished run would no longer be recognised.
_TEXT_COLUMNS = {"run_id": str, "status": str, "error": str, "dataset": str, "dataset_hash": str}


def _read(path):
    import pandas as pd

    if Path(path).suffix == ".csv":
        return pd.read_csv(path, dtype=_TEXT_COLUMNS)
    return pd.read_parquet(path)


def _kind(value):
    import numpy as np

    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, numbers.Number):
        return "number"
    return "str" if isinstance(value, str) else type(value).__name__


def _uniform(df):
    """Turns object columns that mix kinds of values (e.g. 32 and the JSON text "[8, 16]" from a
    grid ``[32, [8, 16]]``) into text, so Parquet can store them; missing values stay missing."""
    for col in df.columns:
        s = df[col]
        if s.dtype != object:
            continue
        present = s.notna()
        if len({_kind(v) for v in s[present]}) > 1:
            df[col] = s.where(~present, s[present].map(str)).astype(object)
    return df


def load_sweep(out):
    """The results stored at ``out`` (combined file and/or part files) as one DataFrame; when a run
    appears in both, the newer part file wins. Empty DataFrame if nothing is there yet."""
    import pandas as pd

    combined, parts, suffix = _layout(out)
    frames = []
    if combined is not None and combined.is_file():
        frames.append(_read(combined))
    if parts.is_dir():
        files = sorted((p for p in parts.iterdir() if p.suffix == suffix and not p.name.startswith(".")),
                       key=lambda p: p.stat().st_mtime_ns)
        frames.extend(_read(p) for p in files)
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame()
    for i, f in enumerate(frames):
        f["_source"] = i
    df = _uniform(pd.concat(frames, ignore_index=True))
    newest = df.groupby("run_id")["_source"].transform("max")
    return df[df["_source"] == newest].drop(columns="_source").reset_index(drop=True)


def _finalize(out):
    """Combines the part files into the output file and removes them (no-op for a folder)."""
    combined, parts, _ = _layout(out)
    if combined is None or not parts.is_dir():
        return
    df = load_sweep(out)
    if len(df):
        _write(df, combined)
    shutil.rmtree(parts, ignore_errors=True)


# ---- running one job (in a worker process or in-process) --------------------------------------

_RUNNER = None


def _init_worker(runner, threads):
    global _RUNNER
    _RUNNER = runner
    if threads:
        from .threads import set_num_threads

        set_num_threads(threads)


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


def _run_job(job, runner=None):
    """Runs one (params, seed); never raises: failures come back as an error record."""
    import pandas as pd

    runner = runner if runner is not None else _RUNNER
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
    head = {**columns, "seed": seed, "run_id": rid, "status": status, "error": error,
            "seconds": round(time.perf_counter() - t0, 4)}
    head = {k: v for k, v in head.items() if k not in df.columns or k in RUN_COLUMNS}
    df = df.drop(columns=[c for c in head if c in df.columns])
    lead = pd.DataFrame({k: [v] * len(df) for k, v in head.items()}, index=df.index)
    return rid, pd.concat([lead, df], axis=1)


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


def sweep(run, grid=None, seeds=(0,), out=None, n_jobs=1, progress=True, retry_failed=True):
    """Runs ``run`` for every grid point and seed; returns a tidy DataFrame of all results.

    Parameters
    ----------
    run : callable or Spec
        ``run(**params, key=seed)`` returning a History, a DataFrame or a dict of scalars; or a
        :class:`pyqsgd.Spec` (problem + method + simulate arguments), configured per grid point
        with :meth:`Spec.configure` (nested names such as ``"method__compressor__k"``).
        With ``n_jobs > 1`` it must be picklable (a module-level function, or a Spec).
    grid : dict, optional
        ``{parameter name: list of values}``; runs the Cartesian product.
    seeds : list of int or int
        Seeds (an int n means ``range(n)``); each grid point runs once per seed.
    out : path, optional
        Where results go (``.parquet``, ``.csv``, or a folder). Each finished run is written
        atomically as it completes; rerunning the same sweep skips runs already in ``out``
        (matched by run id), so an interrupted sweep resumes without losing or repeating work.
    n_jobs : int
        Worker processes (spawned; -1 = all cores). 1 runs in this process. Native threads are
        split among workers.
    progress : bool
        Show a progress bar.
    retry_failed : bool
        On resume, rerun runs whose stored status is "error".

    Returns
    -------
    pandas.DataFrame
        One row per logged round per run (one row per run for dict results): the parameter
        columns (for a Spec: ``problem``, ``method`` and every simulate argument, then the grid
        names), ``seed``, ``run_id`` (stable hash of parameters and seed), ``status`` ("ok";
        "diverged" for a run stopped by a non-finite loss, gradient or model; "stopped" for an
        interrupted run; "error" when the run raised), ``error`` (text: the exception, or why the
        run stopped), ``seconds``, then the result columns. For a History: the data actually
        used (``dataset``, ``dataset_n``, ``dataset_d``, ``dataset_hash``; see
        :func:`pyqsgd.data.content_hash`), then ``round``, ``loss``, ``bits_up``, ...

    >>> import pyqsgd as pq
    >>> def run(a, key):
    ...     return {"value": a * 10 + key}
    >>> pq.sweep(run, grid={"a": [1, 2]}, seeds=[0, 1], progress=False)["value"].tolist()
    [10, 11, 20, 21]
    """
    import pandas as pd

    if not (callable(run) or isinstance(run, Spec)):
        raise TypeError(f"sweep: run must be a callable or a pyqsgd.Spec, got {type(run).__name__}")
    jobs = _jobs(run, grid, _seeds(seeds))
    order = {j[2]: i for i, j in enumerate(jobs)}
    done = {}
    if out is not None:
        _layout(out)[1].parent.mkdir(parents=True, exist_ok=True)
        previous = load_sweep(out)
        if len(previous):
            keep = previous if not retry_failed else previous[previous["status"] != "error"]
            done = {rid for rid in keep["run_id"].unique() if rid in order}
    todo = [j for j in jobs if j[2] not in done]
    results = {}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(jobs), initial=len(jobs) - len(todo), desc="sweep", unit="run")

    def emit(rid, df):
        if out is not None:
            _, parts, suffix = _layout(out)
            parts.mkdir(parents=True, exist_ok=True)
            _write(df, parts / f"{rid}{suffix}")
        else:
            results[rid] = df
        if bar is not None:
            bar.update(1)

    try:
        _execute(run, todo, _n_jobs(n_jobs, max(1, len(todo))), emit)
    finally:
        if bar is not None:
            bar.close()
    if out is not None:
        _finalize(out)
        stored = load_sweep(out)
        frame = stored[stored["run_id"].isin(order)] if len(stored) else stored
    else:
        frame = _uniform(pd.concat(results.values(), ignore_index=True)) if results else pd.DataFrame()
    if len(frame):
        rank = frame["run_id"].map(order)
        frame = frame.iloc[rank.argsort(kind="stable")].reset_index(drop=True)
    return frame


def _execute(run, todo, n_jobs, emit):
    """Calls ``emit(run id, frame)`` as runs finish.

    On an interrupt (Ctrl-C) or any other exception in a parallel sweep, the results of runs that
    already finished are still emitted (stored), queued runs are cancelled and the exception is
    re-raised at once, without waiting for the runs in progress."""
    if not todo:
        return
    if n_jobs == 1:
        for job in todo:
            emit(*_run_job(job, run))
        return
    threads = max(1, (os.cpu_count() or 1) // n_jobs)
    # spawn: fresh interpreters (no OpenMP state inherited through fork), same on every OS.
    pool = ProcessPoolExecutor(max_workers=n_jobs, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                               initargs=(run, threads))
    pending = set()
    try:
        pending = {pool.submit(_run_job, job) for job in todo}
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                emit(*fut.result())
                pending.discard(fut)
    except BaseException:
        # Store what is already computed (including a result whose emit was interrupted), then
        # leave without waiting (a `with` block would wait for running jobs and drop their results).
        try:
            for fut in list(pending):
                if fut.done() and not fut.cancelled() and fut.exception() is None:
                    emit(*fut.result())
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
