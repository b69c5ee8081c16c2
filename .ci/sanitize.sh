#!/usr/bin/env bash
# CI stage: build _core with ASan + UBSan (CMake option PYQSGD_SANITIZE) in its own venv and
# run the compressor, wire, simulation, sign-method and sweep tests under it. Any sanitizer
# report aborts the Python process, so pytest (and this script) exits nonzero.
# Usage, from the repository root: bash .ci/sanitize.sh   (VENV=... to put the venv elsewhere)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-/tmp/pyqsgd-asan}
start=$(date +%s)

# A venv of its own: the sanitized _core must never shadow the optimised one in another venv.
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
. "$VENV/bin/activate"
# Build requirements installed up front, so --no-build-isolation can reuse build/asan between
# local runs (only changed C++ files recompile); no torch: none of the selected tests needs it.
pip install -q scikit-build-core pybind11 cmeel-eigen ninja cmake pytest hypothesis
pip install -q --no-build-isolation . -Ccmake.define.PYQSGD_SANITIZE=ON -Cbuild-dir=build/asan
built=$(date +%s)
echo "sanitize: build $((built - start)) s"

# The interpreter is not instrumented, so the ASan runtime must be loaded first (LD_PRELOAD);
# libubsan comes in with _core. libstdc++ is preloaded too: ASan looks up the real __cxa_throw
# when it starts, and without libstdc++ loaded by then the first C++ exception aborts it.
# PYTHONMALLOC=malloc: bytes and arrays get their own malloc block instead of a pymalloc arena
# slot, so an over-read of a small wire buffer is caught.
# detect_leaks=0: CPython keeps its interned objects until exit by design (not our leaks).
# abort_on_error=1 + halt_on_error=1: the first report kills the process with SIGABRT.
export LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libstdc++.so)"
export PYTHONMALLOC=malloc
export ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:abort_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1
# Check the wiring before the real run: a deliberate heap over-read must kill the process.
python .ci/sanitize_canary.py

# The selection: compressors (incl. wire and integrity), simulation, sign methods,
# sweeps, plus the fuzz harness on its seeds. -p no:cacheprovider: nothing written into the clone.
pytest -q -p no:cacheprovider -m "not (slow or notebooks or examples)" \
  tests/compressors tests/test_sim_*.py tests/test_sign_methods.py tests/test_sweep.py tests/test_streaming_state.py \
  tests/test_fuzz_targets.py
echo "sanitize: build $((built - start)) s, tests $(($(date +%s) - built)) s"
