"""The ``pyqsgd`` command line."""
from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


def _demo(args):
    from .demo import run_demo

    run_demo(rounds=args.rounds, n_workers=args.workers, out=args.out, key=args.key)
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="pyqsgd", description="Communication-efficient distributed SGD toolkit.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="compare the seed methods on a bundled real dataset (table + PNG)")
    demo.add_argument("--rounds", type=int, default=300, help="rounds per method (default 300)")
    demo.add_argument("--workers", type=int, default=10, help="simulated workers (default 10)")
    demo.add_argument("--out", default="pyqsgd_demo.png", help="plot file (PNG or PDF)")
    demo.add_argument("--key", type=int, default=0, help="random key")
    demo.set_defaults(func=_demo)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
