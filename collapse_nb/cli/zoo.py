"""``collapse-nb zoo`` (and ``python -m collapse_nb.zoo``): list, or train and write, the failure-zoo runs.

The zoo itself (:mod:`collapse_nb.zoo`, torch) is imported only when the command runs, so ``collapse_nb.zoo``'s
``__main__`` can use :func:`main` without the package and the CLI importing each other.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from ._common import EXIT_OK, add_quiet, error
from .progress import Progress


def add_parsers(sub: Any) -> None:
    z = sub.add_parser("zoo", help="list, or train and write, seeded runs with injected faults (needs torch)")
    _add_arguments(z)


def _add_arguments(z: argparse.ArgumentParser) -> None:
    z.add_argument("names", nargs="*", metavar="NAME",
                   help="scenarios to generate, or `all` (none: list the scenarios)")
    z.add_argument("--out", help="run directory for one NAME; for several, DIR/<NAME> for each")
    z.add_argument("--seed", type=int, default=0, help="random seed (default 0); the same seed logs the same numbers")
    add_quiet(z)
    z.set_defaults(func=cmd_zoo)


def cmd_zoo(args: argparse.Namespace) -> int:
    try:
        from .. import zoo
    except ImportError as exc:
        return error(f"the zoo needs torch ({exc}); pip install torch tensorboard")
    names = list(args.names)
    if not names:
        for name, desc in zoo.scenarios().items():
            print(f"{name:30} {desc}")
        return EXIT_OK
    if "all" in names:
        names = list(zoo.scenarios())
    unknown = [n for n in names if n not in zoo.scenarios()]
    if unknown:
        return error(f"unknown scenario(s) {', '.join(unknown)}; scenarios are: {', '.join(zoo.scenarios())}, all")
    if not args.out:
        return error("--out DIR is needed to generate a scenario")
    out = Path(args.out)
    progress = Progress.for_args(args)
    for i, name in enumerate(names, start=1):
        t = time.perf_counter()
        progress.stage(f"training {i}/{len(names)}: {name}")
        try:
            run_dir = zoo.generate(name, out if len(names) == 1 else out / name, seed=args.seed)
        finally:
            progress.done()
        print(f"{name}: wrote {run_dir} in {time.perf_counter() - t:.1f} s")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """``python -m collapse_nb.zoo [NAME ...] --out DIR [--seed N]``: the ``zoo`` command alone."""
    ap = argparse.ArgumentParser(prog="python -m collapse_nb.zoo",
                                 description="List, or train and write, seeded runs with injected faults "
                                             "(the same as `collapse-nb zoo`).")
    _add_arguments(ap)
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    return args.func(args)
