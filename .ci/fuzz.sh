#!/usr/bin/env bash
# CI stage: fuzz smoke. Every target of fuzz/ (Message.from_bytes and decompress of every
# compressor, built-in and Python-defined) for a bounded number of inputs, >= 100,000 in total,
# under ASan + UBSan. A crash, a sanitizer report, an exception other than ValueError, a hang
# (-timeout) or a large allocation (-malloc_limit_mb) fails the stage.
# Usage, from the repository root: bash .ci/fuzz.sh   (after or without .ci/sanitize.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-/tmp/pyqsgd-asan}
RUNS=${FUZZ_RUNS:-2400}  # per target; 43 targets -> ~103,000 inputs
start=$(date +%s)

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
. "$VENV/bin/activate"
# Same install as .ci/sanitize.sh: reuses build/asan, so after that stage this is a no-op build.
pip install -q scikit-build-core pybind11 cmeel-eigen ninja cmake pytest hypothesis atheris
pip install -q --no-build-isolation . -Ccmake.define.PYQSGD_SANITIZE=ON -Cbuild-dir=build/asan
# A fresh corpus from valid messages of this build (nothing from an earlier run is reused).
rm -rf fuzz/corpus fuzz/artifacts
python fuzz/run.py --runs "$RUNS" --jobs 2
echo "fuzz smoke: $(($(date +%s) - start)) s"
