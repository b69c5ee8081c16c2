#!/usr/bin/env bash
# CI stage: build the documentation site and check it. Run from the repository root of a clone,
# with pyqsgd (and torch, for pyqsgd.torch's reference page) already installed in the active
# Python environment by the main stage. Installs the docs requirements and Debian's chromium.
#   1. sphinx -W: any warning (broken cross-reference, docstring that does not parse, notebook
#      cell that raises) fails the build; the notebooks execute during the build;
#   2. tests/test_docs.py on the built site: every public name in the reference, internal links
#      and anchors, no error text, headless-Chromium render + screenshots (docs/_build/screenshots).
set -euo pipefail
cd "$(dirname "$0")/.."

# The [docs] extra's requirements, read from pyproject.toml: `pip install ".[docs]"` would rebuild
# the C++ extension the main stage already built and installed.
python - <<'PY' > /tmp/pyqsgd-docs-requirements.txt
try:
    import tomllib
except ImportError:  # Python < 3.11: tomli is a dependency of pyqsgd there
    import tomli as tomllib
with open("pyproject.toml", "rb") as f:
    print("\n".join(tomllib.load(f)["project"]["optional-dependencies"]["docs"]))
PY
python -m pip install --quiet -r /tmp/pyqsgd-docs-requirements.txt

if ! command -v chromium >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq chromium >/dev/null
fi

rm -rf docs/_build
start=$(date +%s)
python -m sphinx -W --keep-going -b html docs docs/_build/html
echo "docs: built in $(( $(date +%s) - start )) s"

PYQSGD_DOCS_BUILD="$PWD/docs/_build/html" PYQSGD_DOCS_REQUIRE=1 python -m pytest -q -p no:cacheprovider tests/test_docs.py
