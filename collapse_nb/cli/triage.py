"""``collapse-nb triage DIR``: which runs of a folder failed, how, and how far they got (worst first)."""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from ._common import EXIT_FAIL_ON, EXIT_OK, add_fail_on, add_input_format, add_quiet, error
from .progress import Progress, runs_progress


def add_parsers(sub: Any) -> None:
    t = sub.add_parser("triage", help="which runs of a folder failed, how, and how far they got (worst first)")
    t.add_argument("path", help="a folder of runs (lightning_logs/, runs/, wandb/, mlruns/, a zoo folder)")
    add_input_format(t, old_alias=True, what="every file")
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
    add_fail_on(t, what="any run's findings")
    add_quiet(t)
    t.set_defaults(func=cmd_triage)


def _failing(table: Any, fail_on: str | None) -> int:
    """How many runs reach ``--fail-on`` (their critical / warning counts; unreadable runs have none)."""
    cols = [c for c in ["critical"] + (["warnings"] if fail_on == "warning" else []) if c in table.columns]
    if fail_on is None or not len(table) or not cols:
        return 0
    counts = table[cols].apply(lambda c: c.fillna(0).astype("float64")).sum(axis=1)
    return int((counts > 0).sum())


def cmd_triage(args: argparse.Namespace) -> int:
    from ..runs import load_runs

    if args.output and Path(args.output).suffix.lower() not in (".html", ".htm"):
        return error(f"-o/--output is the triage page, HTML: give a path ending in .html; got {args.output!r}")
    progress = Progress.for_args(args)
    try:
        if args.output and not (args.dask or args.out):
            with runs_progress(progress, "load_runs"):
                runs = load_runs(args.path, format=args.input_format)  # the page draws each run, writes its report
            progress.stage(f"diagnosing {len(runs)} run(s)")
            table = runs.triage()
        else:
            # one task per run, each run dropped once its row is made (memory flat in the number of runs; rows of
            # runs whose files have not changed come from the cache)
            from ..cluster import connect, triage_folder
            client = connect(args.dask) if args.dask else None
            try:
                with runs_progress(progress, "cluster" if client is not None else "triage"):
                    table = triage_folder(args.path, client=client, out=args.out, format=args.input_format)
            finally:
                if client is not None:
                    client.close()
            if args.output:
                with runs_progress(progress, "load_runs"):
                    runs = load_runs(args.path, format=args.input_format)
        written = []
        if args.output:
            from ..report.triage_page import write_triage_page
            progress.stage(f"writing {args.output}" + ("" if args.no_reports else f" and {len(runs)} report(s)"))
            written = write_triage_page(runs, args.output, table=table, reports=not args.no_reports,
                                        plots=not args.no_plots)
    finally:
        progress.done()
    root, failed = Path(args.path), int((table["status"] == "unreadable").sum())
    n = len(table) - failed
    if written:
        print(f"wrote {written[0]}" + (f" and {len(written) - 1} report(s) in {written[1].parent}"
                                       if len(written) > 1 else ""), file=sys.stderr if args.json else sys.stdout)
    failing = _failing(table, args.fail_on)
    if args.json:
        rows = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
                for r in table.to_dict(orient="records")]
        print(json.dumps({"root": str(root), "runs": rows}, indent=2, default=str))
    else:
        _print_table(table, root, n, failed, args.out)
    if failing:
        print(f"collapse-nb: {failing} run(s) with a finding at {args.fail_on} or above (--fail-on {args.fail_on}): "
              f"exit {EXIT_FAIL_ON}", file=sys.stderr)
        return EXIT_FAIL_ON
    return EXIT_OK


def _print_table(table: Any, root: Path, n: int, failed: int, out: str | None) -> None:
    print(f"{n} run(s) under {root}" + (f", {failed} unreadable" if failed else "")
          + (f"; wrote the Parquet dataset {out}" if out else ""))
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
