"""Sphinx configuration for the pyqsgd documentation.

Build (from the repository root, pyqsgd installed, ``pip install ".[docs]"``)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

At build time this file (1) writes the API reference pages from the ``__all__`` lists
(docs/_apigen.py, into docs/api/), and (2) copies notebooks/*.ipynb into docs/notebooks/ so
myst-nb executes and renders the committed notebooks (both folders are build products, ignored
by git). Nothing is fetched from the network.
"""
import importlib
import os
import shutil
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS))
# `python -m sphinx` run from the repository root puts the root first on sys.path, where the
# source folder pyqsgd/ (no compiled _core) would shadow the installed package: drop it. An
# editable install is found through its own import hook, which this does not touch.
sys.path[:] = [p for p in sys.path if Path(p or os.getcwd()).resolve() != ROOT]

import _apigen  # noqa: E402

import pyqsgd  # noqa: E402  (the installed package)

# -- environment of the executed notebooks (inherited by the kernels) -------------------------
# Passive OpenMP waiting on shared CI cores, and the shared LIBSVM files when the checkout sits
# next to them (as in tests/test_notebooks.py); without them the notebooks use bundled data.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")
_shared = ROOT.parent / "shared" / "data" / "libsvm"
if _shared.is_dir():
    os.environ.setdefault("PYQSGD_DATA", str(_shared))

# -- generated sources ------------------------------------------------------------------------
_apigen.write(DOCS / "api")
_nbdir = DOCS / "notebooks"
_nbdir.mkdir(exist_ok=True)
_notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
for _src in _notebooks:
    _dst = _nbdir / _src.name
    if not _dst.exists() or _dst.read_bytes() != _src.read_bytes():
        shutil.copy2(_src, _dst)
for _old in _nbdir.glob("*.ipynb"):
    if not (ROOT / "notebooks" / _old.name).exists():
        _old.unlink()

# -- project ----------------------------------------------------------------------------------
project = "pyqsgd"
author = "the pyqsgd authors"
copyright = "the pyqsgd authors, MIT License"
release = pyqsgd.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "myst_nb",
]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "**.ipynb_checkpoints", "Thumbs.db", ".DS_Store"]
root_doc = "index"

# Docstrings are NumPy style (napoleon reads them leniently: plain-text formulas stay text).
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # signatures as written; types are in the Parameters sections
autodoc_default_options = {"exclude-members": "__init__, __new__"}
add_module_names = False


def _drop_foreign_inherited_docs(app, what, name, obj, options, lines):
    """A method without a docstring of its own inherits its base's; when that base is not
    pyqsgd's (``concurrent.futures.Executor.submit``, ...) the text is neither about pyqsgd nor
    written as reStructuredText, so leave it out."""
    if what not in ("method", "attribute", "property"):
        return
    func = getattr(obj, "fget", None) or getattr(obj, "__func__", obj)
    if getattr(func, "__doc__", None) is not None:  # documented where it is defined
        return
    cls_path, _, member = name.rpartition(".")
    mod_name, _, cls_name = cls_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(mod_name), cls_name)
    except (ImportError, AttributeError, ValueError):
        return
    for base in cls.__mro__:
        if member in vars(base) and getattr(vars(base)[member], "__doc__", None):
            if not (base.__module__ or "").startswith("pyqsgd"):
                lines[:] = []
            return


def setup(app):
    app.connect("autodoc-process-docstring", _drop_foreign_inherited_docs)


# Cross-references resolve inside this site only (no intersphinx: builds run without network).
default_role = "code"

# -- MyST / myst-nb ---------------------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3
nb_execution_mode = "force"           # every build runs every notebook: the site shows today's outputs
nb_execution_timeout = 600            # per cell
nb_execution_raise_on_error = True    # a failing cell fails the build
nb_execution_in_temp = True           # files a notebook writes go to a temporary folder
nb_merge_streams = True
nb_execution_show_tb = True

# -- HTML -------------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"pyqsgd {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "navbar_align": "left",
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_static_path = []
html_last_updated_fmt = None
