"""Checks of the built documentation site (docs/, built by `.ci/docs.sh`).

The site is built by ``python -m sphinx -W --keep-going -b html docs docs/_build/html``; these
tests read the result, in ``$PYQSGD_DOCS_BUILD`` or docs/_build/html. They skip when the site is
not built (the main test stage does not build it), unless ``PYQSGD_DOCS_REQUIRE=1`` (set by
`.ci/docs.sh`), which turns every skip into a failure.

- every name in the ``__all__`` of every public module is documented in the API reference;
- every local link and anchor of the built HTML resolves (no network: external links are
  not followed);
- no page carries a docutils error, a notebook traceback or a stderr cell;
- headless Chromium renders the index page and a reference page with their navigation, and
  saves screenshots in docs/_build/screenshots/ (beside the html folder).
"""
import html.parser
import importlib
import inspect
import os
import pkgutil
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUILD = Path(os.environ.get("PYQSGD_DOCS_BUILD", ROOT / "docs" / "_build" / "html")).resolve()
REQUIRE = os.environ.get("PYQSGD_DOCS_REQUIRE") == "1"
SCREENSHOTS = BUILD.parent / "screenshots"
REFERENCE_PAGE = "api/pyqsgd.methods.html"


def _skip(reason):
    if REQUIRE:
        pytest.fail(f"PYQSGD_DOCS_REQUIRE=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def site():
    if importlib.util.find_spec("sphinx") is None:
        _skip("sphinx is not installed (pip install '.[docs]')")
    if not (BUILD / "index.html").is_file():
        _skip(f"the docs are not built in {BUILD} (python -m sphinx -W -b html docs docs/_build/html)")
    return BUILD


class _Page(html.parser.HTMLParser):
    """Collects ids (anchors) and local link targets of one HTML page."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids, self.links = set(), []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("id", "name") if tag == "a" else ("id",):
            if a.get(key):
                self.ids.add(a[key])
        for key in ("href", "src"):
            if a.get(key):
                self.links.append(a[key])


def _parse(path):
    p = _Page()
    p.feed(path.read_text(encoding="utf-8"))
    return p


def public_exports():
    """(module name, exported name, object) for every public module's ``__all__``: every module
    under pyqsgd whose dotted name has no part starting with an underscore."""
    import pyqsgd

    mods = {"pyqsgd": pyqsgd}
    for info in pkgutil.walk_packages(pyqsgd.__path__, "pyqsgd."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        try:
            mods[info.name] = importlib.import_module(info.name)
        except ImportError:  # pyqsgd.torch without torch: neither the site nor this list has it
            if REQUIRE or not info.name.startswith("pyqsgd.torch"):
                raise
    return [(m, n, getattr(mod, n)) for m, mod in mods.items() for n in getattr(mod, "__all__", [])]


def _resolve(dotted):
    """The object a documented id names, by attribute access from the package (``pyqsgd.simulate``
    is the function, not the module it is defined in), importing submodules where needed."""
    parts = dotted.split(".")
    obj = importlib.import_module(parts[0])
    for i, attr in enumerate(parts[1:], start=1):
        if hasattr(obj, attr):
            obj = getattr(obj, attr)
            continue
        try:
            obj = importlib.import_module(".".join(parts[: i + 1]))
        except ImportError:
            return None
    return obj


def test_every_public_name_is_in_the_reference(site):
    ids = set()
    for page in (site / "api").glob("*.html"):
        ids |= _parse(page).ids
    documented = {id(_resolve(i)) for i in ids if i.startswith("pyqsgd.")}
    modules = {i[len("module-"):] for i in ids if i.startswith("module-")}
    missing = []
    for mod, name, obj in public_exports():
        if inspect.ismodule(obj):
            ok = obj.__name__ in modules
        else:
            ok = f"{mod}.{name}" in ids or id(obj) in documented
        if not ok:
            missing.append(f"{mod}.{name}")
    assert not missing, f"public names missing from the API reference (docs/_build/html/api): {missing}"


def test_every_module_with_exports_has_a_page_or_is_covered(site):
    # A module page is what :mod: links to; every namespace listed in pyqsgd.__all__ has one.
    import pyqsgd

    for name in pyqsgd.__all__:
        obj = getattr(pyqsgd, name)
        if inspect.ismodule(obj):
            assert (site / "api" / f"{obj.__name__}.html").is_file(), obj.__name__


def test_internal_links_resolve(site):
    # _static holds the theme's assets (including unrendered template fragments), not pages.
    pages = {p: _parse(p) for p in site.rglob("*.html") if "_static" not in p.relative_to(site).parts}
    broken = []
    for page, parsed in pages.items():
        for link in parsed.links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or link.startswith(("mailto:", "javascript:", "data:")):
                continue  # external: not checked (no network)
            target = page if not parts.path else (page.parent / unquote(parts.path)).resolve()
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{page.relative_to(site)}: {link} (no such file)")
                continue
            if parts.fragment and target.suffix == ".html":
                if target not in pages:
                    pages[target] = _parse(target)
                if unquote(parts.fragment) not in pages[target].ids:
                    broken.append(f"{page.relative_to(site)}: {link} (no such anchor)")
    assert not broken, "broken internal links:\n" + "\n".join(broken[:50])


ERROR_MARKERS = [
    ('class="system-message"', "a docutils error or warning rendered into the page"),
    ('class="problematic"', "an unresolved reference rendered as problematic"),
    ("output traceback", "a notebook cell that raised"),
    ("output stderr", "a notebook cell that wrote to stderr (a warning)"),
]


def test_no_error_text_in_pages(site):
    bad = []
    for page in site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        for marker, what in ERROR_MARKERS:
            if marker in text:
                bad.append(f"{page.relative_to(site)}: {what}")
    assert not bad, "\n".join(bad)


def test_notebooks_are_rendered_with_outputs(site):
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert notebooks
    for nb in notebooks:
        page = site / "notebooks" / f"{nb.stem}.html"
        assert page.is_file(), f"{nb.name} is not in the site"
        text = page.read_text(encoding="utf-8")
        assert "cell_output" in text, f"{nb.name}: rendered without outputs (not executed?)"
    assert list((site / "_images").glob("*.png")), "no notebook figure in the site"


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    _skip("headless Chromium is not installed (apt-get install chromium)")


def _run_chromium(*args):
    base = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--hide-scrollbars", "--no-first-run", "--user-data-dir=" + str(SCREENSHOTS / ".profile")]
    return subprocess.run(base + list(args), capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("page", ["index.html", REFERENCE_PAGE])
def test_page_renders_in_chromium(site, page):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    url = (site / page).as_uri()
    dom = _run_chromium("--virtual-time-budget=5000", "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html_text = dom.stdout
    # The theme's navigation: the top bar and the left section navigation with the site's sections.
    assert 'class="bd-header' in html_text and "navbar" in html_text, "no top navigation bar"
    assert "bd-docs-nav" in html_text or "bd-sidebar-primary" in html_text, "no sidebar navigation"
    for section in ("Getting started", "Concepts", "Guides", "API reference"):
        assert section in html_text, f"navigation lacks {section!r}"
    assert '<main' in html_text and "bd-article" in html_text, "no article body"
    body = re.sub(r"<script.*?</script>|<style.*?</style>", "", html_text, flags=re.S)
    text = re.sub(r"<[^>]+>", " ", body)
    for marker in ("Traceback (most recent call last)", "system-message", "Page not found"):
        assert marker not in text, f"{page}: {marker!r} in the rendered page"
    if page == REFERENCE_PAGE:
        assert 'id="pyqsgd.methods.EF21"' in html_text, "reference page lacks the EF21 entry"
    shot = SCREENSHOTS / (page.replace("/", "_").replace(".html", ".png"))
    res = _run_chromium(f"--screenshot={shot}", "--window-size=1400,1000", "--virtual-time-budget=5000", url)
    assert res.returncode == 0 and shot.is_file() and shot.stat().st_size > 10_000, res.stderr[-2000:]
