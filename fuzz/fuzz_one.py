"""Runs one fuzz target under atheris/libFuzzer: python fuzz/fuzz_one.py TARGET [libFuzzer flags].

Coverage: atheris instruments pyqsgd's Python modules (the wrappers, combinators and the
Python-defined compressor protocol), which is what libFuzzer's cov:/ft: counts. The native
decoders are not coverage-instrumented (GCC has no -fsanitize=fuzzer-no-link); they run under
ASan + UBSan when the sanitized build is installed and libasan preloaded (fuzz/run.py does it).
"""
import sys

import atheris
import numpy  # noqa: F401  (imported before instrumentation: only pyqsgd is instrumented)

# Instrumented: the modules on the decode path (wrappers, combinators, the Python-compressor
# protocol, reseal) and the harness itself; the rest of pyqsgd only costs start-up time.
DECODE_PATH = ["pyqsgd.compressors", "pyqsgd.combine", "pyqsgd.python_stages", "pyqsgd.tnq", "pyqsgd.threshold",
               "pyqsgd._validate", "pyqsgd.reference._wire", "python_stages_lib", "targets"]

with atheris.instrument_imports(include=DECODE_PATH):
    import pyqsgd  # noqa: F401

    import targets

    targets.compressors()  # imports the registry and the tests' Python compressors, instrumented


def main():
    name = sys.argv[1]
    one_input = targets.target(name)
    # internal_libfuzzer: the libFuzzer inside atheris, also when run.py preloaded it (atheris
    # would otherwise look for a libFuzzer linked into Python itself).
    atheris.Setup([sys.argv[0]] + sys.argv[2:], one_input, internal_libfuzzer=True)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
