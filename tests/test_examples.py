"""Every example script runs with --small (a fast check) and writes its figure."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pyqsgd.config import load_config

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCRIPTS = sorted(p for p in EXAMPLES.glob("*.py") if p.name != "ddp_train.py")


def quiet_env():
    # Passive OpenMP waiting: on a shared, oversubscribed machine spinning threads slow small runs
    # down many times over (results do not depend on it).
    return {**os.environ, "OMP_WAIT_POLICY": "passive", "MPLBACKEND": "Agg"}


pytestmark = pytest.mark.examples


def test_examples_exist():
    names = {p.stem for p in SCRIPTS}
    assert {"quickstart", "compressors", "error_feedback", "sign_methods", "tnqsgd", "dagc",
            "custom_compressor", "deep_learning"} <= names


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_example_runs_small(script, tmp_path):
    assert len(script.read_text().splitlines()) < 100, "examples stay short"
    if "import torch" in script.read_text():
        pytest.importorskip("torch", reason=f"{script.name} needs torch (pip install 'pyqsgd[torch]')")
    out = tmp_path / f"{script.stem}.png"
    res = subprocess.run([sys.executable, str(script), "--small", "--out", str(out)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=180, env=quiet_env())
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    assert out.is_file() and out.stat().st_size > 0


def test_example_sweep_config_is_valid(tmp_path):
    cfg = load_config(EXAMPLES / "sweep.toml", check=True)
    assert cfg["n_jobs"] == 2 and len(cfg["seeds"]) == 3
    assert cfg["out"] == EXAMPLES / "sweep.parquet"
