"""pyqsgd.sweep: grids over nested names, seeds, failures, resumable storage, worker processes."""
import doctest
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pytest

import pyqsgd as pq
from pyqsgd import experiment, sweep_executors, sweep_store, sweeps


def small_spec(**simulate):
    args = dict(n_workers=4, rounds=12, lr_factor=1.0, log_every=4)
    args.update(simulate)
    return pq.Spec(pq.ProblemSpec("logistic", "breast_cancer", l2=1e-2), pq.methods.EF21(pq.TopK(k=3)), **args)


def scalar_run(a, b=0, key=0):
    return {"value": a * 100 + b * 10 + key}


def test_docstring_examples():
    for module in (sweeps, experiment, sweep_store, sweep_executors):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
        assert result.attempted > 0 and result.failed == 0


def test_grid_times_seeds_in_order_with_run_columns():
    df = pq.sweep(scalar_run, grid={"a": [1, 2], "b": [0, 1]}, seeds=[0, 1], progress=False)
    assert df["value"].tolist() == [100, 101, 110, 111, 200, 201, 210, 211]
    assert list(df.columns[:7]) == ["a", "b", "seed", "run_id", "status", "error", "seconds"]
    assert (df["status"] == "ok").all() and df["run_id"].nunique() == 8


def test_seeds_as_count_and_no_grid():
    df = pq.sweep(scalar_run, grid={"a": [3]}, seeds=3, progress=False)
    assert df["seed"].tolist() == [0, 1, 2]


def test_run_id_is_stable_and_distinguishes_params_and_seed(tmp_path):
    a = sweeps.run_id({"x": 1, "m": "EF21(TopK(k=3))"}, 0)
    assert a == sweeps.run_id({"m": "EF21(TopK(k=3))", "x": 1}, 0)  # key order does not matter
    assert a != sweeps.run_id({"x": 1, "m": "EF21(TopK(k=3))"}, 1)
    assert a != sweeps.run_id({"x": 2, "m": "EF21(TopK(k=3))"}, 0)
    assert len(a) == 16 and int(a, 16) >= 0
    # The same in a fresh interpreter (no dependence on hash randomisation).
    code = "from pyqsgd.sweeps import run_id; print(run_id({'x': 1, 'm': 'EF21(TopK(k=3))'}, 0))"
    assert subprocess.check_output([sys.executable, "-c", code], text=True, cwd=tmp_path).strip() == a


def test_spec_sweep_sets_nested_parameters_and_logs_every_round():
    spec = small_spec()
    df = pq.sweep(spec, grid={"method__compressor__k": [2, 5], "lr_factor": [0.5, 1.0]}, seeds=[0], progress=False)
    assert df["run_id"].nunique() == 4
    assert len(df) == 4 * 4  # rounds 0, 4, 8, 12 per run
    assert set(df["method"]) == {"EF21(TopK(k=2))", "EF21(TopK(k=5))"}
    for col in ("problem", "n_workers", "rounds", "lr_factor", "log_every", "method__compressor__k", "seed",
                "loss", "bits_up", "uploads"):
        assert col in df.columns
    # A larger k sends more bits; the spec's own method object was not modified.
    last = df.groupby("method__compressor__k")["bits_up"].max()
    assert last[5] > last[2]
    assert spec.method == pq.methods.EF21(pq.TopK(k=3))
    # Same (params, seed) as a direct run: identical numbers.
    hist = spec.configure(method__compressor__k=2, lr_factor=0.5).run(key=0)
    got = df[(df.method__compressor__k == 2) & (df.lr_factor == 0.5)]["loss"].to_numpy()
    np.testing.assert_array_equal(got, hist.loss)


def test_grid_over_method_objects_and_partition_args():
    spec = small_spec(partition={"scheme": "dirichlet", "alpha": 0.5})
    methods = [pq.methods.EF21(pq.TopK(k=3)), pq.methods.EFSignSGD()]
    df = pq.sweep(spec, grid={"method": methods, "partition__alpha": [0.1, 10.0]}, seeds=[1], progress=False)
    assert set(df["method"]) == {"EF21(TopK(k=3))", "EFSignSGD()"}
    assert set(df["partition__alpha"]) == {0.1, 10.0}
    assert (df["status"] == "ok").all()


def test_bad_grid_names_fail_before_any_run():
    with pytest.raises(ValueError, match="method__compresor"):
        pq.sweep(small_spec(), grid={"method__compresor__k": [1]}, progress=False)
    with pytest.raises(ValueError, match="'roundz'"):
        pq.sweep(small_spec(), grid={"roundz": [1]}, progress=False)
    with pytest.raises(ValueError, match="TopK: k"):
        pq.sweep(small_spec(), grid={"method__compressor__k": [0]}, progress=False)
    with pytest.raises(ValueError, match="reserved"):
        pq.sweep(scalar_run, grid={"seed": [1]}, progress=False)
    with pytest.raises(TypeError, match="list of values"):
        pq.sweep(scalar_run, grid={"a": 3}, progress=False)


def flaky_run(a, key):
    if a == 2:
        raise RuntimeError("boom at a=2")
    return {"value": a + key}


def test_failing_run_is_recorded_and_the_sweep_goes_on(tmp_path):
    out = tmp_path / "res.csv"
    df = pq.sweep(flaky_run, grid={"a": [1, 2, 3]}, seeds=[0], out=out, progress=False)
    assert df["status"].tolist() == ["ok", "error", "ok"]
    err = df.loc[df.a == 2, "error"].iloc[0]
    assert "RuntimeError: boom at a=2" in err
    assert np.isnan(df.loc[df.a == 2, "value"].iloc[0])
    assert out.is_file() and not (tmp_path / "res.csv.parts").exists()


def diverging_run(key):
    with pytest.warns(RuntimeWarning, match="diverged"):
        return small_spec(lr=1e30, lr_factor=None).run(key=key)


def test_history_that_diverged_is_marked_diverged():
    df = pq.sweep(diverging_run, seeds=[0], progress=False)
    assert set(df["status"]) == {"diverged"}
    assert df["error"].iloc[0].startswith("non-finite")
    assert len(df) < 4 and df["round"].max() < 12  # stopped early (12 rounds, logged every 4)


def counting_run(a, key, log):
    with open(log, "a") as f:
        f.write(f"{a},{key}\n")
    return {"value": a * 10 + key}


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ""])
def test_resume_skips_finished_runs(tmp_path, suffix):
    log = tmp_path / "log.txt"
    out = tmp_path / f"res{suffix}"
    first = pq.sweep(counting_run, grid={"a": [1, 2], "log": [str(log)]}, seeds=[0], out=out, progress=False)
    assert len(first) == 2
    full = pq.sweep(counting_run, grid={"a": [1, 2, 3], "log": [str(log)]}, seeds=[0, 1], out=out, progress=False)
    lines = log.read_text().split()
    assert sorted(lines) == sorted(["1,0", "2,0", "1,1", "2,1", "3,0", "3,1"])  # each run exactly once
    assert len(full) == 6 and full["run_id"].nunique() == 6
    assert full["value"].tolist() == [10, 11, 20, 21, 30, 31]
    again = pq.sweep(counting_run, grid={"a": [1, 2, 3], "log": [str(log)]}, seeds=[0, 1], out=out, progress=False)
    assert len(log.read_text().split()) == 6
    pd.testing.assert_frame_equal(again.drop(columns="seconds"), full.drop(columns="seconds"))
    stored = pq.load_sweep(out)
    assert stored["run_id"].nunique() == 6


def test_failed_runs_are_retried_on_resume(tmp_path):
    out = tmp_path / "res.parquet"
    pq.sweep(flaky_run, grid={"a": [1, 2]}, seeds=[0], out=out, progress=False)
    df = pq.sweep(scalar_run, grid={"a": [1, 2]}, seeds=[0], out=out, progress=False)
    # scalar_run has the same grid, hence the same run ids: a=1 is kept, a=2 (failed) reruns.
    assert df["status"].tolist() == ["ok", "ok"]
    assert df["value"].tolist() == [1, 200]


_KILL_SCRIPT = """
import sys, time
import pyqsgd as pq

def run(a, key):
    with open(sys.argv[2], "a") as f:
        f.write(f"start {a} {key}\\n")
    time.sleep(0.4)
    with open(sys.argv[2], "a") as f:
        f.write(f"end {a} {key}\\n")
    return {"value": 10 * a + key}

if __name__ == "__main__":
    df = pq.sweep(run, grid={"a": [0, 1, 2, 3]}, seeds=[0, 1], out=sys.argv[1], progress=False)
    print(len(df))
"""


def test_killed_sweep_resumes_without_loss_or_recomputation(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(_KILL_SCRIPT))
    out, log = tmp_path / "res.parquet", tmp_path / "log.txt"
    parts = tmp_path / "res.parquet.parts"
    proc = subprocess.Popen([sys.executable, str(script), str(out), str(log)], cwd=tmp_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (parts.is_dir() and len(list(parts.glob("*.parquet"))) >= 3):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode != 0, "the sweep finished before it could be killed"
    finished = {tuple(line.split()[1:]) for line in log.read_text().splitlines() if line.startswith("end")}
    assert 3 <= len(finished) < 8
    assert not out.exists()  # killed before combining

    rerun = subprocess.run([sys.executable, str(script), str(out), str(log)], capture_output=True, text=True,
                           timeout=120, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert rerun.stdout.strip() == "8"
    lines = log.read_text().splitlines()
    ends = [tuple(line.split()[1:]) for line in lines if line.startswith("end")]
    starts = [tuple(line.split()[1:]) for line in lines if line.startswith("start")]
    assert len(set(ends)) == 8
    for run in finished:  # finished before the kill: never started again
        assert starts.count(run) == 1
    df = pq.load_sweep(out)
    assert len(df) == 8 and df["run_id"].nunique() == 8
    assert sorted(df["value"]) == sorted(10 * a + k for a in range(4) for k in (0, 1))
    assert not parts.exists()


def test_worker_processes_match_in_process(tmp_path):
    spec = small_spec()
    grid = {"method__compressor__k": [2, 4]}
    serial = pq.sweep(spec, grid=grid, seeds=[0, 1], progress=False)
    parallel = pq.sweep(spec, grid=grid, seeds=[0, 1], n_jobs=2, out=tmp_path / "par.parquet", progress=False)
    cols = ["run_id", "round", "loss", "bits_up", "uploads"]
    pd.testing.assert_frame_equal(serial[cols], parallel[cols], check_dtype=False)


def test_spec_validation():
    with pytest.raises(ValueError, match="lr or lr_factor"):
        small_spec(lr=0.1)
    with pytest.raises(ValueError, match="unknown simulate argument 'round'"):
        pq.Spec(pq.ProblemSpec(), pq.methods.EFSignSGD(), round=3)
    with pytest.raises(TypeError, match="method"):
        pq.Spec(pq.ProblemSpec(), "EF21")
    with pytest.raises(ValueError, match="name must be one of"):
        pq.ProblemSpec("logit")


def test_problem_spec_fallback_and_libsvm(monkeypatch):
    monkeypatch.setenv("PYQSGD_DATA", "/nonexistent")
    spec = pq.ProblemSpec("logistic", "no_such_file.svm", l2=1e-3, fallback="breast_cancer")
    with pytest.warns(RuntimeWarning, match="no_such_file"):
        prob = spec.build()
    assert prob.dim == 31 and prob.dataset == "breast_cancer"  # breast_cancer + bias
    with pytest.raises(FileNotFoundError, match="no_such_file.svm"):
        pq.ProblemSpec("logistic", "no_such_file.svm").load_data()  # no fallback by default
    assert pq.ProblemSpec("softmax", "digits").build().dim == 10 * 65
    assert pq.ProblemSpec("least_squares", "synthetic", n_samples=100, n_features=5).build().dim == 6


def test_reference_optimum_and_measure_table():
    prob = pq.ProblemSpec("logistic", "breast_cancer", l2=1e-2).build()
    f_star, x_star = experiment.reference_optimum(prob)
    assert float(np.linalg.norm(prob.grad(x_star))) < 1e-5
    hist = pq.simulate(prob, pq.methods.DCGD(pq.Identity()), n_workers=1, rounds=50, lr=1 / prob.smoothness())
    assert hist.loss[-1] >= f_star - 1e-9
    x = np.random.default_rng(0).standard_normal(64)
    table = experiment.measure_table({"RandK": [pq.RandK(k=8), pq.RandK(k=16)], "TopK": pq.TopK(k=8)}, x, trials=50)
    assert table["family"].tolist() == ["RandK", "RandK", "TopK"]
    assert table.loc[0, "omega_theory"] == pytest.approx(7.0)
    assert table.loc[0, "omega_lo"] < 7.0 < table.loc[0, "omega_hi"] * 1.5
    assert table.loc[2, "delta"] >= table.loc[2, "delta_theory"] - 1e-9


# ---- regressions -----------------------------------------------------------------------------

CALLS = []


def recording_run(a, key):
    CALLS.append((a, key))
    return {"value": a * 10 + key}


def _find_value(accept):
    """The first a >= 0 whose run id for the grid point {"a": a}, seed 0 passes ``accept``."""
    for a in range(200000):
        if accept(sweeps.run_id({"a": a}, 0)):
            return a
    raise AssertionError("no such run id found")


@pytest.mark.parametrize("shape", ["digits", "digits-e"])
def test_csv_resume_recognises_numeric_looking_run_ids(tmp_path, shape):
    # An id of only digits (or digits with one 'e') read back from CSV became an int / a float, so
    # the finished run was not recognised: it was recomputed and the results held it twice.
    if shape == "digits":
        a = _find_value(str.isdigit)
    else:
        a = _find_value(lambda r: r.count("e") == 1 and r.replace("e", "").isdigit())
    rid = sweeps.run_id({"a": a}, 0)
    out = tmp_path / "res.csv"
    CALLS.clear()
    first = pq.sweep(recording_run, grid={"a": [a]}, seeds=[0], out=out, progress=False)
    assert first["run_id"].tolist() == [rid]
    second = pq.sweep(recording_run, grid={"a": [a, a + 1]}, seeds=[0], out=out, progress=False)
    assert CALLS == [(a, 0), (a + 1, 0)]  # the finished run is not recomputed
    assert second["run_id"].tolist() == [rid, sweeps.run_id({"a": a + 1}, 0)]
    assert second["value"].tolist() == [10 * a, 10 * a + 10]
    stored = pq.load_sweep(out)
    assert len(stored) == 2 and sorted(stored["run_id"]) == sorted(second["run_id"])


def mixed_run(b, key):
    return {"n": len(b) if isinstance(b, list) else 1}


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_grid_column_mixing_types_is_stored_as_text(tmp_path, suffix):
    # 32 (int) and [8, 16] (JSON text) in one column: Parquet could not combine the part files,
    # and every rerun crashed again while finalising.
    out = tmp_path / f"res{suffix}"
    grid = {"b": [32, [8, 16]]}
    df = pq.sweep(mixed_run, grid=grid, seeds=[0], out=out, progress=False)
    assert df["b"].tolist() == ["32", "[8, 16]"] and df["n"].tolist() == [1, 2]
    assert out.is_file() and not (tmp_path / f"res{suffix}.parts").exists()
    again = pq.sweep(mixed_run, grid=grid, seeds=[0, 1], out=out, progress=False)
    assert again["b"].tolist() == ["32", "32", "[8, 16]", "[8, 16]"]
    assert again["run_id"].tolist()[::2] == df["run_id"].tolist()  # ids do not depend on the mix
    # A sweep that stored b=32 alone (as an int) and is then extended with a list still combines.
    out2 = tmp_path / f"ext{suffix}"
    pq.sweep(mixed_run, grid={"b": [32]}, seeds=[0], out=out2, progress=False)
    ext = pq.sweep(mixed_run, grid=grid, seeds=[0], out=out2, progress=False)
    assert ext["b"].tolist() == ["32", "[8, 16]"] and ext["run_id"].tolist() == df["run_id"].tolist()
    # In memory too, the column is uniform.
    assert pq.sweep(mixed_run, grid=grid, progress=False)["b"].tolist() == ["32", "[8, 16]"]


class Unnamed:
    def __call__(self, x):
        return x


class Named:
    def __init__(self, name):
        self.name = name


def object_run(obj, key):
    return {"value": key}


def test_parameter_with_memory_address_in_its_text_is_rejected():
    # Its run id would change in every process: a resumed sweep would recompute everything.
    with pytest.raises(ValueError, match=r"parameter 'obj'.*memory address.*__repr__"):
        pq.sweep(object_run, grid={"obj": [Unnamed()]}, progress=False)
    with pytest.raises(ValueError, match=r"parameter 'obj'.*memory address"):
        pq.sweep(object_run, grid={"obj": [[1, Unnamed()]]}, progress=False)
    with pytest.raises(ValueError, match=r"parameter 'problem'.*memory address"):
        pq.sweep(pq.Spec(Unnamed(), pq.methods.EFSignSGD(), rounds=2), grid={"rounds": [2]}, progress=False)
    with pytest.raises(ValueError, match=r"parameter 'x'.*memory address"):
        sweeps.run_id({"x": object()}, 0)
    # A `name` attribute stands in for a missing __repr__: the same id for equal names.
    df = pq.sweep(object_run, grid={"obj": [Named("a"), Named("b")]}, progress=False)
    assert df["obj"].tolist() == ["Named(name='a')", "Named(name='b')"]
    assert sweeps.run_id({"obj": Named("a")}, 0) == df["run_id"].iloc[0]


@pytest.mark.parametrize("value", [{"scheme": "dirichlet", "alpha": 0.5}, {1, 2}, frozenset({3}), "abc", b"ab"])
def test_grid_value_that_is_not_a_list_is_rejected(value):
    # A dict used to become one run per key (two bogus runs for a partition dict).
    with pytest.raises(TypeError, match=r"grid\['partition'\] must be a list of values.*write a list"):
        sweeps.expand_grid({"partition": value})
    assert sweeps.expand_grid({"partition": [{"scheme": "iid"}]}) == [{"partition": {"scheme": "iid"}}]


def test_interrupted_parallel_sweep_keeps_finished_runs(tmp_path, monkeypatch):
    # Ctrl-C while waiting for workers: the runs that already finished are stored, the sweep
    # leaves at once (a `with ProcessPoolExecutor` block waited for the runs, then dropped them).
    real_wait = sweep_executors.wait

    def interrupted_wait(fs, timeout=None, return_when=None):
        real_wait(fs, return_when="ALL_COMPLETED")
        raise KeyboardInterrupt

    monkeypatch.setattr(sweep_executors, "wait", interrupted_wait)
    out = tmp_path / "res.parquet"
    # dict(a=..., key=...) is a run returning a dict of scalars that worker processes can unpickle.
    with pytest.raises(KeyboardInterrupt):
        pq.sweep(dict, grid={"a": [1, 2, 3]}, seeds=[0], n_jobs=2, out=out, progress=False)
    # As many runs in flight as workers (2): both finished before the interrupt and are stored.
    stored = pq.load_sweep(out)
    assert sorted(stored["a"]) == [1, 2] and (stored["status"] == "ok").all()
    monkeypatch.undo()
    CALLS.clear()
    df = pq.sweep(recording_run, grid={"a": [1, 2, 3]}, seeds=[0], out=out, progress=False)
    assert CALLS == [(3, 0)] and df["a"].tolist() == [1, 2, 3]
