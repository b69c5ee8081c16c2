"""Every notebook in notebooks/ executes headless without error (nbclient, per-cell timeout).

The kernel is this interpreter (a kernel spec written to a temporary folder), so the notebooks
import the same installed pyqsgd as the tests, whatever kernels Jupyter has registered.
"""
import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SHARED_DATA = ROOT.parent / "shared" / "data" / "libsvm"
CELL_TIMEOUT = 240

pytestmark = pytest.mark.notebooks


@pytest.fixture(scope="module")
def kernel_manager_factory(tmp_path_factory):
    from ipykernel.kernelspec import write_kernel_spec
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    kernels = tmp_path_factory.mktemp("kernels")
    write_kernel_spec(kernels / "pyqsgd-test")  # argv: this sys.executable -m ipykernel_launcher
    ksm = KernelSpecManager(kernel_dirs=[str(kernels)])
    return lambda: KernelManager(kernel_name="pyqsgd-test", kernel_spec_manager=ksm)


def test_notebooks_exist():
    names = {p.stem for p in NOTEBOOKS}
    assert {"01_quickstart", "02_compressors", "03_error_feedback", "04_sign_methods", "05_tnqsgd",
            "06_dagc", "07_custom_compressor", "08_deep_learning"} <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{path.name}: clear outputs before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, kernel_manager_factory, monkeypatch, tmp_path):
    # The kernel inherits this environment: passive OpenMP waiting (shared, oversubscribed CI
    # cores), and the shared LIBSVM files when this checkout sits next to them.
    monkeypatch.setenv("OMP_WAIT_POLICY", "passive")
    if "import torch" in path.read_text():
        pytest.importorskip("torch", reason=f"{path.name} needs torch (pip install 'pyqsgd[torch]')")
    if SHARED_DATA.is_dir() and "PYQSGD_DATA" not in os.environ:
        monkeypatch.setenv("PYQSGD_DATA", str(SHARED_DATA))
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, km=kernel_manager_factory(), timeout=CELL_TIMEOUT,
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, naming the cell, on the first failure
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.get("output_type") == "error"]
    assert not errors
