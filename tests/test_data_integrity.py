"""Results never lie about their data: a missing or misspelt dataset raises (no silent fallback),
results record the dataset actually used (name, n, d, content hash), and a run that diverged or
was interrupted says so in its status."""
import os
import pickle
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

import pyqsgd as pq
from pyqsgd import experiment
from pyqsgd.config import ConfigError, load_config
from pyqsgd.data import content_hash, libsvm
from pyqsgd.history import History

DATASET_COLUMNS = ["dataset", "dataset_n", "dataset_d", "dataset_hash"]


@pytest.fixture
def no_shared_data(tmp_path, monkeypatch):
    """A machine without ../shared/data: cwd and the package's parent folder lead nowhere, and
    PYQSGD_DATA names an empty folder. The problem cache is cleared (it is keyed by the spec)."""
    data = tmp_path / "data"
    data.mkdir()
    work = tmp_path / "work" / "here"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    monkeypatch.setattr(libsvm, "_REPO_ROOT", tmp_path / "work" / "checkout")
    monkeypatch.setenv("PYQSGD_DATA", str(data))
    experiment._build_problem.cache_clear()
    yield data
    experiment._build_problem.cache_clear()


def small_spec(dataset="breast_cancer", **kw):
    args = dict(n_workers=4, rounds=8, lr_factor=1.0, log_every=4)
    args.update(kw.pop("simulate", {}))
    return pq.Spec(pq.ProblemSpec("logistic", dataset, l2=1e-2, **kw), pq.methods.EF21(pq.TopK(k=3)), **args)


# ---- missing or unknown datasets ---------------------------------------------------------------

def test_missing_dataset_raises_naming_the_search_path_and_env(no_shared_data):
    assert pq.ProblemSpec().fallback is None  # no fallback unless asked for
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no warning-then-substitute either
        with pytest.raises(FileNotFoundError) as info:
            pq.ProblemSpec("logistic", "a9a.t", l2=1e-2).build()
    msg = str(info.value)
    assert "dataset 'a9a.t' not found" in msg
    for path in pq.data.libsvm_search_paths("a9a.t"):  # every path actually searched, in order
        assert str(path) in msg
    assert str(no_shared_data / "a9a.t") in msg and str(no_shared_data / "libsvm" / "a9a.t") in msg
    assert "PYQSGD_DATA" in msg and "fallback='breast_cancer'" in msg
    assert "breast_cancer, digits, synthetic" in msg  # the known names
    positions = [msg.index(str(p)) for p in pq.data.libsvm_search_paths("a9a.t")]
    assert positions == sorted(positions)


def test_missing_dataset_message_says_when_env_is_not_set(no_shared_data, monkeypatch):
    monkeypatch.delenv("PYQSGD_DATA")
    with pytest.raises(FileNotFoundError, match=r"\$PYQSGD_DATA: not set"):
        pq.ProblemSpec("logistic", "a9a.t").load_data()


def test_misspelt_name_raises_and_suggests_the_file(no_shared_data):
    (no_shared_data / "a9a.t").write_text("1 1:0.5 3:2\n-1 2:1\n1 1:1\n")
    assert pq.ProblemSpec("logistic", "a9a.t").build().n_samples == 3  # the real name works
    with pytest.raises(FileNotFoundError) as info:
        pq.ProblemSpec("logistic", "a9a").build()
    msg = str(info.value)
    assert "dataset 'a9a' not found" in msg and "Did you mean 'a9a.t'?" in msg
    assert "LIBSVM files in the folders searched: a9a.t" in msg
    with pytest.raises(FileNotFoundError, match="Did you mean 'breast_cancer'"):
        pq.ProblemSpec("logistic", "breast_cancr").build()


def test_explicit_fallback_warns_and_records_the_fallback(no_shared_data):
    requested = small_spec("a9a.t", fallback="breast_cancer")
    with pytest.warns(RuntimeWarning, match="'a9a.t' not found.*fallback 'breast_cancer'"):
        hist = requested.run(key=0)
    cancer = pq.ProblemSpec("logistic", "breast_cancer", l2=1e-2).build()
    attrs = hist.to_frame().attrs
    assert attrs["dataset"] == "breast_cancer" != "a9a.t"
    assert (attrs["dataset_n"], attrs["dataset_d"]) == (569, 31)
    assert attrs["dataset_hash"] == cancer.data_hash
    df = pq.sweep(requested, grid={"method__compressor__k": [2, 3]}, progress=False)
    assert (df["problem"].str.contains("'a9a.t'")).all()  # what was asked for ...
    assert set(df["dataset"]) == {"breast_cancer"}  # ... and what ran
    assert set(df["dataset_hash"]) == {cancer.data_hash}


def test_config_with_a_missing_dataset_names_the_key(no_shared_data, tmp_path):
    cfg = tmp_path / "sweep.toml"
    cfg.write_text(textwrap.dedent("""
        [problem]
        dataset = "a9a.t"
        [method]
        name = "EF21"
        compressor = { name = "TopK", k = 3 }
        [simulate]
        rounds = 2
    """))
    with pytest.raises(ConfigError) as info:
        load_config(cfg)
    assert "problem.dataset: ProblemSpec: dataset 'a9a.t' not found" in str(info.value)
    assert "PYQSGD_DATA" in str(info.value)
    cfg.write_text(cfg.read_text().replace('dataset = "a9a.t"', 'dataset = "a9a.t"\nfallback = "breast_cancer"'))
    with pytest.warns(RuntimeWarning, match="fallback"):
        assert load_config(cfg)["run"].problem.fallback == "breast_cancer"


def test_real_shared_file_is_recorded_by_name():
    if pq.data.find_libsvm("a9a.t") is None:
        pytest.skip("shared LIBSVM file 'a9a.t' not on this machine (../shared/data/libsvm or $PYQSGD_DATA)")
    prob = pq.ProblemSpec("logistic", "a9a.t", n_features=123).build()
    X, y = pq.data.load_libsvm(pq.data.find_libsvm("a9a.t"), n_features=123)
    assert prob.dataset_info() == {"dataset": "a9a.t", "dataset_n": 16281, "dataset_d": 124,
                                   "dataset_hash": content_hash(pq.data.append_bias(X), y)}


# ---- content hash --------------------------------------------------------------------------------

HASH_SCRIPT = """
import numpy as np, scipy.sparse as sp, pyqsgd as pq
from pyqsgd.data import content_hash
X, y = pq.data.load_bundled("breast_cancer", add_bias=True)
out = [content_hash(X, y), pq.ProblemSpec("logistic", "breast_cancer", l2=1e-2).build().data_hash,
       pq.ProblemSpec("logistic", "synthetic", n_samples=300, n_features=7).build().data_hash,
       content_hash(sp.random(50, 20, density=0.2, format="csr", random_state=np.random.RandomState(3)),
                    np.ones(50))]
"""


def test_hash_is_stable_across_processes(tmp_path):
    here = {}
    exec(compile(HASH_SCRIPT, "hash script", "exec"), here)  # noqa: S102 - the same code in this process
    for seed in ("0", "12345"):  # nothing depends on Python's per-process hash seed
        res = subprocess.run([sys.executable, "-c", HASH_SCRIPT + "print(*out)"], capture_output=True, text=True,
                             timeout=120, env={**os.environ, "PYTHONHASHSEED": seed}, cwd=tmp_path)
        assert res.returncode == 0, res.stderr[-2000:]
        assert res.stdout.split() == here["out"]
    assert here["out"][0] == here["out"][1]  # the problem hashes X (with bias) and y exactly as stored
    assert all(len(h) == 16 and int(h, 16) >= 0 for h in here["out"])


def test_hash_golden_value():
    # Fixed bytes in, fixed digest out: a change here means stored results no longer match.
    X = np.arange(6, dtype=np.float32).reshape(2, 3)
    y = np.array([1.0, -1.0], dtype=np.float32)
    assert content_hash(X, y) == content_hash(X.astype(np.float64), y)  # stored as float32 either way
    assert content_hash(X, y) == GOLDEN


GOLDEN = "9ab71847edf5bfa6"


def test_hash_differs_for_different_data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 5)).astype(np.float32)
    y = np.where(X[:, 0] > 0, 1.0, -1.0).astype(np.float32)
    base = content_hash(X, y)
    nudged = X.copy()
    nudged[7, 3] = np.nextafter(nudged[7, 3], np.float32(np.inf))  # one float32 ulp
    flipped = y.copy()
    flipped[0] = -flipped[0]
    variants = [content_hash(nudged, y), content_hash(X, flipped), content_hash(X[::-1], y[::-1]),
                content_hash(X.reshape(20, 10), y[:20]), content_hash(X), content_hash(sp.csr_matrix(X), y)]
    assert len({base, *variants}) == len(variants) + 1


def test_problem_hash_matches_content_hash_dense_and_sparse():
    rng = np.random.default_rng(1)
    X = sp.random(60, 8, density=0.3, format="csr", random_state=np.random.RandomState(1), dtype=np.float32)
    y = np.where(rng.random(60) > 0.5, 1.0, -1.0).astype(np.float32)
    sparse = pq.problems.LogisticRegression(X, y)
    dense = pq.problems.LogisticRegression(X.toarray(), y)
    assert sparse.data_hash == content_hash(X, y) and dense.data_hash == content_hash(X.toarray(), y)
    # Duplicate entries summing to the same values: the same data, the same hash.
    coo = X.tocoo()
    dup = sp.coo_matrix((np.r_[coo.data / 2, coo.data / 2], (np.r_[coo.row, coo.row], np.r_[coo.col, coo.col])),
                        shape=X.shape)
    assert content_hash(dup.tocsr(), y) == sparse.data_hash
    # l2 is not data: same hash; other labels are: another hash.
    assert pq.problems.LogisticRegression(X, y, l2=0.5).data_hash == sparse.data_hash
    assert pq.problems.LogisticRegression(X, -y).data_hash != sparse.data_hash
    ls = pq.problems.LeastSquares(X, y)
    assert ls.data_hash == sparse.data_hash  # same X, same float32 targets


def test_problem_records_name_and_survives_pickle():
    X, y = pq.data.load_bundled("breast_cancer", add_bias=True)
    prob = pq.problems.LogisticRegression(X, y, dataset="cancer+bias")
    again = pickle.loads(pickle.dumps(prob))
    assert again.dataset_info() == prob.dataset_info()
    assert prob.dataset_info()["dataset"] == "cancer+bias"
    assert pq.problems.LogisticRegression(X, y).dataset is None
    with pytest.raises(TypeError, match="dataset must be a name"):
        pq.problems.LogisticRegression(X, y, dataset=3)


# ---- results carry the dataset columns -------------------------------------------------------------

def test_history_attrs_and_sweep_rows_carry_the_dataset():
    spec = small_spec()
    hist = spec.run(key=0)
    prob = spec.build_problem()
    expected = {"dataset": "breast_cancer", "dataset_n": 569, "dataset_d": 31, "dataset_hash": prob.data_hash}
    assert {k: hist.meta[k] for k in DATASET_COLUMNS} == expected
    assert {k: hist.to_frame().attrs[k] for k in DATASET_COLUMNS} == expected
    df = pq.sweep(spec, grid={"problem__dataset": ["breast_cancer", "synthetic"]}, seeds=[0, 1], progress=False)
    assert set(DATASET_COLUMNS) <= set(df.columns)
    by = df.groupby("problem__dataset")[DATASET_COLUMNS].nunique()
    assert (by == 1).all().all()  # one dataset per run, on every row
    synth = pq.ProblemSpec("logistic", "synthetic", l2=1e-2).build()
    rows = df.groupby("problem__dataset")[DATASET_COLUMNS].first()
    assert rows.loc["breast_cancer"].tolist() == list(expected.values())
    assert rows.loc["synthetic"].tolist() == ["synthetic", synth.n_samples, synth.shape[1], synth.data_hash]


def test_sweep_rows_dataset_hash_stays_text_in_csv(tmp_path):
    out = tmp_path / "res.csv"
    pq.sweep(lambda key: {"dataset_hash": "1234567890123456", "dataset": "0"}, seeds=[0], out=out, progress=False)
    df = pq.load_sweep(out)
    assert df["dataset_hash"].iloc[0] == "1234567890123456" and df["dataset"].iloc[0] == "0"


class Quadratic:
    """A Python problem without data: f(x) = ||x||^2 / 2."""

    n_samples = 8
    dim = 3

    def loss(self, x):
        return 0.5 * float(x @ x)

    def grad(self, x, indices):
        return np.asarray(x, dtype=np.float64)


def test_python_problem_without_data_runs_with_no_hash():
    hist = pq.simulate(Quadratic(), pq.methods.DCGD(pq.Identity()), n_workers=2, rounds=5, lr=0.5, x0=np.ones(3))
    assert hist.status == "ok" and hist.loss[-1] < hist.loss[0]
    assert {k: hist.meta[k] for k in DATASET_COLUMNS} == {"dataset": None, "dataset_n": 8, "dataset_d": None,
                                                            "dataset_hash": None}
    X, y = pq.data.load_bundled("digits")
    mlp = pq.problems_py.MLPProblem(X[:200], y[:200], hidden=4)
    hist = pq.simulate(mlp, pq.methods.DCGD(pq.Identity()), n_workers=2, rounds=1, lr=0.1, x0=mlp.init(0))
    assert hist.meta["dataset_hash"] == mlp.data_hash and len(mlp.data_hash) == 16
    assert (hist.meta["dataset_n"], hist.meta["dataset_d"]) == (200, 64)


# ---- status: ok, diverged, stopped, error ----------------------------------------------------------

def test_diverged_run_has_status_in_history_and_sweep_rows():
    spec = small_spec(simulate={"lr_factor": None, "lr": 1e30})
    with pytest.warns(RuntimeWarning, match="status='diverged'"):
        hist = spec.run(key=0)
    assert hist.status == "diverged" and "non-finite" in hist.stopped
    assert hist.to_frame().attrs["status"] == "diverged" and "diverged" in repr(hist)
    with pytest.warns(RuntimeWarning, match="diverged"):
        df = pq.sweep(spec, grid={"lr": [1e30, 1e-3]}, progress=False)
    status = df.groupby("lr")["status"].agg(set)
    assert status[1e30] == {"diverged"} and status[1e-3] == {"ok"}
    assert df.loc[df.lr == 1e30, "error"].str.startswith("non-finite").all()
    assert df.loc[df.lr == 1e-3, "error"].isna().all()


class Interrupting(Quadratic):
    """Ctrl-C (KeyboardInterrupt) in the 4th round, after 3 complete rounds."""

    def __init__(self):
        self.calls = 0

    def grad(self, x, indices):
        if len(indices) < self.n_samples:  # a worker's shard, not the full-data metrics call
            self.calls += 1
            if self.calls > 6:  # 2 workers per round
                raise KeyboardInterrupt
        return super().grad(x, indices)


def interrupted_run(key):
    with pytest.warns(RuntimeWarning, match="interrupted"):
        return pq.simulate(Interrupting(), pq.methods.DCGD(pq.Identity()), n_workers=2, rounds=10, lr=0.5,
                           x0=np.ones(3), key=key)


def test_keyboard_interrupt_gives_stopped():
    hist = interrupted_run(0)
    assert hist.status == "stopped" and hist.stopped == "interrupted at round 3"
    assert hist.to_frame().attrs["status"] == "stopped" and list(hist.round) == [0, 1, 2, 3]
    df = pq.sweep(interrupted_run, seeds=[0], progress=False)
    assert set(df["status"]) == {"stopped"} and df["error"].iloc[0] == "interrupted at round 3"


def test_exception_history_has_status_error():
    class Broken(Quadratic):
        def grad(self, x, indices):
            raise ValueError("bad gradient")

    with pytest.raises(ValueError, match="bad gradient") as info:
        pq.simulate(Broken(), pq.methods.DCGD(pq.Identity()), n_workers=2, rounds=3, lr=0.5, x0=np.ones(3))
    assert info.value.history.status == "error"


def test_history_status_is_validated():
    hist = small_spec().run(key=0)
    with pytest.raises(ValueError, match="status must be one of"):
        History({c: getattr(hist, c) for c in ("round", "loss", "grad_norm_sq", "bits_up", "bits_down",
                                                   "uploads", "skipped")}, hist.x, {}, {}, status="exploded")
