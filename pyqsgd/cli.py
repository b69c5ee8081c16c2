"""The ``pyqsgd`` command line: ``demo``, ``sweep CONFIG.toml``, ``plot RESULTS``, ``bench``."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["main", "build_parser", "find_benchmarks"]

# Benchmark scripts that predate the ``--small`` convention: the arguments of a quick run.
_SMALL_ARGS = {
    "compressors": ["--d", "65536", "--repeats", "1"],
    "tnq_error": ["--d", "8192", "--trials", "1"],
    "simulate": ["--quick"],
}


def _int_in(low, high=None, extra=()):
    """An argparse ``type`` for an int in [low, high] (or one of ``extra``): a bad value is a usage
    error naming the option (exit status 2), not a traceback from deep inside the run."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
        if value not in extra and (value < low or (high is not None and value > high)):
            bound = f">= {low}" if high is None else f"in [{low}, {high}]"
            alt = "".join(f" or {e}" for e in extra)
            raise argparse.ArgumentTypeError(f"must be an int {bound}{alt}, got {value}")
        return value
    parse.__name__ = "int"
    return parse


def _demo(args):
    from .demo import run_demo

    try:
        run_demo(rounds=args.rounds, n_workers=args.workers, out=args.out, key=args.key)
    except ValueError as e:  # e.g. more --workers than samples, a figure format matplotlib lacks
        print(f"pyqsgd demo: error: {e}", file=sys.stderr)
        return 2
    return 0


def _sweep(args):
    from .config import ConfigError, load_config
    from .sweeps import sweep

    try:
        cfg = load_config(args.config, check=True)
    except ConfigError as e:
        print(f"pyqsgd sweep: error: {e}", file=sys.stderr)
        return 2
    if args.out:
        if Path(args.out).suffix and Path(args.out).suffix.lower() not in (".parquet", ".csv"):
            print(f"pyqsgd sweep: error: --out must end in .parquet or .csv (or be a folder), got {args.out!r}",
                  file=sys.stderr)
            return 2
        cfg["out"] = Path(args.out)
    if args.n_jobs is not None:
        cfg["n_jobs"] = args.n_jobs
    backend, address = ("dask", args.dask) if args.dask else ("ray", args.ray) if args.ray else (None, None)
    if backend and args.n_jobs is not None:
        print(f"pyqsgd sweep: error: --n-jobs sets local worker processes; with --{backend} the cluster's "
              "workers run the sweep (omit --n-jobs)", file=sys.stderr)
        return 2
    where = f"on {backend} at {address}" if backend else f"{cfg['n_jobs']} job(s)"
    n_points = 1
    for values in cfg["grid"].values():
        n_points *= len(values)
    print(f"sweep {args.config}: {n_points} grid point(s) x {len(cfg['seeds'])} seed(s) -> {cfg['out']} ({where})")
    if args.dry_run:
        print("configuration OK (dry run: nothing was run)")
        return 0
    t0 = time.perf_counter()
    try:
        df = sweep(cfg["run"], grid=cfg["grid"], seeds=cfg["seeds"], out=cfg["out"],
                   n_jobs=None if backend else cfg["n_jobs"], backend=backend, address=address,
                   progress=not args.quiet)
    except (ConnectionError, ImportError) as e:
        print(f"pyqsgd sweep: error: {e}", file=sys.stderr)
        return 2
    _summary(df, list(cfg["grid"]), time.perf_counter() - t0)
    if args.plot:
        from . import plot

        plot.convergence(df, x=args.x, y="loss", save=args.plot)
        print(f"wrote {args.plot}")
    failed = df.loc[df["status"].isin(["error", "failed"]), "run_id"].nunique() if len(df) else 0
    if failed:
        print(f"{failed} run(s) failed; see the 'status' and 'error' columns of {cfg['out']}", file=sys.stderr)
        return 1
    return 0


def _summary(df, grid_keys, seconds):
    import pandas as pd

    if not len(df):
        print("no results")
        return
    last = df.groupby("run_id", sort=False).tail(1)
    cols = [c for c in grid_keys if c in last.columns] or [c for c in ("method",) if c in last.columns]
    metrics = [c for c in ("loss", "grad_norm_sq", "bits_up", "uploads") if c in last.columns]
    table = last.groupby(cols or ["status"], sort=False, dropna=False).agg(
        runs=("run_id", "nunique"), **{m: (m, "mean") for m in metrics}, failed=("status", lambda s: int(s.isin(["error", "failed"]).sum())))
    with pd.option_context("display.width", 140, "display.max_columns", 20, "display.float_format", "{:.4g}".format):
        print(table)
    print(f"[{seconds:.1f} s]")


def _plot(args):
    from . import plot
    from .sweeps import load_sweep

    try:
        df = load_sweep(args.results)
    except (TypeError, ValueError) as e:
        print(f"pyqsgd plot: error: results: {e}", file=sys.stderr)
        return 2
    if not len(df):
        print(f"pyqsgd plot: error: no results at {args.results}", file=sys.stderr)
        return 2
    try:
        plot.convergence(df, x=args.x, y=args.y, hue=args.hue.split(",") if args.hue else None, save=args.out)
    except (TypeError, ValueError) as e:  # an unknown --x/--y/--hue column or figure format
        print(f"pyqsgd plot: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}")
    return 0


def find_benchmarks(directory=None):
    """The benchmarks folder: ``directory``, ``$PYQSGD_BENCHMARKS``, or ``benchmarks/`` in the current
    folder or one of its parents (a source checkout)."""
    candidates = [directory] if directory else []
    if os.environ.get("PYQSGD_BENCHMARKS"):
        candidates.append(os.environ["PYQSGD_BENCHMARKS"])
    here = Path.cwd()
    candidates += [p / "benchmarks" for p in [here, *here.parents]]
    for c in candidates:
        if c and Path(c).is_dir() and any(Path(c).glob("*.py")):
            return Path(c)
    return None


def _bench(args):
    folder = find_benchmarks(args.dir)
    if folder is None:
        print("pyqsgd bench: error: no benchmarks folder found; run from a source checkout, or pass --dir "
              "(or set PYQSGD_BENCHMARKS)", file=sys.stderr)
        return 2
    scripts = {p.stem: p for p in sorted(folder.glob("*.py")) if not p.name.startswith("_")}
    if args.list:
        for name in scripts:
            print(name)
        return 0
    names = args.names or list(scripts)
    unknown = [n for n in names if n not in scripts]
    if unknown:
        print(f"pyqsgd bench: error: unknown benchmark {unknown[0]!r}; available: {', '.join(scripts)}", file=sys.stderr)
        return 2
    status = 0
    for name in names:
        path = scripts[name]
        cmd = [sys.executable, str(path)]
        if not args.full:
            cmd += _small_args(name, path)
        cmd += args.extra
        print(f"== {name}: {' '.join(cmd[1:])}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call(cmd)
        print(f"== {name}: {'ok' if rc == 0 else f'FAILED (exit {rc})'} in {time.perf_counter() - t0:.1f} s", flush=True)
        status = status or rc
    return 1 if status else 0


def _small_args(name, path):
    """``--small`` when the script accepts it (the convention), else a known quick setting."""
    text = path.read_text(errors="replace")
    if '"--small"' in text or "'--small'" in text:
        return ["--small"]
    return list(_SMALL_ARGS.get(name, ["--quick"] if '"--quick"' in text else []))


def build_parser():
    parser = argparse.ArgumentParser(prog="pyqsgd", description="Communication-efficient distributed SGD toolkit.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{demo,sweep,plot,bench}")

    demo = sub.add_parser("demo", help="compare the seed methods on a bundled real dataset (table + PNG)",
                          description="Compares the seed methods on logistic regression over a bundled dataset; "
                                      "prints a table and writes a loss-versus-bits plot.")
    demo.add_argument("--rounds", type=_int_in(0, 2**32 - 1), default=300, help="rounds per method (default 300)")
    demo.add_argument("--workers", type=_int_in(1, 2**32 - 1), default=10, help="simulated workers (default 10)")
    demo.add_argument("--out", default="pyqsgd_demo.png", help="plot file (PNG or PDF)")
    demo.add_argument("--key", type=_int_in(0, 2**64 - 1), default=0, help="random key")
    demo.set_defaults(func=_demo)

    sw = sub.add_parser("sweep", help="run a resumable parameter sweep from a TOML config",
                        description="Runs the sweep described by a TOML config (schema: "
                                    "python -c 'import pyqsgd.config; help(pyqsgd.config)'). Finished runs are "
                                    "stored as they complete; rerunning skips them.")
    sw.add_argument("config", help="the TOML config file")
    sw.add_argument("--out", help="override the config's out (.parquet, .csv or folder)")
    sw.add_argument("--n-jobs", type=_int_in(1, extra=(-1,)), help="override the config's n_jobs")
    where = sw.add_mutually_exclusive_group()
    where.add_argument("--dask", metavar="ADDRESS", help="run on the Dask scheduler at ADDRESS (tcp://HOST:PORT)")
    where.add_argument("--ray", metavar="ADDRESS", help="run on the Ray cluster at ADDRESS (auto, HOST:PORT or "
                                                        "ray://HOST:PORT)")
    sw.add_argument("--dry-run", action="store_true", help="check the config (and every grid point), run nothing")
    sw.add_argument("--plot", metavar="FILE", help="also write a convergence plot (PNG/PDF)")
    sw.add_argument("--x", default="bits_up", help="x axis of --plot (round, bits, bits_up, uploads)")
    sw.add_argument("--quiet", action="store_true", help="no progress bar")
    sw.set_defaults(func=_sweep)

    pl = sub.add_parser("plot", help="plot convergence from stored sweep results",
                        description="Plots mean ± std over seeds of a sweep's results, one curve per setting.")
    pl.add_argument("results", help="the sweep's out (.parquet, .csv or folder)")
    pl.add_argument("--out", default="sweep.png", help="figure file (PNG or PDF)")
    pl.add_argument("--x", default="bits_up", help="round, bits, bits_up, bits_down or uploads")
    pl.add_argument("--y", default="loss", help="loss or grad_norm_sq")
    pl.add_argument("--hue", help="comma-separated columns that distinguish curves (default: all that vary)")
    pl.set_defaults(func=_plot)

    be = sub.add_parser("bench", help="run the benchmark scripts (small sizes by default)",
                        description="Runs scripts of the benchmarks/ folder, each with its small-size flag "
                                    "(--small by convention) unless --full is given.")
    be.add_argument("names", nargs="*", help="benchmarks to run (script names without .py; default: all)")
    be.add_argument("--full", action="store_true", help="full sizes (can take minutes)")
    be.add_argument("--list", action="store_true", help="list the available benchmarks")
    be.add_argument("--dir", help="benchmarks folder (default: ./benchmarks or a parent's)")
    be.epilog = "Arguments after -- are passed to every script, e.g. pyqsgd bench tnq_error -- --d 1024"
    be.set_defaults(func=_bench)
    return parser


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = []
    if argv[:1] == ["bench"] and "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    args = build_parser().parse_args(argv)
    args.extra = extra
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
