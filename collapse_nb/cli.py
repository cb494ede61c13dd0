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
    if args.out and (args.dataset or _several_runs(Path(path))):
        return _parse_dataset(Path(path), Path(args.out), args.format)
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


def _several_runs(path: Path) -> bool:
    from .discovery import find_runs
    return path.is_dir() and len(find_runs(path)) > 1


def _parse_dataset(path: Path, out: Path, format: str | None) -> int:
    """``parse DIR --out OUT`` of a folder of runs: the Parquet dataset partitioned by run (collapse_nb.dataset)."""
    from .cluster import triage_folder

    table = triage_folder(path, out=out, format=format)
    bad = table[table["status"] == "unreadable"]
    print(f"{len(table) - len(bad)} run(s) under {path}" + (f", {len(bad)} unreadable" if len(bad) else ""))
    for r in bad.to_dict(orient="records"):
        print(f"  unreadable: {r['run']}: {r['verdict']}")
    for sub in sorted(p for p in out.iterdir() if p.is_dir()):
        print(f"wrote {sub}/ ({sum(1 for _ in sub.glob('run=*/*.parquet'))} run partition(s))")
    print(f"wrote {out / 'triage.parquet'}")
    return 0


def cmd_formats(args: argparse.Namespace) -> int:
    from .loading import formats

    for name, desc in formats().items():
        print(f"{name:20} {desc}")
    return 0


def cmd_zoo(args: argparse.Namespace) -> int:
    try:
        from . import zoo
    except ImportError as exc:
        print(f"collapse-nb: error: the zoo needs torch ({exc}); pip install torch tensorboard", file=sys.stderr)
        return 2
    names = list(args.names)
    if not names:
        for name, desc in zoo.scenarios().items():
            print(f"{name:30} {desc}")
        return 0
    if "all" in names:
        names = list(zoo.scenarios())
    unknown = [n for n in names if n not in zoo.scenarios()]
    if unknown:
        print(f"collapse-nb: error: unknown scenario(s) {', '.join(unknown)}; scenarios are: "
              f"{', '.join(zoo.scenarios())}, all", file=sys.stderr)
        return 2
    if not args.out:
        print("collapse-nb: error: --out DIR is needed to generate a scenario", file=sys.stderr)
        return 2
    import time

    out = Path(args.out)
    for name in names:
        t = time.perf_counter()
        run_dir = zoo.generate(name, out if len(names) == 1 else out / name, seed=args.seed)
        print(f"{name}: wrote {run_dir} in {time.perf_counter() - t:.1f} s")
    return 0


def cmd_triage(args: argparse.Namespace) -> int:
    import json
    import math

    from .runs import load_runs

    if args.output and Path(args.output).suffix.lower() not in (".html", ".htm"):
        print(f"collapse-nb: error: -o/--output is the triage page, HTML: give a path ending in .html; got "
              f"{args.output!r}", file=sys.stderr)
        return 2
    if args.output and not (args.dask or args.out):
        runs = load_runs(args.path, format=args.format)          # the page draws each run and writes its report
        table = runs.triage()
    else:
        # one task per run, each run dropped once its row is made (memory flat in the number of runs; rows of runs
        # whose files have not changed come from the cache)
        from .cluster import connect, triage_folder
        client = connect(args.dask) if args.dask else None
        try:
            table = triage_folder(args.path, client=client, out=args.out, format=args.format)
        finally:
            if client is not None:
                client.close()
        if args.output:
            runs = load_runs(args.path, format=args.format)
    root, failed = Path(args.path), int((table["status"] == "unreadable").sum())
    n = len(table) - failed
    if args.output:
        from .report.triage_page import write_triage_page
        written = write_triage_page(runs, args.output, table=table, reports=not args.no_reports,
                                    plots=not args.no_plots)
        print(f"wrote {written[0]}" + (f" and {len(written) - 1} report(s) in {written[1].parent}"
                                       if len(written) > 1 else ""), file=sys.stderr if args.json else sys.stdout)
    if args.json:
        rows = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
                for r in table.to_dict(orient="records")]
        print(json.dumps({"root": str(root), "runs": rows}, indent=2, default=str))
        return 0
    print(f"{n} run(s) under {root}" + (f", {failed} unreadable" if failed else "")
          + (f"; wrote the Parquet dataset {args.out}" if args.out else ""))
    width = max([len(n) for n in table["run"]] + [3])
    for r in table.to_dict(orient="records"):
        reached = " ".join(p for p in (f"step {r['steps']:,.0f}" if r.get("steps") == r.get("steps") and
                                       r.get("steps") is not None else "",
                                       f"epoch {r['epochs']:g}" if r.get("epochs") == r.get("epochs") and
                                       r.get("epochs") is not None else "") if p)
        what = next((v for v in (r.get("top_finding"), r.get("verdict")) if isinstance(v, str) and v), "")
        cause = r.get("top_cause") if isinstance(r.get("top_cause"), str) else "-"
        print(f"{r['run']:{width}}  {r['status']:12}  {cause:24}  {reached:22}  "
              f"{str(what)[:110]}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="collapse-nb", description="Find out why a training run failed.")
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("parse", help="read logs into tidy tables and print what was found")
    p.add_argument("path", nargs="?", help="a log file or run directory (default: the bundled example run)")
    p.add_argument("--format", help="skip sniffing and read as this format (see `collapse-nb formats`)")
    p.add_argument("--out", help="write the tables here (Parquet, or CSV without pyarrow); a folder of several "
                   "runs: one Parquet dataset partitioned by run (OUT/<table>/run=<name>/part-0.parquet)")
    p.add_argument("--dataset", action="store_true",
                   help="write the partitioned dataset even when PATH is one run")
    p.set_defaults(func=cmd_parse)
    f = sub.add_parser("formats", help="list the formats collapse_nb reads")
    f.set_defaults(func=cmd_formats)
    z = sub.add_parser("zoo", help="list, or train and write, seeded runs with injected faults (needs torch)")
    z.add_argument("names", nargs="*", metavar="NAME",
                   help="scenarios to generate, or `all` (none: list the scenarios)")
    z.add_argument("--out", help="run directory for one NAME; for several, DIR/<NAME> for each")
    z.add_argument("--seed", type=int, default=0, help="random seed (default 0); the same seed logs the same numbers")
    z.set_defaults(func=cmd_zoo)
    t = sub.add_parser("triage", help="which runs of a folder failed, how, and how far they got (worst first)")
    t.add_argument("path", help="a folder of runs (lightning_logs/, runs/, wandb/, mlruns/, a zoo folder)")
    t.add_argument("--format", help="read every file as this format (see `collapse-nb formats`)")
    t.add_argument("--json", action="store_true", help="print the table as JSON, for scripts")
    t.add_argument("--dask", metavar="ADDRESS", help="read and diagnose the runs on this Dask scheduler "
                   "(tcp://host:8786), one task per run; needs dask[distributed]")
    t.add_argument("--out", help="also write the runs' tables as one Parquet dataset partitioned by run here "
                   "(with --dask: by the workers, so a folder they can all write)")
    t.add_argument("-o", "--output", metavar="FILE.html",
                   help="also write the triage page: a self-contained HTML page, worst first, a small curve per run "
                        "and a link to each run's report (written to FILE_reports/)")
    t.add_argument("--no-reports", action="store_true", help="with -o: the page only, no report per run")
    t.add_argument("--no-plots", action="store_true", help="with -o: the reports without their plots (faster)")
    t.set_defaults(func=cmd_triage)
    from .report.cli_commands import add_subcommands as add_report_commands
    add_report_commands(sub)        # report, diagnose
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
