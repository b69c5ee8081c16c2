"""pyqsgd.sweep on executors: local process pools, a real Dask LocalCluster, Ray; faults and bad input."""
import os
import signal
import socket
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import pandas as pd
import pytest

import pyqsgd as pq
from pyqsgd.cli import main

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sweep_runs  # noqa: E402  (run functions importable by name in worker processes)


def small_spec():
    return pq.Spec(pq.ProblemSpec("logistic", "breast_cancer", l2=1e-2), pq.methods.EF21(pq.TopK(k=3)),
                   n_workers=4, rounds=12, lr_factor=1.0, log_every=4)


def starts(log):
    """(a, key) of every run start logged by sweep_runs."""
    return [tuple(int(v) for v in line.split()[1:3]) for line in log.read_text().splitlines() if line.startswith("start")]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- bad input (no cluster needed) -----------------------------------------------------------

def test_mixing_executor_with_n_jobs_or_backend_is_an_error():
    with ThreadPoolExecutor(1) as ex:
        with pytest.raises(ValueError, match=r"executor= or n_jobs=, not both.*max_workers"):
            pq.sweep(dict, grid={"a": [1]}, executor=ex, n_jobs=2, progress=False)
        with pytest.raises(ValueError, match="executor= or backend="):
            pq.sweep(dict, grid={"a": [1]}, executor=ex, backend="dask", progress=False)
    with pytest.raises(TypeError, match="concurrent.futures.Executor"):
        pq.sweep(dict, grid={"a": [1]}, executor="tcp://localhost:8786", progress=False)
    with pytest.raises(ValueError, match="backend must be one of"):
        pq.sweep(dict, grid={"a": [1]}, backend="slurm", progress=False)
    with pytest.raises(ValueError, match="address= is the scheduler"):
        pq.sweep(dict, grid={"a": [1]}, address="tcp://localhost:8786", progress=False)
    with pytest.raises(ValueError, match="omit n_jobs"):
        pq.sweep(dict, grid={"a": [1]}, backend="dask", address="tcp://localhost:8786", n_jobs=2, progress=False)


def test_non_picklable_run_function_says_what_to_change(tmp_path):
    offset = 3
    t0 = time.monotonic()
    with pytest.raises(TypeError, match=r"cannot be pickled.*top level of a module.*Spec.*n_jobs=1"):
        pq.sweep(lambda a, key: {"v": a + offset}, grid={"a": [1, 2]}, n_jobs=2, progress=False)
    with ProcessPoolExecutor(1) as ex, pytest.raises(TypeError, match=r"local_run' cannot be pickled"):
        def local_run(a, key):
            return {"v": a}
        pq.sweep(local_run, grid={"a": [1]}, executor=ex, out=tmp_path / "r.parquet", progress=False)
    class Local:  # a stable repr (a valid run id), but a local class: not picklable
        def __repr__(self):
            return "Local()"

    with pytest.raises(TypeError, match=r"grid value obj=.*cannot be pickled"):
        pq.sweep(sweep_runs.logged, grid={"a": [1, 2], "log": ["x"], "obj": [Local()]}, n_jobs=2, progress=False)
    assert time.monotonic() - t0 < 10  # checked before any worker starts
    # In this process (threads) nothing is pickled: a lambda is fine.
    with ThreadPoolExecutor(2) as ex:
        df = pq.sweep(lambda a, key: {"v": a + offset}, grid={"a": [1, 2]}, executor=ex, progress=False)
    assert df["v"].tolist() == [4, 5]


def test_cli_flags_conflict_and_unreachable_scheduler(tmp_path, capsys):
    pytest.importorskip("distributed", reason="needs dask[distributed] (pip install 'pyqsgd[dask]')")
    from test_cli import CONFIG, write

    path = write(tmp_path, CONFIG)
    assert main(["sweep", str(path), "--dask", "tcp://127.0.0.1:1", "--n-jobs", "2", "--quiet"]) == 2
    assert "omit --n-jobs" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["sweep", str(path), "--dask", "tcp://a:1", "--ray", "auto"])
    address = f"tcp://127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    assert main(["sweep", str(path), "--dask", address, "--quiet"]) == 2
    assert time.monotonic() - t0 < 8
    err = capsys.readouterr().err
    assert f"cannot reach the Dask scheduler at {address}" in err
    assert not (tmp_path / "results.parquet").exists()


def test_unreachable_dask_scheduler_fails_fast_naming_the_address():
    pytest.importorskip("distributed", reason="needs dask[distributed] (pip install 'pyqsgd[dask]')")
    address = f"tcp://127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    with pytest.raises(ConnectionError, match=f"Dask scheduler at {address}"):
        pq.sweep(dict, grid={"a": [1]}, backend="dask", address=address, progress=False)
    assert time.monotonic() - t0 < 8
    with pytest.raises(ValueError, match="tcp://HOST:PORT"):
        pq.sweep(dict, grid={"a": [1]}, backend="dask", address="localhost", progress=False)


# ---- local process pools ---------------------------------------------------------------------

def test_run_killing_its_worker_is_retried_alone_then_failed(tmp_path):
    # The pool breaks for every run in flight; the suspects are retried one at a time, so only
    # the run that really kills its worker ends as "failed", and every other run is stored once.
    log = tmp_path / "log.txt"
    grid = {"a": [0, 1, 2, 3], "log": [str(log)], "die": [1], "fail": [2], "sleep": [0.2]}
    df = pq.sweep(sweep_runs.killer, grid=grid, seeds=[0], n_jobs=2, out=tmp_path / "r.parquet", progress=False)
    assert df["a"].tolist() == [0, 1, 2, 3] and df["run_id"].is_unique
    assert df["status"].tolist() == ["ok", "failed", "error", "ok"]
    assert "BrokenProcessPool" in df.loc[1, "error"] and "tried 2 times" in df.loc[1, "error"]
    assert "boom at a=2" in df.loc[2, "error"]
    assert starts(log).count((1, 0)) == 2  # tried once, retried once
    assert df["value"].tolist()[::3] == [0, 30]


class _BreaksOnSecondSubmit(ProcessPoolExecutor):
    """A pool that reports itself broken at its second submit, as a real one does when a worker
    died after the runs seen so far finished: submit raises before any future exists."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.submits = 0

    def submit(self, fn, /, *args, **kwargs):
        self.submits += 1
        if self.submits == 2:
            from concurrent.futures.process import BrokenProcessPool

            raise BrokenProcessPool("a child process terminated abruptly")
        return super().submit(fn, *args, **kwargs)


def test_a_pool_found_broken_at_submit_is_rebuilt_and_no_run_is_lost(tmp_path, monkeypatch):
    executors = sys.modules["pyqsgd.sweep_executors"]
    real, made = executors._pool, []

    def pool(n):  # the first pool breaks at its second submit; the rebuilt one is healthy
        made.append(_BreaksOnSecondSubmit(max_workers=n) if not made else real(n))
        return made[-1]

    monkeypatch.setattr(executors, "_pool", pool)
    log = tmp_path / "log.txt"
    df = pq.sweep(sweep_runs.logged, grid={"a": [0, 1, 2, 3], "log": [str(log)]}, seeds=[0], n_jobs=2,
                  out=tmp_path / "r.parquet", progress=False)
    assert len(made) == 2  # rebuilt once
    assert df["a"].tolist() == [0, 1, 2, 3] and (df["status"] == "ok").all() and df["run_id"].is_unique
    # An executor the sweep does not own is not replaced: a clear error, not a raw BrokenProcessPool.
    with _BreaksOnSecondSubmit(max_workers=1) as ex, pytest.raises(RuntimeError, match="the executor broke"):
        pq.sweep(sweep_runs.logged, grid={"a": [0, 1, 2], "log": [str(log)]}, seeds=[0], executor=ex,
                 out=tmp_path / "s.parquet", progress=False)


def test_any_process_pool_executor_gets_large_data_once_per_worker(tmp_path):
    log = tmp_path / "unpickled.txt"
    run = sweep_runs.DataRun(300_000, str(log))  # 2.4 MB: too large to send with every run
    with ProcessPoolExecutor(2) as ex:
        df = pq.sweep(run, grid={"a": [1, 2, 3, 4]}, seeds=[0, 1], executor=ex, out=tmp_path / "r.parquet",
                      progress=False)
    assert df["value"].tolist() == [1, 2, 2, 3, 3, 4, 4, 5]
    pids = log.read_text().split()
    assert len(pids) == len(set(pids)) <= 2  # once per worker process, not once per run (8)
    assert not list(tmp_path.glob("r.parquet.parts")) and not list(tmp_path.glob("**/.runner-*"))


# ---- a real Dask cluster ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def dask_client():
    pytest.importorskip("distributed", reason="needs dask[distributed] (pip install 'pyqsgd[dask]')")
    import dask
    from dask.distributed import Client, LocalCluster

    # The scheduler does not retry a task whose worker died: the sweep's own rule (retry once) applies.
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
    client = Client(cluster)
    yield client
    client.close()
    cluster.close()


def test_dask_gives_the_same_table_as_local_processes(dask_client, tmp_path):
    spec = small_spec()
    grid = {"method__compressor__k": [2, 5], "lr_factor": [0.5, 1.0]}
    local = pq.sweep(spec, grid=grid, seeds=[0, 1], n_jobs=2, out=tmp_path / "local.parquet", progress=False)
    on_dask = pq.sweep(spec, grid=grid, seeds=[0, 1], executor=dask_client.get_executor(),
                       out=tmp_path / "dask.parquet", progress=False)
    assert len(local) == 8 * 4 and (local["status"] == "ok").all()
    pd.testing.assert_frame_equal(local.drop(columns="seconds"), on_dask.drop(columns="seconds"))
    # A Client itself is accepted too (its Executor view); in memory, no out.
    direct = pq.sweep(spec, grid=grid, seeds=[0, 1], executor=dask_client, progress=False)
    pd.testing.assert_frame_equal(local.drop(columns="seconds"), direct.drop(columns="seconds"))


def test_dask_worker_killed_mid_sweep_then_rerun_every_run_once(dask_client, tmp_path):
    log, out = tmp_path / "log.txt", tmp_path / "r.parquet"
    grid = {"a": list(range(8)), "log": [str(log)], "sleep": [0.3]}
    pids = list(dask_client.run(os.getpid).values())

    def kill_one():  # once the first run is stored and others are running
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not list(tmp_path.glob("r.parquet.parts/*.parquet")):
            time.sleep(0.02)
        os.kill(pids[0], signal.SIGKILL)

    killer = threading.Thread(target=kill_one)
    killer.start()
    df = pq.sweep(sweep_runs.logged, grid=grid, seeds=[0, 1], executor=dask_client.get_executor(), out=out,
                  progress=False)
    killer.join()
    assert (df["status"] == "ok").all() and df["run_id"].is_unique and len(df) == 16
    assert sorted(zip(df["a"], df["seed"])) == [(a, s) for a in range(8) for s in (0, 1)]
    n_started = len(starts(log))
    rerun = pq.sweep(sweep_runs.logged, grid=grid, seeds=[0, 1], executor=dask_client.get_executor(), out=out,
                     progress=False)
    assert len(starts(log)) == n_started  # nothing recomputed
    pd.testing.assert_frame_equal(rerun, df)
    stored = pq.load_sweep(out)
    assert len(stored) == 16 and stored["run_id"].is_unique


def test_dask_failing_runs_are_recorded_while_the_others_finish(dask_client, tmp_path):
    log = tmp_path / "log.txt"
    grid = {"a": [0, 1, 2, 3, 4], "log": [str(log)], "die": [1], "fail": [2]}
    df = pq.sweep(sweep_runs.killer, grid=grid, seeds=[0], executor=dask_client.get_executor(),
                  out=tmp_path / "r.csv", progress=False)
    assert df["status"].tolist() == ["ok", "failed", "error", "ok", "ok"]
    assert "KilledWorker" in df.loc[1, "error"] and "boom at a=2" in df.loc[2, "error"]
    assert starts(log).count((1, 0)) == 2 and starts(log).count((2, 0)) == 1
    assert df["value"].tolist()[::4] == [0, 40]


def test_dask_ships_large_data_once_per_worker(dask_client, tmp_path):
    log = tmp_path / "unpickled.txt"
    run = sweep_runs.DataRun(300_000, str(log))
    df = pq.sweep(run, grid={"a": [1, 2, 3, 4]}, seeds=[0, 1], executor=dask_client.get_executor(),
                  progress=False)
    assert df["value"].tolist() == [1, 2, 2, 3, 3, 4, 4, 5]
    assert len(log.read_text().split()) <= 2  # scattered once to each worker, not sent with every run


def test_dask_backend_without_address_runs_on_a_local_cluster_and_closes_it(tmp_path):
    pytest.importorskip("distributed", reason="needs dask[distributed] (pip install 'pyqsgd[dask]')")
    df = pq.sweep(sweep_runs.logged, grid={"a": [1, 2, 3], "log": [str(tmp_path / "log.txt")]}, backend="dask",
                  n_jobs=2, out=tmp_path / "r.parquet", progress=False)
    assert df["value"].tolist() == [10, 20, 30]
    assert len({line.split()[3] for line in (tmp_path / "log.txt").read_text().splitlines()
                if line.startswith("start")} - {str(os.getpid())}) >= 1  # ran in worker processes


def test_cli_sweep_on_a_dask_scheduler(dask_client, tmp_path, capsys):
    from test_cli import CONFIG, write

    path = write(tmp_path, CONFIG)
    assert main(["sweep", str(path), "--dask", dask_client.scheduler.address, "--quiet"]) == 0
    assert f"on dask at {dask_client.scheduler.address}" in capsys.readouterr().out
    df = pq.load_sweep(tmp_path / "results.parquet")
    assert df["run_id"].nunique() == 4 and (df["status"] == "ok").all()


# ---- Ray ---------------------------------------------------------------------------------------

def test_ray_executor_gives_the_same_table(tmp_path):
    ray = pytest.importorskip("ray", reason="needs Ray (pip install 'pyqsgd[ray]')")
    from pyqsgd.sweep_executors import RayExecutor

    spec = small_spec()
    grid = {"method__compressor__k": [2, 5]}
    local = pq.sweep(spec, grid=grid, seeds=[0, 1], progress=False)
    ex = RayExecutor(num_cpus=2, include_dashboard=False,
                     runtime_env={"env_vars": {"PYTHONPATH": os.path.dirname(os.path.abspath(__file__))}})
    try:
        on_ray = pq.sweep(spec, grid=grid, seeds=[0, 1], executor=ex, out=tmp_path / "r.parquet", progress=False)
        log = tmp_path / "unpickled.txt"
        data = pq.sweep(sweep_runs.DataRun(300_000, str(log)), grid={"a": [1, 2]}, seeds=[0, 1], executor=ex,
                        progress=False)
    finally:
        ex.shutdown()
    pd.testing.assert_frame_equal(local.drop(columns="seconds"), on_ray.drop(columns="seconds"))
    assert data["value"].tolist() == [1, 2, 2, 3]
    assert len(log.read_text().split()) <= 2
    assert not ray.is_initialized()
