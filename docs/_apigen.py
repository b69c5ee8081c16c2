"""Write the API reference pages from the packages' ``__all__`` lists at build time.

Every public module (no leading underscore in its dotted name) that has an ``__all__`` is
scanned. Each exported object is documented once, at its *canonical* path: the shortest
public path that exports it (``pyqsgd.TopK`` rather than ``pyqsgd.compressors.TopK``). A
module gets a page when it is a namespace users reach (``pyqsgd``, a module named in a public
``__all__``, ``pyqsgd.torch``) or when it is the canonical home of at least one name; its
page lists the names it re-exports with links to where they are documented. So a name added
to any ``__all__`` later appears in the reference without editing the docs, and
tests/test_docs.py checks that it did.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path

PACKAGE = "pyqsgd"
# Namespaces with a page even when they are not in pyqsgd.__all__: pyqsgd.torch and
# pyqsgd.problems_torch need torch, so pyqsgd does not import (or list) them.
EXTRA_NAMESPACES = ["pyqsgd.torch", "pyqsgd.problems_torch"]
# Sections of the top-level page, by the module that implements an object (prefix match);
# anything else falls under "Other".
TOP_SECTIONS = [
    ("Compressors and the wire", ["pyqsgd._core", "pyqsgd.compressors", "pyqsgd.combine", "pyqsgd.tnq",
                                  "pyqsgd.threshold", "pyqsgd.blockwise", "pyqsgd.python_stages",
                                  "pyqsgd.measure"]),
    ("Aggregators", ["pyqsgd.aggregators", "pyqsgd.votes"]),
    ("Simulation", ["pyqsgd.simulate", "pyqsgd.history", "pyqsgd.threads"]),
    ("Sweeps and experiments", ["pyqsgd.sweeps", "pyqsgd.sweep_store", "pyqsgd.sweep_executors",
                                "pyqsgd.experiment"]),
]


def public_modules() -> dict[str, object]:
    """Every importable public module of the package, by dotted name (torch-less: skipped)."""
    root = importlib.import_module(PACKAGE)
    mods = {PACKAGE: root}
    for info in pkgutil.walk_packages(root.__path__, PACKAGE + "."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        try:
            mods[info.name] = importlib.import_module(info.name)
        except ImportError:  # e.g. pyqsgd.torch without torch
            continue
    return mods


def exports(mods: dict[str, object]) -> dict[str, list[tuple[str, object]]]:
    """module name -> [(exported name, object)] in ``__all__`` order."""
    out = {}
    for name, mod in mods.items():
        names = getattr(mod, "__all__", None)
        if names is not None:
            out[name] = [(n, getattr(mod, n)) for n in names]
    return out


def _rank(path: str) -> tuple:
    mod = path.rsplit(".", 1)[0]
    return (mod.count("."), path)


def plan(mods=None):
    """Return (pages, canonical): module -> page spec, and id(obj) -> canonical dotted path."""
    mods = mods or public_modules()
    ex = exports(mods)
    canonical: dict[int, str] = {}
    for mod, items in ex.items():
        for n, obj in items:
            if inspect.ismodule(obj):
                continue
            path = f"{mod}.{n}"
            if id(obj) not in canonical or _rank(path) < _rank(canonical[id(obj)]):
                canonical[id(obj)] = path
    namespaces = [PACKAGE]
    for mod in [PACKAGE] + sorted(ex):
        for n, obj in ex.get(mod, []):
            if inspect.ismodule(obj) and obj.__name__ in mods and obj.__name__ not in namespaces:
                namespaces.append(obj.__name__)
    namespaces += [m for m in EXTRA_NAMESPACES if m in mods and m not in namespaces]
    pages = {}
    for mod in [PACKAGE] + sorted((set(namespaces) | set(ex)) - {PACKAGE}):  # the package, then A-Z
        items = ex.get(mod, [])
        own = [(n, o) for n, o in items if not inspect.ismodule(o) and canonical[id(o)] == f"{mod}.{n}"]
        if mod in namespaces or own:
            pages[mod] = {"items": items, "own": own}
    return pages, canonical


def _directive(obj) -> str:
    if inspect.isclass(obj):
        return "autoclass"
    if callable(obj) and not inspect.isclass(obj):
        return "autofunction"
    return "autodata"


def _entry(path: str, obj) -> str:
    d = _directive(obj)
    opts = "   :members:\n   :show-inheritance:\n" if d == "autoclass" else ""
    if d == "autodata":
        opts = "   :annotation:\n"  # values can be long arrays or tuples; the docstring says what they are
    return f".. {d}:: {path}\n{opts}\n"


def _role(obj) -> str:
    if inspect.ismodule(obj):
        return "mod"
    return {"autoclass": "class", "autofunction": "func", "autodata": "data"}[_directive(obj)]


def _section(title: str, char: str = "-") -> str:
    return f"{title}\n{char * len(title)}\n\n"


def render(mod: str, spec: dict, canonical: dict) -> str:
    text = _section(f"``{mod}``", "=") + f".. automodule:: {mod}\n   :no-members:\n\n"
    items, own = spec["items"], spec["own"]
    submods = [(n, o) for n, o in items if inspect.ismodule(o)]
    elsewhere = [(n, o) for n, o in items if not inspect.ismodule(o) and (n, o) not in own]
    if mod == PACKAGE:
        groups = {title: [] for title, _ in TOP_SECTIONS}
        groups["Other"] = []
        for n, o in own:
            impl = getattr(o, "__module__", "") or ""
            title = next((t for t, prefixes in TOP_SECTIONS
                          if any(impl == p or impl.startswith(p + ".") for p in prefixes)), "Other")
            groups[title].append((n, o))
        for title, members in groups.items():
            if members:
                text += _section(title) + "".join(_entry(f"{mod}.{n}", o) for n, o in members)
    elif own:
        text += _section("Reference") + "".join(_entry(f"{mod}.{n}", o) for n, o in own)
    if submods:
        text += _section("Submodules") + "".join(
            f"- :mod:`{mod}.{n}` (``{o.__name__}``)\n" if o.__name__ != f"{mod}.{n}" else f"- :mod:`{o.__name__}`\n"
            for n, o in submods) + "\n"
    if elsewhere:
        text += _section("Also exported here") + "Documented at their canonical path:\n\n" + "".join(
            f"- ``{mod}.{n}``: :{_role(o)}:`{canonical[id(o)]}`\n" for n, o in elsewhere) + "\n"
    return text


def write(outdir: Path) -> list[str]:
    """Write api/<module>.rst and api/index.rst into ``outdir``; return the page names."""
    pages, canonical = plan()
    outdir.mkdir(parents=True, exist_ok=True)
    written = set()
    for mod, spec in pages.items():
        _write_if_changed(outdir / f"{mod}.rst", render(mod, spec, canonical))
        written.add(f"{mod}.rst")
    index = (_section("API reference", "=")
             + "Generated from the ``__all__`` of every public module when the docs are built. "
               "Each object is documented once, at its shortest public path; a module page lists "
               "what it re-exports with links.\n\n"
             + ".. toctree::\n   :maxdepth: 1\n\n" + "".join(f"   {mod}\n" for mod in pages))
    _write_if_changed(outdir / "index.rst", index)
    written.add("index.rst")
    for stale in outdir.glob("*.rst"):
        if stale.name not in written:
            stale.unlink()
    return list(pages)


def _write_if_changed(path: Path, text: str) -> None:
    # Unchanged files keep their mtime, so an incremental build re-reads only what changed.
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
