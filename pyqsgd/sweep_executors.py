"""Where sweep runs execute: this process, local worker processes, or any
``concurrent.futures.Executor`` (a Dask cluster, a Ray cluster through :class:`RayExecutor`, ...).

The driver (the process calling :func:`pyqsgd.sweep`) submits runs, collects their results and
alone writes them, so storage, resumability and run ids are the same on every backend. Workers
only compute. A run whose worker process dies is retried once, alone (after the runs then in
flight); if it dies again it is recorded with ``status="failed"`` and the error.

Slurm through dask-jobqueue (``pip install dask-jobqueue``)::

    from dask.distributed import Client
    from dask_jobqueue import SLURMCluster
    cluster = SLURMCluster(cores=1, processes=1, memory="4GB", walltime="02:00:00")
    cluster.scale(jobs=50)                      # 50 Slurm jobs, one worker each
    pq.sweep(spec, grid=grid, seeds=5, out="results.parquet", executor=Client(cluster).get_executor())

A running Dask scheduler: ``pq.sweep(..., backend="dask", address="tcp://HOST:8786")``.
A Ray cluster: ``pq.sweep(..., backend="ray", address="auto")`` (on a cluster node) or
``executor=pq.sweep_executors.RayExecutor("ray://HEAD:10001")`` (Ray client).

Any ``concurrent.futures.Executor`` works, here threads of this process:

>>> import pyqsgd as pq
>>> from concurrent.futures import ThreadPoolExecutor
>>> with ThreadPoolExecutor(2) as ex:
...     df = pq.sweep(dict, grid={"a": [1, 2]}, seeds=2, executor=ex, progress=False)
>>> df[["a", "key"]].values.tolist()
[[1, 0], [1, 1], [2, 0], [2, 1]]
"""
from __future__ import annotations

import collections
import concurrent.futures as cf
import hashlib
import multiprocessing as mp
import os
import pickle
import socket
import tempfile
from concurrent.futures import FIRST_COMPLETED, BrokenExecutor, ProcessPoolExecutor, wait
from pathlib import Path

__all__ = ["RayExecutor", "BACKENDS", "CONNECT_TIMEOUT"]

BACKENDS = ("processes", "dask", "ray")
# Seconds to wait for a scheduler before giving up: a wrong address should fail in seconds, not
# after the default 30 s of retries.
CONNECT_TIMEOUT = 5.0
# Runners (a Spec, a function and what it closes over) pickled larger than this are not sent with
# every run: Dask scatters them once to every worker; with Ray, and with other executors, each
# worker process fetches them once (from Ray's object store, or a file next to the results).
LARGE = 1 << 20


# ---- the runner, shipped once per worker ----------------------------------------------------

_CACHE = collections.OrderedDict()  # digest -> runner, in each worker process


def _cached(digest, data, source):
    """The runner with this digest: from this process's cache, else unpickled (and cached) from
    ``data``, or fetched from ``source`` (a file path, or a Ray object reference)."""
    if digest not in _CACHE:
        if data is None and not isinstance(source, str):
            import ray

            data = ray.get(source)
        elif data is None:
            path = source
            try:
                data = Path(path).read_bytes()
            except OSError as e:
                raise FileNotFoundError(
                    f"sweep: this worker cannot read the run's data file {path} ({e}); an executor whose "
                    "workers do not share the driver's file system needs backend='dask' or 'ray' (they "
                    "ship data themselves), or a ProblemSpec that loads the data by name on the worker") from None
        _CACHE[digest] = pickle.loads(data)
        while len(_CACHE) > 4:  # long-lived workers serve many sweeps
            _CACHE.popitem(last=False)
    return _CACHE[digest]


class _Shipped:
    """The runner as a task argument: pickles as its digest plus its bytes (small runners) or where
    to fetch them (large ones: a file path, a Ray object), and is unpickled once per worker process."""

    def __init__(self, runner, data, source=None):
        self.runner, self.data, self.source = runner, data, source
        self.digest = hashlib.blake2b(data, digest_size=16).hexdigest()

    def __reduce__(self):
        return _cached, (self.digest, self.data if self.source is None else None, self.source)

    def __dask_tokenize__(self):  # dask would otherwise hash the whole object for each task
        return self.digest


def _dumps(obj, what, cloud):
    try:
        return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as e:  # noqa: BLE001 - pickling raises many kinds of errors
        if cloud:  # Dask and Ray workers unpickle what cloudpickle writes (lambdas, __main__ code)
            try:
                import cloudpickle

                return cloudpickle.dumps(obj)
            except Exception:  # noqa: BLE001
                pass
        name = getattr(obj, "__qualname__", type(obj).__name__)
        raise TypeError(
            f"sweep: {what} {name!r} cannot be pickled ({type(e).__name__}: {e}), so it cannot be sent to "
            "worker processes. Define the run function with `def` at the top level of a module (not a "
            "lambda, a nested function or a closure) and give it picklable arguments, or pass a "
            "pyqsgd.Spec; or run it in this process (n_jobs=1)") from None


def _check_params(todo, cloud):
    for params, *_ in todo:
        for name, value in params.items():
            try:
                pickle.dumps(value)
            except Exception:  # noqa: BLE001
                _dumps(value, f"grid value {name}=", cloud)


def _run_task(runner, job, attempt, threads):
    """What a worker runs: one (params, seed). ``attempt`` only makes a retry a new Dask task."""
    from .sweeps import _run_job

    if threads:
        from .threads import set_num_threads

        set_num_threads(threads)
    return _run_job(job, runner.runner if isinstance(runner, _Shipped) else runner)


# ---- executors ------------------------------------------------------------------------------

def _call(fn, *args, **kwargs):
    return fn(*args, **kwargs)


class RayExecutor(cf.Executor):
    """A ``concurrent.futures.Executor`` running each call as a Ray task (``pip install "ray>=2.5"``).

    Parameters
    ----------
    address : str, optional
        The Ray cluster: ``"auto"`` (this node is part of a running cluster), ``"HOST:6379"``,
        ``"ray://HEAD:10001"`` (Ray client) or None (a running local Ray, else a new one).
    num_cpus : float
        CPUs Ray reserves per call (one run of a sweep).
    **init_kwargs
        Passed to ``ray.init`` when Ray is not initialised yet.

    Ray's own retry of crashed tasks is off (``max_retries=0``): the sweep retries a run whose worker
    died once, then records it as failed.

    Examples
    --------
    On a node of a Ray cluster (``ray start --head`` on the head, ``ray start --address=HEAD:6379``
    on the others)::

        ex = pq.sweep_executors.RayExecutor("auto")
        df = pq.sweep(spec, grid={"method__compressor__k": [1, 3, 10]}, seeds=5, executor=ex,
                      out="results.parquet")
    """

    def __init__(self, address=None, *, num_cpus=1, **init_kwargs):
        import ray

        self._owner = not ray.is_initialized()
        if self._owner:
            if address not in (None, "auto", "local"):
                _reachable(address, "Ray")
            ray.init(address=address, ignore_reinit_error=True, log_to_driver=False, **init_kwargs)
        self._ray = ray
        self._remote = ray.remote(num_cpus=num_cpus, max_retries=0)(_call)

    def submit(self, fn, /, *args, **kwargs):
        return self._remote.remote(fn, *args, **kwargs).future()

    def share(self, obj):
        """A handle that Ray resolves to ``obj`` on the worker: stored once in the object store."""
        return self._ray.put(obj)

    def shutdown(self, wait=True, *, cancel_futures=False):
        if self._owner and self._ray.is_initialized():
            self._ray.shutdown()


def _reachable(address, what):
    """Fails fast (and names the address) when nothing listens at ``address``."""
    text = str(address)
    hostport = text.split("://", 1)[-1].rsplit("/", 1)[0]
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"sweep: the {what} address must look like tcp://HOST:PORT (or HOST:PORT), got {text!r}")
    try:
        socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=CONNECT_TIMEOUT).close()
    except OSError as e:
        raise ConnectionError(f"sweep: cannot reach the {what} scheduler at {text} ({e}); is it running, and "
                              "is the address (host and port) right?") from None


def _is_dask(executor):
    return type(executor).__module__.startswith("distributed") and hasattr(executor, "_client")


def _dask_client(address, n_jobs):
    try:
        import dask
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise ImportError('sweep: backend="dask" needs Dask: pip install "pyqsgd[dask]"') from None
    if address is None:
        # A run that kills its worker is retried by the sweep (once), not by the scheduler.
        with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
            cluster = LocalCluster(n_workers=n_jobs, threads_per_worker=1, processes=True, dashboard_address=":0")
        return Client(cluster, set_as_default=False), cluster
    _reachable(address, "Dask")
    try:  # not the default client: the caller's own dask code keeps its own
        return Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False), None
    except (OSError, TimeoutError) as e:
        raise ConnectionError(f"sweep: cannot connect to the Dask scheduler at {address} within "
                              f"{CONNECT_TIMEOUT:g} s ({e})") from None


class Plan:
    """How a sweep's runs execute; built from sweep()'s executor / backend / address / n_jobs."""

    def __init__(self, executor=None, n_jobs=1, owned=False, threads=None, limit=None, close=()):
        self.executor, self.n_jobs, self.owned = executor, n_jobs, owned
        self.threads, self.limit, self._close = threads, limit, list(close)
        self.cloud = executor is not None and (_is_dask(executor) or isinstance(executor, RayExecutor))
        self.files = []

    @property
    def in_process(self):
        return self.executor is None or isinstance(self.executor, cf.ThreadPoolExecutor)

    def rebuild(self):
        """A fresh pool after a worker process died, or None when the executor is not ours."""
        if not (self.owned and isinstance(self.executor, ProcessPoolExecutor)):
            return None
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.executor = _pool(self.n_jobs)
        return self.executor

    def ship(self, runner, folder):
        """The runner argument of every task: itself in-process, else shipped once per worker."""
        if self.in_process:
            return runner
        data = _dumps(runner, "run function", self.cloud)
        if len(data) <= LARGE:
            return _Shipped(runner, data)
        if _is_dask(self.executor):
            # Scattered to every worker once; as a _Shipped, so that a worker that deserializes
            # it again (Dask may, e.g. when it copies the data between workers under load)
            # finds the runner in its process cache instead of unpickling it once more.
            return self.executor._client.scatter(_Shipped(runner, data), broadcast=True, hash=False)
        if isinstance(self.executor, RayExecutor):  # fetched by a worker process on first use only
            return _Shipped(runner, data, self.executor.share(data))
        folder = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="pyqsgd-sweep-"))
        path = folder / f".runner-{os.getpid()}-{hashlib.blake2b(data, digest_size=8).hexdigest()}.pkl"
        path.write_bytes(data)
        self.files.append(path)
        return _Shipped(runner, data, str(path))

    def close(self, wait=True):
        """Releases what the plan created (never a caller's executor); ``wait=False`` after an
        error or an interrupt, so runs in progress are not waited for."""
        for path in self.files:
            path.unlink(missing_ok=True)
        if self.owned and self.executor is not None:
            self.executor.shutdown(wait=wait, cancel_futures=True)
        for obj in self._close:
            obj.close()


def _pool(n_jobs):
    # spawn: fresh interpreters (no OpenMP state inherited through fork), same on every OS.
    return ProcessPoolExecutor(max_workers=n_jobs, mp_context=mp.get_context("spawn"))


def check(executor, backend, address, n_jobs):
    """Raises on a combination of sweep() arguments that does not say where to run."""
    if executor is not None and n_jobs is not None:
        raise ValueError("sweep: give executor= or n_jobs=, not both: n_jobs is the number of local worker "
                         "processes, while an executor brings its own workers (size it where you create it, "
                         "e.g. ProcessPoolExecutor(max_workers=4) or LocalCluster(n_workers=4))")
    if executor is not None and (backend is not None or address is not None):
        raise ValueError("sweep: give executor= or backend=/address=, not both")
    if backend is not None and backend not in BACKENDS:
        raise ValueError(f"sweep: backend must be one of {BACKENDS}, got {backend!r}")
    if address is not None and backend not in ("dask", "ray"):
        raise ValueError(f"sweep: address= is the scheduler of backend='dask' or 'ray', got backend={backend!r}")
    if address is not None and n_jobs is not None:
        raise ValueError("sweep: n_jobs sets the size of a local cluster; with address= the cluster's own "
                         "workers run the sweep (omit n_jobs)")


def plan(executor, backend, address, n_jobs, n_runs, resolve_n_jobs):
    """Sets up where the runs execute (connecting to a cluster, starting a pool; no runs yet)."""
    check(executor, backend, address, n_jobs)
    if executor is not None:
        if type(executor).__name__ == "Client" and hasattr(executor, "get_executor"):
            executor = executor.get_executor()  # a dask Client: its Executor view
        if not isinstance(executor, cf.Executor):
            raise TypeError(f"sweep: executor must be a concurrent.futures.Executor, got {type(executor).__name__}")
        return Plan(executor)
    cpus = os.cpu_count() or 1
    if backend == "dask":
        n = resolve_n_jobs(n_jobs if n_jobs is not None else -1, max(1, n_runs))
        client, cluster = _dask_client(address, n)
        close = [client] + ([cluster] if cluster is not None else [])
        return Plan(client.get_executor(), threads=max(1, cpus // n) if cluster is not None else None,
                    close=close)
    if backend == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ImportError('sweep: backend="ray" needs Ray: pip install "pyqsgd[ray]"') from None
        kwargs = {"num_cpus": resolve_n_jobs(n_jobs, max(1, n_runs))} if address is None and n_jobs is not None else {}
        ex = RayExecutor(address, **kwargs)
        return Plan(ex, owned=True)
    n = resolve_n_jobs(n_jobs if n_jobs is not None else (-1 if backend == "processes" else 1), max(1, n_runs))
    if n == 1 and backend is None:
        return Plan(None)
    # As many runs in flight as workers: when a worker dies and breaks the pool, only runs that were
    # really running are suspects (and each is retried alone).
    return Plan(_pool(n), n_jobs=n, owned=True, threads=max(1, cpus // n), limit=n)


# ---- the driver loop ------------------------------------------------------------------------

def execute(plan_, runner, todo, emit, fail, folder=None):
    """Runs every job of ``todo``; calls ``emit(run id, frame)`` as each finishes and
    ``fail(job, error text)`` for a job whose worker died twice.

    On an interrupt (Ctrl-C) or any other exception, the results of runs that already finished are
    still emitted (stored), queued runs are cancelled and the exception is re-raised at once,
    without waiting for the runs in progress."""
    from .sweeps import _run_job

    if not todo:
        return
    if plan_.executor is None:
        for job in todo:
            emit(*_run_job(job, runner))
        return
    if not plan_.in_process:
        _check_params(todo, plan_.cloud)
    shipped = plan_.ship(runner, folder)
    queue, alone = collections.deque(todo), collections.deque()
    attempts, pending, emitted = collections.Counter(), {}, set()

    def submit(job, source):
        """Submits job (taken from ``source``); False, with the job put back, when the pool broke
        since the last wait (a worker died after the runs seen so far finished)."""
        try:
            fut = plan_.executor.submit(_run_task, shipped, job, attempts[job[2]] + 1, plan_.threads)
        except BrokenExecutor as error:
            if not plan_.owned:
                raise _broken(error) from error
            source.appendleft(job)
            return False
        attempts[job[2]] += 1
        pending[fut] = job
        return True

    broken = False  # the pool broke: wait for its other runs to fail, then rebuild it
    try:
        while queue or alone or pending:
            if broken and not pending:
                plan_.rebuild()
                broken = False
            if not broken and alone:  # retries run one at a time, once the runs in flight are done
                if not pending:
                    broken = not submit(alone.popleft(), alone)
            elif not broken:
                while not broken and queue and (plan_.limit is None or len(pending) < plan_.limit):
                    broken = not submit(queue.popleft(), queue)
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            failed = False
            for fut in finished:
                job = pending.pop(fut)
                error = fut.exception() if not fut.cancelled() else cf.CancelledError("the run was cancelled")
                if error is None:
                    rid, df = fut.result()
                    if rid not in emitted:
                        emitted.add(rid)
                        emit(rid, df)
                    continue
                failed = True
                if isinstance(error, BrokenExecutor):
                    if not plan_.owned:
                        raise _broken(error) from error
                    broken = True
                if attempts[job[2]] >= 2:
                    emitted.add(job[2])
                    fail(job, f"{type(error).__name__}: {error} (its worker died; tried {attempts[job[2]]} times)")
                else:
                    # Retried alone: a dying worker also fails the other runs it held (a broken
                    # pool fails all; a Dask worker holds up to ~1.1 runs per thread), and a run
                    # that kills its worker must not take innocent runs down with it again.
                    alone.append(job)
            if failed and _is_dask_future(shipped) and shipped.status != "finished":
                shipped = plan_.ship(runner, folder)  # every worker holding the runner died: scatter again
    except BaseException:
        # Store what is already computed (including a result whose emit was interrupted), then
        # leave without waiting for the runs in progress.
        for fut, job in list(pending.items()):
            if fut.done() and not fut.cancelled() and fut.exception() is None and job[2] not in emitted:
                emit(*fut.result())
            else:
                fut.cancel()
        raise


def _broken(error):
    return RuntimeError(
        f"sweep: the executor broke ({type(error).__name__}: {error}): a worker process died and this "
        "executor cannot replace it. Finished runs are stored; rerun to resume, or use "
        "backend='processes' (its pool is rebuilt and the run retried)")


def _is_dask_future(obj):
    return type(obj).__module__.startswith("distributed") and hasattr(obj, "status")

