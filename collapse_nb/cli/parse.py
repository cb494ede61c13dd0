"""``collapse-nb parse`` (logs to tables) and ``collapse-nb formats`` (the formats read)."""
from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._common import EXIT_OK, add_input_format, add_quiet
from .progress import Progress, reading, runs_progress

if TYPE_CHECKING:
    from ..run import Run


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("parse", help="read logs into tidy tables and print what was found")
    p.add_argument("path", nargs="?", help="a log file or run directory (default: the bundled example run)")
    add_input_format(p, old_alias=True)
    p.add_argument("--out", help="write the tables here (Parquet, or CSV without pyarrow); a folder of several "
                   "runs: one Parquet dataset partitioned by run (OUT/<table>/run=<name>/part-0.parquet)")
    p.add_argument("--dataset", action="store_true",
                   help="write the partitioned dataset even when PATH is one run")
    add_quiet(p)
    p.set_defaults(func=cmd_parse)
    f = sub.add_parser("formats", help="list the formats collapse_nb reads")
    add_quiet(f)
    f.set_defaults(func=cmd_formats)


def _write_tables(run: Run, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    # pyarrow is a dependency, but stay usable without it
    ext = "parquet" if importlib.util.find_spec("pyarrow") is not None else "csv"
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
    from ..example import default_example_dir
    from ..loading import load

    path = args.path or default_example_dir()
    if args.path is None:
        print(f"no PATH given: reading the bundled example run {path}")
    progress = Progress.for_args(args)
    if args.out and (args.dataset or _several_runs(Path(path))):
        return _parse_dataset(Path(path), Path(args.out), args.input_format, progress)
    try:
        with reading(progress):
            run = load(path, format=args.input_format)
        written = []
        if args.out:
            progress.stage(f"writing the tables to {args.out}")
            written = _write_tables(run, Path(args.out))
    finally:
        progress.done()
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
    for p in written:
        print(f"wrote {p}")
    return EXIT_OK


def _several_runs(path: Path) -> bool:
    from ..discovery import find_runs
    return path.is_dir() and len(find_runs(path)) > 1


def _parse_dataset(path: Path, out: Path, format: str | None, progress: Progress) -> int:
    """``parse DIR --out OUT`` of a folder of runs: the Parquet dataset partitioned by run (collapse_nb.dataset)."""
    from ..cluster import triage_folder

    try:
        with runs_progress(progress, "triage"):
            table = triage_folder(path, out=out, format=format)
    finally:
        progress.done()
    bad = table[table["status"] == "unreadable"]
    print(f"{len(table) - len(bad)} run(s) under {path}" + (f", {len(bad)} unreadable" if len(bad) else ""))
    for r in bad.to_dict(orient="records"):
        print(f"  unreadable: {r['run']}: {r['verdict']}")
    for sub in sorted(p for p in out.iterdir() if p.is_dir()):
        print(f"wrote {sub}/ ({sum(1 for _ in sub.glob('run=*/*.parquet'))} run partition(s))")
    print(f"wrote {out / 'triage.parquet'}")
    return EXIT_OK


def cmd_formats(args: argparse.Namespace) -> int:
    from ..loading import formats

    for name, desc in formats().items():
        print(f"{name:20} {desc}")
    return EXIT_OK
