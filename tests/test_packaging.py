"""Packaging: ``python -m build`` makes an sdist and a wheel from this checkout; the wheel installs
in a fresh virtual environment (dependencies from the package registry, nothing borrowed from
this environment) and runs the README quickstart there.

Slow: it compiles the extension from the sdist in an isolated build environment (minutes). Every
step has a time limit; on a timeout the whole process group of that step is killed. Everything
is built and installed in one temporary folder, removed at the end.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

pytestmark = pytest.mark.slow

# Limits per step, generous for a 2-core machine (the build is ~3 min there).
BUILD_TIMEOUT = 1800
INSTALL_TIMEOUT = 900
RUN_TIMEOUT = 300


def _run(cmd, timeout, cwd, env):
    """Runs ``cmd`` in its own process group; returns its output, fails the test with the tail of
    the output on a non-zero exit or after ``timeout`` seconds (killing the group)."""
    with subprocess.Popen([str(c) for c in cmd], cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, start_new_session=True) as proc:
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # build tools run as grandchildren: end them all
            out, _ = proc.communicate()
            pytest.fail(f"{' '.join(map(str, cmd))} took longer than {timeout} s; last output:\n{out[-4000:]}")
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(map(str, cmd))} exited with {proc.returncode}; last output:\n{out[-4000:]}")
    return out


def _clean_env():
    """This environment minus whatever would let the fresh venv see this one's packages."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PYTHONNOUSERSITE"] = "1"
    return env


@pytest.fixture
def workdir():
    path = Path(tempfile.mkdtemp(prefix="pyqsgd-packaging-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.mark.skipif(not (ROOT / "pyproject.toml").is_file() or not README.is_file(),
                    reason="needs the source checkout (pyproject.toml and README.md beside tests/)")
def test_build_sdist_and_wheel_then_readme_quickstart_in_a_fresh_venv(workdir):
    pytest.importorskip("build", reason="the `build` package is not installed (pip install build, or the [test] "
                                        "extra) so `python -m build` cannot be tested")
    env = _clean_env()
    dist = workdir / "dist"
    # sdist first, then the wheel built from that sdist in an isolated environment: what a user
    # building from PyPI gets, and a check that the sdist carries everything the build needs.
    _run([sys.executable, "-m", "build", "--outdir", dist, ROOT], BUILD_TIMEOUT, cwd=workdir, env=env)
    sdists, wheels = sorted(dist.glob("pyqsgd-*.tar.gz")), sorted(dist.glob("pyqsgd-*.whl"))
    assert len(sdists) == 1 and len(wheels) == 1, sorted(p.name for p in dist.iterdir())

    with tarfile.open(sdists[0]) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    assert {"LICENSE", "README.md", "pyproject.toml", "CMakeLists.txt", "pyqsgd/py.typed"} <= names
    assert any(n.startswith("cpp/") for n in names)
    assert not any(n.startswith(("build/", ".git/")) for n in names)

    with zipfile.ZipFile(wheels[0]) as whl:
        names = set(whl.namelist())
        entry_points = next((whl.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt")), "")
    assert "pyqsgd/py.typed" in names and "pyqsgd/__init__.py" in names
    assert any(re.fullmatch(r"pyqsgd/_core\..*(so|pyd)", n) for n in names)
    assert any(n.endswith("LICENSE") and ".dist-info/" in n for n in names)
    assert "pyqsgd = pyqsgd.cli:main" in entry_points

    venv = workdir / "venv"
    _run([sys.executable, "-m", "venv", venv], RUN_TIMEOUT, cwd=workdir, env=env)
    python = venv / ("Scripts" if os.name == "nt" else "bin") / "python"
    _run([python, "-m", "pip", "install", wheels[0]], INSTALL_TIMEOUT, cwd=workdir, env=env)

    quickstart = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)[0]
    script = workdir / "quickstart.py"
    script.write_text("import pyqsgd, sys\nprint('FROM', pyqsgd.__file__)\n" + quickstart)
    out = _run([python, script], RUN_TIMEOUT, cwd=workdir, env=env)  # cwd outside the checkout
    assert f"FROM {venv}" in out, out
    assert "Properties(unbiased=True" in out and out.count("bits_up=") == 3, out
    help_text = _run([python.parent / "pyqsgd", "--help"], RUN_TIMEOUT, cwd=workdir, env=env)
    assert "demo" in help_text and "sweep" in help_text
