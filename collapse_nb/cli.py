"""The ``collapse-nb`` command line."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import CollapseNBError


def _write_tables(run, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    try:
        import pyarrow  # noqa: F401
        ext = "parquet"
    except ImportError:  # pragma: no cover - pyarrow is a dependency, but stay usable without it
        ext = "csv"
    written = []
    tables = {"scalars": run.scalars, "epochs": run.epochs, "outputs": run.outputs, "grads": run.grads,
              **run.extra}
    for name, df in tables.items():
        path = out / f"{name}.{ext}"
        if ext == "parquet":
            df.to_parquet(path, index=False)
        else:
            df.to_csv(path, index=False)
        written.append(path)
    return written


def cmd_parse(args: argparse.Namespace) -> int:
    from .example import default_example_dir
    from .loading import load

    path = args.path or default_example_dir()
    if args.path is None:
        print(f"no PATH given: reading the bundled example run {path}")
    run = load(path, format=args.format)
    print(run.summary())
    for f in run.meta["files"]:
        sk = f["skipped"]
        if sk["count"]:
            print(f"  {f['source']}: {sk['count']:,} line(s) not understood; first at "
                  + ", ".join(f"line {e['line']} ({e['reason']})" for e in sk["examples"][:3]))
    for note in run.meta["notes"][:10]:
        print(f"note: {note}")
    for ign in run.meta.get("ignored", []):
        print(f"ignored: {ign['source']}: {ign['reason']}")
    if args.out:
        for p in _write_tables(run, Path(args.out)):
            print(f"wrote {p}")
    return 0


def cmd_formats(args: argparse.Namespace) -> int:
    from .loading import formats

    for name, desc in formats().items():
        print(f"{name:20} {desc}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="collapse-nb", description="Find out why a training run failed.")
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("parse", help="read logs into tidy tables and print what was found")
    p.add_argument("path", nargs="?", help="a log file or run directory (default: the bundled example run)")
    p.add_argument("--format", help="skip sniffing and read as this format (see `collapse-nb formats`)")
    p.add_argument("--out", help="write the tables here (Parquet, or CSV without pyarrow)")
    p.set_defaults(func=cmd_parse)
    f = sub.add_parser("formats", help="list the formats collapse_nb reads")
    f.set_defaults(func=cmd_formats)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except CollapseNBError as exc:
        print(f"collapse-nb: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
