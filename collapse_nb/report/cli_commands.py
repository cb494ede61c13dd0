"""``collapse-nb report`` and ``collapse-nb diagnose``: registered on the main parser by :func:`add_subcommands`.

    collapse-nb report [PATH] [-o FILE] [--format md|html|both] [--compare-with RUN | --no-compare]
    collapse-nb diagnose PATH [--json] [--all]

``report`` without PATH reads the bundled example run; without ``-o`` it writes
``collapse_nb_report.html`` and ``collapse_nb_report.md`` in the current directory. It prints
the verdict and the files written. A run whose folder has healthy siblings (runs beside it) is
compared with the closest one (the section "Compared with <sibling>"); ``--compare-with RUN`` names
the run to compare with, ``--no-compare`` leaves it out. ``diagnose`` prints the findings ranked (problems first) and
the suspects; ``--json`` prints them as a JSON list of finding dicts instead. Both exit 0 when
the analysis ran, whatever it found (2 for unreadable input or bad arguments, as every command).
"""
from __future__ import annotations

import argparse
import json
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from .. import errors

WIDTH = 100


def parse_threshold(text: str) -> tuple[str, Any]:
    """``"variance_collapse__critical_ratio=0.05"`` -> ``("variance_collapse__critical_ratio", 0.05)``."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or "__" not in key or not raw.strip():
        raise ValueError(f"--threshold must look like CHECK__FIELD=VALUE (e.g. variance_collapse__critical_ratio="
                         f"0.05); got {text!r}")
    raw = raw.strip()
    low = raw.lower()
    if low in ("true", "false"):
        return key, low == "true"
    for cast in (int, float):
        try:
            return key, cast(raw)
        except ValueError:
            pass
    return key, raw


def _thresholds(args: argparse.Namespace) -> dict[str, Any]:
    return dict(parse_threshold(t) for t in (args.threshold or []))


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input-format", metavar="FORMAT",
                   help="skip sniffing and read the input as this format (see `collapse-nb formats`)")
    p.add_argument("-t", "--threshold", action="append", metavar="CHECK__FIELD=VALUE",
                   help="override a check's threshold, e.g. variance_collapse__critical_ratio=0.05 (repeatable; "
                        "the checks and their thresholds are in docs/checks.md)")


def add_subcommands(subparsers: Any) -> None:
    """Add ``report`` and ``diagnose`` to the ``collapse-nb`` sub-command parsers."""
    r = subparsers.add_parser(
        "report", help="write the failure report (HTML + Markdown) of a run",
        description="Diagnose a run and write its report: a self-contained HTML page (plots embedded) and/or "
                    "Markdown (plots as PNG files next to it). Prints the verdict and where it wrote.")
    r.add_argument("path", nargs="?", help="a log file or run directory (default: the bundled example run)")
    r.add_argument("-o", "--output", metavar="FILE",
                   help="where to write: FILE.html or FILE.md (that format), a directory, or a name without a "
                        "suffix (both); default: collapse_nb_report.html and .md in the current directory")
    r.add_argument("--format", choices=("md", "html", "both"),
                   help="which format(s) to write (default: from the -o suffix, else both)")
    r.add_argument("--no-plots", action="store_true", help="leave the plots out (faster)")
    r.add_argument("--compare-with", metavar="RUN",
                   help="a healthy run (folder or file) to compare with: the report gets a section 'Compared with "
                        "RUN'. By default a run whose folder has healthy siblings is compared with the closest one")
    r.add_argument("--no-compare", action="store_true", help="no comparison with a sibling run")
    _add_common(r)
    r.set_defaults(func=cmd_report)
    d = subparsers.add_parser(
        "diagnose", help="print the findings of a run, ranked (or --json)",
        description="Run every check on a run and print the findings, problems first, then the suspects "
                    "(root causes ranked).")
    d.add_argument("path", help="a log file or run directory")
    d.add_argument("--json", action="store_true",
                   help="print a JSON list of findings (code, severity, title, summary, actions, evidence as "
                        "records, score, check, details)")
    d.add_argument("--all", action="store_true",
                   help="also list the checks that passed (severity ok); by default only problems and notes")
    _add_common(d)
    d.set_defaults(func=cmd_diagnose)


def _load(args: argparse.Namespace, announce: bool = True):
    from ..example import default_example_dir
    from ..loading import load

    path = args.path or default_example_dir()
    if args.path is None and announce:
        print(f"no PATH given: reading the bundled example run {path}")
    return load(path, format=args.input_format)


def _bad_argument(exc: Exception) -> int:
    print(f"collapse-nb: error: {exc}", file=sys.stderr)
    return 2


def cmd_report(args: argparse.Namespace) -> int:
    from ..diagnose import diagnose
    from . import DEFAULT_STEM, report, resolve_targets

    try:
        thresholds = _thresholds(args)
        out = args.output if args.output is not None else str(Path.cwd() / DEFAULT_STEM)
        resolve_targets(out, args.format)            # a bad -o fails before the work
    except ValueError as exc:
        return _bad_argument(exc)
    t0 = time.perf_counter()
    run = _load(args)
    t_load = time.perf_counter() - t0
    try:
        findings = diagnose(run, **thresholds)
        comparison = None if args.no_compare else _comparison(args, run, findings)
        rep = report(run, findings=findings, plots=not args.no_plots, comparison=comparison)
    except (ValueError, TypeError) as exc:
        if isinstance(exc, errors.CollapseNBError):
            raise
        return _bad_argument(exc)
    written = rep.save(out, args.format)
    print()
    print(textwrap.fill(rep.verdict, WIDTH))
    print()
    docs = [p for p in written if p.suffix in (".html", ".md")]
    pngs = [p for p in written if p.suffix == ".png"]
    for p in docs:
        print(f"wrote {p}")
    if pngs:
        print(f"wrote {len(pngs)} plot(s) to {pngs[0].parent}")
    if comparison is not None:
        print(f"compared with {comparison.reference_name}: " + comparison.summary()[1])
    missing = [f for f in rep.figures if not f.png_base64]
    for f in missing:
        print(f"  not drawn: {f.title} ({f.missing})")
    tm = rep.timings
    print(f"({t_load:.1f} s load, {tm.get('diagnose', 0):.1f} s diagnose, {tm.get('plots', 0):.1f} s plots, "
          f"{tm.get('write', 0):.1f} s writing)")
    return 0


#: At most this many sibling runs are read to find a healthy one to compare with (else: --compare-with).
MAX_SIBLINGS = 40


def _comparison(args: argparse.Namespace, run: Any, findings: list) -> Any:
    """The comparison of ``run`` with ``--compare-with``, or with the closest healthy sibling of its folder (the
    runs beside it, :func:`collapse_nb.load_runs` of its parent); None when there is none."""
    from ..compare import compare
    from ..loading import load
    from ..runs import load_runs

    if args.compare_with:
        ref = load(args.compare_with, format=args.input_format)
        ref.meta.setdefault("run_name", Path(args.compare_with).name)
        return compare(run, ref, findings=findings)
    if not args.path or not Path(args.path).is_dir():
        return None
    here = Path(args.path).resolve()
    parent = here.parent
    try:
        from ..discovery import find_runs
        siblings = [rf for rf in find_runs(parent) if rf.path.resolve() != here]
    except OSError:
        return None
    if not siblings:
        return None
    if len(siblings) > MAX_SIBLINGS:
        print(f"({len(siblings)} runs beside this one: too many to look for a healthy one; --compare-with RUN names "
              f"one)")
        return None
    try:
        runs = load_runs(parent, format=args.input_format)
    except errors.CollapseNBError:
        return None
    name = next((n for n, r in runs.items() if Path(r.meta.get("run_folder", "")).resolve() == here), None)
    if name is None or not [n for n in runs.healthy() if n != name]:
        return None
    runs.__dict__.setdefault("_findings", {})[name] = findings
    return runs.compare(name)


def _wrap(text: str, indent: str) -> str:
    return textwrap.fill(text, WIDTH, initial_indent=indent, subsequent_indent=indent)


def cmd_diagnose(args: argparse.Namespace) -> int:
    from ..diagnose import diagnose, root_causes
    from ..findings import is_problem

    try:
        thresholds = _thresholds(args)
    except ValueError as exc:
        return _bad_argument(exc)
    run = _load(args, announce=False)
    try:
        findings = diagnose(run, **thresholds)
    except (ValueError, TypeError) as exc:
        return _bad_argument(exc)
    shown = findings if args.all else [f for f in findings if f.severity != "ok"]
    if args.json:
        print(json.dumps([f.to_dict() for f in shown], indent=2, allow_nan=False))
        return 0
    probs = [f for f in findings if is_problem(f)]
    counts = {s: sum(f.severity == s for f in findings) for s in ("critical", "warning", "info", "ok")}
    print(f"{args.path}: {len(findings)} finding(s): " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    for i, f in enumerate(shown, start=1):
        print()
        print(_wrap(f"{i}. [{f.severity}] {f.title} ({f.code})", ""))
        if f.summary:
            print(_wrap(f.summary, "   "))
        if is_problem(f) and f.actions:
            print(_wrap(f"-> {f.actions[0]}", "   "))
    hidden = len(findings) - len(shown)
    if hidden:
        print(f"\n{hidden} check(s) passed (severity ok); --all lists them.")
    causes = root_causes(findings)
    if probs and not causes.empty:
        print("\nSuspects (root causes, ranked by the share of the observed failure they explain):")
        for r in causes.itertuples(index=False):
            print(_wrap(f"{r.rank}. {r.code} ({r.share:.0%}, {r.role}): {r.title}", "  "))
    return 0
