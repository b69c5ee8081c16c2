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
import shutil
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

import multiprocessing as mp

from .experiment import Spec, column_value

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
        if isinstance(v, (str, bytes)) or not hasattr(v, "__iter__"):
            raise TypeError(f"sweep: grid[{name!r}] must be a list of values, got {v!r}")
        v = list(v)
        if not v:
            raise ValueError(f"sweep: grid[{name!r}] is empty")
        values.append(v)
    return [dict(zip(names, combo)) for combo in itertools.product(*values)]


def run_id(params, seed):
    """Stable identifier of (params, seed): the first 16 hex digits of a SHA-1 of their JSON."""
    record = {k: column_value(v) for k, v in params.items()}
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


def _read(path):
    import pandas as pd

    return pd.read_csv(path) if Path(path).suffix == ".csv" else pd.read_parquet(path)


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
    df = pd.concat(frames, ignore_index=True)
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
        return df, ("stopped" if result.stopped else "ok"), result.stopped
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
            columns = {**runner.configure(**point).params(), **{k: column_value(v) for k, v in point.items()}}
        else:
            columns = {k: column_value(v) for k, v in point.items()}
        for seed in seeds:
            jobs.append((point, seed, run_id(columns, seed), columns))
    ids = [j[2] for j in jobs]
    if len(set(ids)) != len(ids):
        raise ValueError("sweep: the grid has duplicate points (two runs with the same parameters and seed)")
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
        names), ``seed``, ``run_id`` (stable hash of parameters and seed), ``status`` ("ok",
        "stopped" for a run that ended early, "error"), ``error`` (text), ``seconds``, then the
        result columns (``round``, ``loss``, ``bits_up``, ... for a History).

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
    try:
        for rid, df in _execute(run, todo, _n_jobs(n_jobs, max(1, len(todo)))):
            if out is not None:
                combined, parts, suffix = _layout(out)
                parts.mkdir(parents=True, exist_ok=True)
                _write(df, parts / f"{rid}{suffix}")
            else:
                results[rid] = df
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    if out is not None:
        _finalize(out)
        stored = load_sweep(out)
        frame = stored[stored["run_id"].isin(order)] if len(stored) else stored
    else:
        frame = pd.concat(results.values(), ignore_index=True) if results else pd.DataFrame()
    if len(frame):
        rank = frame["run_id"].map(order)
        frame = frame.iloc[rank.argsort(kind="stable")].reset_index(drop=True)
    return frame


def _execute(run, todo, n_jobs):
    """Yields (run id, frame) as runs finish."""
    if not todo:
        return
    if n_jobs == 1:
        for job in todo:
            yield _run_job(job, run)
        return
    threads = max(1, (os.cpu_count() or 1) // n_jobs)
    # spawn: fresh interpreters (no OpenMP state inherited through fork), same on every OS.
    with ProcessPoolExecutor(max_workers=n_jobs, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                             initargs=(run, threads)) as pool:
        pending = {pool.submit(_run_job, job) for job in todo}
        try:
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    yield fut.result()
        except BaseException:
            for fut in pending:
                fut.cancel()
            raise
