"""Runs every fuzz target and prints, per target, inputs tried and coverage reached.

    python fuzz/run.py --minutes 30          # long local run: the budget split over the targets
    python fuzz/run.py --runs 2500           # bounded run (the CI smoke, .ci/fuzz.sh)
    python fuzz/run.py --minutes 2 QSGD-4    # some targets only

Each target runs in its own libFuzzer process (fuzz_one.py) on a corpus seeded from valid
messages (make_corpus.py; kept between runs, so a long run builds on the previous one). A
crash, an uncaught exception other than ValueError, a broken contract, a hang (-timeout), or a
single allocation above --malloc-mb (a multi-GB buffer for a tiny input) fails the target and
leaves its input in fuzz/artifacts/. With the sanitized _core installed (PYQSGD_SANITIZE=ON)
the targets run under ASan + UBSan (libasan is preloaded automatically). Exit status 1 if any
target failed.
"""
from __future__ import annotations

import argparse
import glob
import importlib.util
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

# Nothing here imports pyqsgd: a sanitized _core aborts unless libasan was preloaded, so
# anything that needs pyqsgd runs in a subprocess with environment().
HERE = os.path.dirname(os.path.abspath(__file__))


def sanitized_core():
    """True if the installed pyqsgd._core links libasan (found without importing it: an ASan
    library refuses to load unless the runtime was preloaded)."""
    spec = importlib.util.find_spec("pyqsgd")
    folder = os.path.dirname(spec.origin) if spec and spec.origin else ""
    return any(b"libasan.so" in open(p, "rb").read() for p in glob.glob(os.path.join(folder, "_core*.so")))


def environment():
    env = dict(os.environ)
    if sanitized_core():
        # atheris's libFuzzer comes before libasan: libasan also defines the coverage callbacks
        # (as no-ops), and whichever library comes first serves them; fuzz_one.py then makes
        # atheris use that same copy (internal_libfuzzer=True). ASan then is not first in the
        # list, which it tolerates with verify_asan_link_order=0 (atheris's libFuzzer defines
        # no allocation functions, so ASan still intercepts every malloc). libstdc++: see
        # .ci/sanitize.sh (ASan's __cxa_throw interceptor).
        gcc = [subprocess.run(["gcc", f"-print-file-name={lib}"], capture_output=True, text=True).stdout.strip()
               for lib in ("libasan.so", "libstdc++.so")]
        fuzzer = glob.glob(os.path.join(os.path.dirname(importlib.util.find_spec("atheris").origin),
                                        "core_with_libfuzzer*.so"))
        env["LD_PRELOAD"] = " ".join(fuzzer + gcc)
        env["PYTHONMALLOC"] = "malloc"  # a small wire buffer gets its own block: over-reads caught
        env["ASAN_OPTIONS"] = "detect_leaks=0:halt_on_error=1:abort_on_error=1:verify_asan_link_order=0"
        env["UBSAN_OPTIONS"] = "halt_on_error=1:abort_on_error=1:print_stacktrace=1"
    env.setdefault("OMP_NUM_THREADS", "1")  # one core per target process
    return env


def parse(log):
    """Figures from libFuzzer's output: executed inputs, final cov / ft / corpus size."""
    runs = re.findall(r"stat::number_of_executed_units:\s*(\d+)", log)
    status = re.findall(r"#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)", log)
    last = status[-1] if status else ("0", "0", "0", "0")
    return {"inputs": int(runs[-1]) if runs else int(last[0]), "cov": int(last[1]), "ft": int(last[2]),
            "corpus": int(last[3])}


def seed_corpora(names, args, env):
    """Writes the seed corpus of every target that has none, in one process: a start of Python
    and pyqsgd under ASan costs seconds, so once for all targets rather than once per target."""
    missing = [n for n in names if not os.path.isdir(os.path.join(args.corpus, n))
               or not os.listdir(os.path.join(args.corpus, n))]
    if missing:
        subprocess.run([sys.executable, os.path.join(HERE, "make_corpus.py"), "--out", args.corpus] + missing,
                       env=env, check=True)


def run_target(name, args, env):
    corpus = os.path.join(args.corpus, name)
    artifacts = os.path.join(HERE, "artifacts")
    os.makedirs(artifacts, exist_ok=True)
    flags = [f"-timeout={args.timeout}", f"-rss_limit_mb={args.rss_mb}", f"-malloc_limit_mb={args.malloc_mb}",
             # use_value_profile: comparison operands become features, the native decoders'
             # feedback (CMakeLists.txt: trace-cmp in the sanitized build).
             "-max_len=4096", "-use_value_profile=1", "-detect_leaks=0", "-print_final_stats=1", f"-artifact_prefix={artifacts}/{name}-"]
    flags.append(f"-runs={args.runs}" if args.runs else f"-max_total_time={args.seconds}")
    start = time.time()
    proc = subprocess.run([sys.executable, os.path.join(HERE, "fuzz_one.py"), name, corpus] + flags, env=env,
                          capture_output=True, text=True, cwd=HERE)
    log = proc.stdout + proc.stderr
    with open(os.path.join(artifacts, f"{name}.log"), "w") as f:
        f.write(log)
    return dict(parse(log), name=name, status=proc.returncode, seconds=time.time() - start, log=log)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("targets", nargs="*", help="target names (default: all; see fuzz/targets.py)")
    ap.add_argument("--minutes", type=float, default=None, help="total time budget, split over the targets")
    ap.add_argument("--runs", type=int, default=None, help="inputs per target instead of a time budget")
    ap.add_argument("--jobs", type=int, default=1, help="targets fuzzed at the same time")
    ap.add_argument("--timeout", type=int, default=10, help="seconds for one input before it counts as a hang")
    ap.add_argument("--malloc-mb", type=int, default=512, help="largest single allocation allowed")
    ap.add_argument("--rss-mb", type=int, default=3072, help="largest resident size allowed")
    ap.add_argument("--corpus", default=os.path.join(HERE, "corpus"))
    args = ap.parse_args(argv)
    env = environment()
    names = args.targets or subprocess.run([sys.executable, os.path.join(HERE, "targets.py")], env=env, check=True,
                                           capture_output=True, text=True).stdout.split()
    if not args.runs:
        args.seconds = max(5, int(60 * (args.minutes or 30) * args.jobs / len(names)))
    print(f"fuzzing {len(names)} targets, {'ASan+UBSan' if 'LD_PRELOAD' in env else 'no sanitizers'}, "
          + (f"{args.runs} inputs each" if args.runs else f"{args.seconds} s each"), flush=True)
    seed_corpora(names, args, env)
    with ThreadPoolExecutor(args.jobs) as pool:
        results = []
        for r in pool.map(lambda n: run_target(n, args, env), names):
            print(f"{r['name']:28s} {'ok' if r['status'] == 0 else 'FAILED':6s} inputs {r['inputs']:>9,} "
                  f"cov {r['cov']:>5} ft {r['ft']:>6} corpus {r['corpus']:>5}  {r['seconds']:6.1f} s", flush=True)
            results.append(r)
    failed = [r for r in results if r["status"] != 0]
    for r in failed:
        print(f"\n==== {r['name']} failed (status {r['status']}), log fuzz/artifacts/{r['name']}.log:\n"
              + r["log"][-3000:])
    print(f"total: {sum(r['inputs'] for r in results):,} inputs over {len(results)} targets, "
          f"{len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
