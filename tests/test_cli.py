"""The ``pyqsgd`` command: demo, sweep (TOML configs and their errors), plot, bench, --help."""
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

import pyqsgd as pq
from pyqsgd.config import ConfigError, load_config


def pyqsgd_command():
    """The installed console script (as the README uses it), else ``python -m pyqsgd``."""
    script = Path(sys.executable).with_name("pyqsgd")
    if script.is_file():
        return [str(script)]
    found = shutil.which("pyqsgd")
    return [found] if found else [sys.executable, "-m", "pyqsgd"]


def cli(args, cwd, timeout=120):
    return subprocess.run(pyqsgd_command() + list(args), cwd=cwd, capture_output=True, text=True, timeout=timeout)


CONFIG = """
seeds = [0, 1]
out = "results.parquet"

[problem]
name = "logistic"
dataset = "breast_cancer"
l2 = 1e-2

[method]
name = "EF21"
compressor = { name = "TopK", k = 3 }

[simulate]
n_workers = 4
rounds = 20
lr_factor = 1.0
log_every = 5

[grid]
method__compressor__k = [2, 6]
"""


def write(tmp_path, text, name="sweep.toml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_demo_from_the_readme_command_writes_its_plot(tmp_path):
    res = cli(["demo", "--rounds", "30", "--out", "tmp.png"], cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    png = tmp_path / "tmp.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "EF21" in res.stdout and "LE-SignGD" in res.stdout
    # Seconds are plain decimals: no scientific notation outside the suboptimality column.
    first = res.stdout.split("\n\n")[0].splitlines()
    header = next(i for i, line in enumerate(first) if "seconds" in line)
    rows = [line for line in first[header + 2:] if line and not line.startswith("note:")][:7]
    assert len(rows) == 7
    for line in rows:
        seconds = line.split()[-1]
        assert "e" not in seconds and float(seconds) >= 0, line
    # signSGD-FV trails in this setting (full, equal batches): the printout says why, next to it.
    names = [line.rsplit(None, 4)[0].strip() for line in rows]
    assert names[-2:] == ["signSGD-MV", "signSGD-FV"]
    note = "\n".join(first[header + 2 + len(rows):])
    assert note.startswith("note: signSGD-FV") and "heterogeneous batch sizes" in note
    # ... and the fair setting follows: MV vs FV with heterogeneous batches, FV's learned weights.
    assert "majority vs federated vote, heterogeneous batches (2 workers at batch 56, 8 at 2)" in res.stdout
    assert "weight_large_batch" in res.stdout


def test_demo_vote_comparison_is_the_fair_setting():
    """Heterogeneous batches on dense data: FV ranks the large-batch workers higher and, over
    five seeds, ends no worse than MV (ALGORITHMS.md §4.3); its seconds are plain numbers."""
    from pyqsgd.demo import _format, vote_comparison

    X, y = pq.data.load_bundled("breast_cancer", add_bias=True)
    prob = pq.problems.LogisticRegression(X, y, l2=1e-2)
    f_star = pq.simulate(prob, pq.methods.DCGD(pq.Identity()), n_workers=1, rounds=3000,
                         lr=1.0 / prob.smoothness(), log_every=3000).loss[-1]
    votes = vote_comparison(prob, f_star, rounds=300, n_workers=10)
    assert votes.attrs["batches"] == [56, 56] + [2] * 8
    fv, mv = votes.loc["signSGD-FV"], votes.loc["signSGD-MV"]
    assert fv.weight_large_batch > fv.weight_small_batch
    assert fv.final_suboptimality <= mv.final_suboptimality
    assert fv.bits_up == mv.bits_up == 300 * 10 * prob.dim
    assert "e-" not in _format(votes).splitlines()[-1].split()[-1]
    assert vote_comparison(prob, f_star, rounds=3, n_workers=1) is None


@pytest.mark.parametrize("sub", [[], ["demo"], ["sweep"], ["plot"], ["bench"]])
def test_help_everywhere(sub):
    from pyqsgd.cli import main

    with pytest.raises(SystemExit) as exc:
        main(sub + ["--help"])
    assert exc.value.code == 0


def test_sweep_command_runs_resumes_and_plots(tmp_path):
    path = write(tmp_path, CONFIG)
    res = cli(["sweep", str(path), "--quiet", "--plot", "sweep.png"], cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    df = pd.read_parquet(tmp_path / "results.parquet")
    assert df["run_id"].nunique() == 4 and set(df["seed"]) == {0, 1}
    assert set(df["method__compressor__k"]) == {2, 6} and (df["status"] == "ok").all()
    assert (tmp_path / "sweep.png").is_file()
    # A second run finds every run done and changes nothing.
    from pyqsgd.cli import main

    assert main(["sweep", str(path), "--quiet"]) == 0
    again = pd.read_parquet(tmp_path / "results.parquet")
    pd.testing.assert_frame_equal(df, again)
    assert main(["plot", str(tmp_path / "results.parquet"), "--out", str(tmp_path / "p.pdf"), "--x", "round"]) == 0
    assert (tmp_path / "p.pdf").read_bytes()[:4] == b"%PDF"


def test_sweep_dry_run_and_overrides(tmp_path, capsys):
    from pyqsgd.cli import main

    path = write(tmp_path, CONFIG)
    assert main(["sweep", str(path), "--dry-run"]) == 0
    assert "2 grid point(s) x 2 seed(s)" in capsys.readouterr().out
    assert not (tmp_path / "results.parquet").exists()
    assert main(["sweep", str(path), "--quiet", "--out", str(tmp_path / "other.csv"), "--n-jobs", "1"]) == 0
    assert pd.read_csv(tmp_path / "other.csv")["run_id"].nunique() == 4


def test_config_schema_loads_objects_by_name(tmp_path):
    path = write(tmp_path, """
        seeds = 2
        n_jobs = 1
        [method]
        name = "DIANA"
        compressor = { name = "induced", biased = { name = "TopK", k = 3 }, unbiased = { name = "RandK", k = 3 } }
        aggregator = { name = "WeightedMean", weights = "data" }
        [simulate]
        rounds = 5
        n_workers = 3
        partition = { scheme = "dirichlet", alpha = 0.3 }
        [grid]
        method = [{ name = "EF21", compressor = { name = "chain", a = { name = "TopK", k = 4 }, b = { name = "QSGD", levels = 4 } } },
                  { name = "LESignSGD", xi = 0.5 }]
        partition__alpha = [0.1, 1.0]
    """)
    cfg = load_config(path)
    assert repr(cfg["run"].method) == "DIANA(induced(TopK(k=3), RandK(k=3)), aggregator=WeightedMean(weights='data'))"
    assert [repr(m) for m in cfg["grid"]["method"]] == ["EF21(chain(TopK(k=4), QSGD(levels=4)))", "LESignSGD(xi=0.5)"]
    assert cfg["seeds"] == [0, 1] and cfg["out"] == tmp_path / "sweep.parquet"


BAD = [
    ("top-level typo", "simulte = 3", "simulte"),
    ("unknown table key", "[problem]\nnmae = 'logistic'", "problem.nmae"),
    ("bad problem value", "[problem]\nname = 'logit'", "problem"),
    ("unknown simulate key", "[simulate]\nround = 10", "simulate.round"),
    ("bad simulate value", "[simulate]\nn_workers = 0", "n_workers"),
    ("negative rounds", "[simulate]\nrounds = -1", "rounds"),
    ("bad lr", "[simulate]\nlr = -0.5", "lr"),
    ("lr and lr_factor", "[simulate]\nlr = 0.1\nlr_factor = 1.0", "lr_factor"),
    ("unknown grid name", "[grid]\nmethod__compresor__k = [1, 2]", "grid.method__compresor__k"),
    ("bad grid value", "[grid]\nmethod__compressor__k = [3, 0]", "grid.method__compressor__k"),
    ("grid not a list", "[grid]\nlr = 0.1", "grid.lr"),
    ("bad seeds", "seeds = [-1]", "seeds"),
    ("bad out", "out = 'results.xlsx'", "out"),
]


@pytest.mark.parametrize("case,extra,key", BAD, ids=[b[0] for b in BAD])
def test_config_errors_name_the_key(tmp_path, case, extra, key):
    base = "[method]\nname = 'EF21'\ncompressor = { name = 'TopK', k = 3 }\n"
    path = write(tmp_path, (extra + "\n" + base) if not extra.startswith("[") else (base + extra))
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert key in str(exc.value) and str(path) in str(exc.value)


@pytest.mark.parametrize("method,key", [
    ("name = 'EF22'", "method.name"),
    ("name = 'EF21'\ncompressor = { name = 'TopK', kk = 3 }", "method.compressor.kk"),
    ("name = 'EF21'\ncompressor = { name = 'TopK', k = 0 }", "method.compressor"),
    ("name = 'EF21'\ncompressor = { k = 3 }", "method.compressor"),
    ("name = 'EF21'\nxi = 0.3\ncompressor = { name = 'TopK', k = 3 }", "method.xi"),
    ("name = 'TopK'\nk = 3", "method.name"),
])
def test_method_errors_name_the_key(tmp_path, method, key):
    path = write(tmp_path, "[method]\n" + method + "\n")
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(path)


def test_missing_method_and_bad_toml(tmp_path):
    with pytest.raises(ConfigError, match="method"):
        load_config(write(tmp_path, "seeds = [0]\n"))
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "seeds = [0\n"))
    with pytest.raises(ConfigError, match="no such config"):
        load_config(tmp_path / "missing.toml")


def test_sweep_command_reports_config_errors(tmp_path):
    path = write(tmp_path, CONFIG.replace("rounds = 20", "rounds = 20\nbatchsize = 4"))
    res = cli(["sweep", str(path)], cwd=tmp_path)
    assert res.returncode == 2
    assert "simulate.batchsize" in res.stderr and "Traceback" not in res.stderr


def test_bench_runs_scripts_with_the_small_flag(tmp_path, capsys):
    from pyqsgd.cli import main

    bench = tmp_path / "benchmarks"
    bench.mkdir()
    (bench / "fast.py").write_text(textwrap.dedent("""
        import argparse, sys
        ap = argparse.ArgumentParser()
        ap.add_argument("--small", action="store_true")
        ap.add_argument("--n", type=int, default=1)
        a = ap.parse_args()
        print("small" if a.small else "full", a.n)
        sys.stdout.flush()
    """))
    (bench / "broken.py").write_text("raise SystemExit(3)\n")
    assert main(["bench", "--dir", str(bench), "--list"]) == 0
    assert capsys.readouterr().out.split() == ["broken", "fast"]
    res = cli(["bench", "fast", "--dir", str(bench), "--", "--n", "7"], cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "small 7" in res.stdout
    res = cli(["bench", "fast", "--full"], cwd=tmp_path)  # finds ./benchmarks
    assert "full 1" in res.stdout
    res = cli(["bench"], cwd=tmp_path)
    assert res.returncode == 1 and "broken: FAILED (exit 3)" in res.stdout
    assert main(["bench", "nope", "--dir", str(bench)]) == 2


def test_bench_without_a_benchmarks_folder(tmp_path, monkeypatch, capsys):
    from pyqsgd.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PYQSGD_BENCHMARKS", raising=False)
    assert main(["bench"]) == 2
    assert "no benchmarks folder" in capsys.readouterr().err


def test_python_dash_m(tmp_path):
    res = subprocess.run([sys.executable, "-m", "pyqsgd", "--help"], cwd=tmp_path, capture_output=True, text=True)
    assert res.returncode == 0 and "sweep" in res.stdout
