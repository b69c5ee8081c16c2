"""Sweep storage under faults: a driver killed (SIGKILL) again and again, damaged result files."""
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import pytest

import pyqsgd as pq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sweep_runs  # noqa: E402

N_RUNS = 120

_SCRIPT = """
import sys
import pyqsgd as pq
sys.path.insert(0, {tests!r})
import sweep_runs

if __name__ == "__main__":
    out, log, n_jobs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    df = pq.sweep(sweep_runs.logged, grid={{"a": list(range({n} // 2)), "log": [log], "sleep": [0.1]}},
                  seeds=[0, 1], out=out, n_jobs=n_jobs, progress=False)
    print(len(df), df["run_id"].nunique())
"""


@pytest.mark.slow  # ~45 s: 20 interpreter starts (each imports pyqsgd and pandas)
def test_sweep_killed_20_times_at_random_points_completes_without_duplicates(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(_SCRIPT.format(tests=os.path.dirname(os.path.abspath(__file__)), n=N_RUNS)))
    out, log = tmp_path / "res.parquet", tmp_path / "log.txt"
    rng = random.Random(0)
    killed = 0
    t0 = time.monotonic()
    for i in range(20):
        # Every fifth start uses worker processes: the kill then also orphans them mid-run.
        n_jobs = 2 if i % 5 == 4 else 1
        size = log.stat().st_size if log.exists() else 0
        proc = subprocess.Popen([sys.executable, str(script), str(out), str(log), str(n_jobs)], cwd=tmp_path,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if i % 5 == 0:  # while starting up, reading the results or cleaning up
            time.sleep(rng.uniform(0.0, 1.5))
        else:  # at a random point once runs are under way: running, writing a part, combining
            deadline = time.monotonic() + 20
            while proc.poll() is None and time.monotonic() < deadline and \
                    (log.stat().st_size if log.exists() else 0) == size:
                time.sleep(0.005)
            # 20 starts can run at most ~10 s of the 12 s of runs (120 x 0.1 s), so the sweep
            # never completes before the last kill however fast the machine is.
            time.sleep(rng.uniform(0.0, 0.3))
        proc.send_signal(signal.SIGKILL)
        killed += proc.wait() == -signal.SIGKILL
    assert killed >= 15, "most starts must really be killed for the test to mean something"
    stored_before = pq.load_sweep(out)
    assert stored_before["run_id"].is_unique
    final = subprocess.run([sys.executable, str(script), str(out), str(log), "1"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=120)
    assert final.returncode == 0, final.stderr
    assert final.stdout.split() == [str(N_RUNS), str(N_RUNS)]
    df = pq.load_sweep(out)
    assert len(df) == N_RUNS and df["run_id"].is_unique and (df["status"] == "ok").all()
    assert sorted(zip(df["a"], df["seed"])) == [(a, s) for a in range(N_RUNS // 2) for s in (0, 1)]
    assert (df["value"] == 10 * df["a"] + df["seed"]).all()
    # Killed runs in flight are recomputed, finished ones never: at most 2 per kill (n_jobs <= 2).
    ends = [line for line in log.read_text().splitlines() if line.startswith("end")]
    assert N_RUNS <= len(ends) <= N_RUNS + 2 * killed
    assert len(stored_before) <= N_RUNS
    # Nothing left behind: no part folder, no temporary files of the killed writers.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job.py", "log.txt", "res.parquet"]
    assert time.monotonic() - t0 < 120


def _runs(log):
    return [line.split()[1:3] for line in log.read_text().splitlines() if line.startswith("start")]


@pytest.mark.parametrize("suffix", ["", ".csv"])
def test_damaged_part_files_are_reported_by_name_and_recomputed(tmp_path, suffix):
    # A folder out keeps its part files (a .csv out keeps them while the sweep runs: here we
    # damage them as a crash of the machine would, before they are combined).
    log = tmp_path / "log.txt"
    out = tmp_path / "res"
    grid = {"a": [0, 1, 2, 3], "log": [str(log)]}
    if suffix:
        # Leave the parts of a .csv sweep uncombined, as after a crash of the driver.
        from pyqsgd.sweep_store import PartStore

        store = PartStore(tmp_path / f"res{suffix}")
        store.prepare()
        for job_a in grid["a"]:
            rid, df = pq.sweeps._run_job(({"a": job_a, "log": str(log)}, 0,
                                          pq.sweeps.run_id({"a": job_a, "log": str(log)}, 0),
                                          {"a": job_a, "log": str(log)}), sweep_runs.logged)
            store.write(rid, df)
        out, parts = tmp_path / f"res{suffix}", store.parts
    else:
        pq.sweep(sweep_runs.logged, grid=grid, out=out, progress=False)
        parts = out
    files = sorted(parts.iterdir())
    assert len(files) == 4 and all(f.name.count(".") == 2 for f in files)  # <run id>.<checksum>.<ext>
    flipped, truncated = files[0], files[1]
    data = bytearray(flipped.read_bytes())
    if suffix == ".csv":
        i = data.rindex(b",") + 1  # the value column of the last row: a wrong number, still valid CSV
        data[i] = ord("7") if data[i] != ord("7") else ord("8")
    else:
        data[len(data) // 2] ^= 0xFF
    flipped.write_bytes(bytes(data))
    truncated.write_bytes(truncated.read_bytes()[:-30])

    with pytest.warns(RuntimeWarning) as record:
        partial = pq.load_sweep(out)
    messages = " ".join(str(w.message) for w in record)
    assert str(flipped) in messages and str(truncated) in messages and "checksum mismatch" in messages
    assert len(partial) == 2  # the damaged runs are not read, not even partly

    n_before = len(_runs(log))
    with pytest.warns(RuntimeWarning, match="set aside as \\*.corrupt; its runs will be recomputed"):
        df = pq.sweep(sweep_runs.logged, grid=grid, out=out, progress=False)
    assert len(_runs(log)) == n_before + 2  # exactly the two damaged runs are recomputed
    assert df["a"].tolist() == [0, 1, 2, 3] and (df["value"] == 10 * df["a"]).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # damaged files were set aside: nothing to report anymore
        again = pq.load_sweep(out)
    assert len(again) == 4 and again["run_id"].is_unique


def test_truncated_combined_file_is_reported_and_recomputed(tmp_path):
    log, out = tmp_path / "log.txt", tmp_path / "res.parquet"
    grid = {"a": [0, 1, 2], "log": [str(log)]}
    pq.sweep(sweep_runs.logged, grid=grid, out=out, progress=False)
    out.write_bytes(out.read_bytes()[:-100])
    with pytest.warns(RuntimeWarning, match=f"'{out}' is damaged"):
        assert len(pq.load_sweep(out)) == 0
    with pytest.warns(RuntimeWarning, match="set aside"):
        df = pq.sweep(sweep_runs.logged, grid=grid, out=out, progress=False)
    assert len(_runs(log)) == 6 and df["value"].tolist() == [0, 10, 20]
    assert (tmp_path / "res.parquet.corrupt").is_file()  # kept for inspection, never read
    assert len(pq.load_sweep(out)) == 3
