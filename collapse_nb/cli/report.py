"""``collapse-nb report`` and ``collapse-nb diagnose``.

    collapse-nb report [PATH] [-o FILE] [--to md|html|both] [--compare-with RUN | --no-compare] [--fail-on SEVERITY]
    collapse-nb diagnose PATH [--json] [--all] [--fail-on SEVERITY]

``report`` without PATH reads the bundled example run; without ``-o`` it writes
``collapse_nb_report.html`` and ``collapse_nb_report.md`` in the current directory. It prints
the verdict and the files written. A run whose folder has healthy siblings (runs beside it) is
compared with the closest one (the section "Compared with <sibling>"); ``--compare-with RUN`` names
the run to compare with, ``--no-compare`` leaves it out. ``diagnose`` prints the findings ranked (problems first) and
the suspects; ``--json`` prints one JSON object instead (:data:`JSON_SCHEMA_VERSION`, see :func:`diagnosis_json`).
Both exit 0 when the analysis ran, whatever it found, unless ``--fail-on critical|warning`` is given: then 1 when a
finding reaches that severity; 2 for unreadable input or bad arguments, as every command.
"""
from __future__ import annotations

import argparse
import json
import sys
import textwrap
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import errors
from ._common import (EXIT_FAIL_ON, EXIT_OK, FAIL_ON, DeprecatedAlias, add_fail_on, add_input_format, add_quiet,
                      add_thresholds, cli_words, error, reached, threshold_error, thresholds)
from .progress import Progress, reading

if TYPE_CHECKING:
    from ..run import Run

WIDTH = 100
#: The version of ``collapse-nb diagnose --json``'s layout; it changes when a key changes meaning or goes away.
JSON_SCHEMA_VERSION = 1

#: At most this many sibling runs are read to find a healthy one to compare with (else: --compare-with).
MAX_SIBLINGS = 40


def add_parsers(sub: Any) -> None:
    """Add ``report`` and ``diagnose`` to the ``collapse-nb`` sub-command parsers."""
    r = sub.add_parser(
        "report", help="write the failure report (HTML + Markdown) of a run",
        description="Diagnose a run and write its report: a self-contained HTML page (plots embedded) and/or "
                    "Markdown (plots as PNG files next to it). Prints the verdict and where it wrote.")
    r.add_argument("path", nargs="?", help="a log file or run directory (default: the bundled example run)")
    r.add_argument("-o", "--output", metavar="FILE",
                   help="where to write: FILE.html or FILE.md (that format), a directory, or a name without a "
                        "suffix (both); default: collapse_nb_report.html and .md in the current directory")
    r.add_argument("--to", choices=("md", "html", "both"), dest="to",
                   help="which report format(s) to write (default: from the -o suffix, else both)")
    r.add_argument("--format", choices=("md", "html", "both"), dest="to", action=DeprecatedAlias, use="--to")
    r.add_argument("--no-plots", action="store_true", help="leave the plots out (faster)")
    r.add_argument("--compare-with", metavar="RUN",
                   help="a healthy run (folder or file) to compare with: the report gets a section 'Compared with "
                        "RUN'. By default a run whose folder has healthy siblings is compared with the closest one")
    r.add_argument("--no-compare", action="store_true", help="no comparison with a sibling run")
    _add_common(r)
    r.set_defaults(func=cmd_report)
    d = sub.add_parser(
        "diagnose", help="print the findings of a run, ranked (or --json)",
        description="Run every check on a run and print the findings, problems first, then the suspects "
                    "(root causes ranked).")
    d.add_argument("path", help="a log file or run directory")
    d.add_argument("--json", action="store_true",
                   help=f"print one JSON object: schema_version ({JSON_SCHEMA_VERSION}), path, verdict (status, text), "
                        f"causes (rank, code, severity, share, part, role, title, explains, reasoning) and findings "
                        f"(code, "
                        f"severity, title, summary, actions, evidence as records, score, check, details); see the "
                        f"README")
    d.add_argument("--all", action="store_true",
                   help="also list the checks that passed (severity ok); by default only problems and notes")
    _add_common(d)
    d.set_defaults(func=cmd_diagnose)


def _add_common(p: argparse.ArgumentParser) -> None:
    add_input_format(p)
    add_thresholds(p)
    add_fail_on(p)
    add_quiet(p)


def _load(args: argparse.Namespace, progress: Progress, announce: bool = True) -> Any:
    from ..example import default_example_dir
    from ..loading import load

    path = args.path or default_example_dir()
    if args.path is None and announce:
        print(f"no PATH given: reading the bundled example run {path}")
    with reading(progress):
        return load(path, format=args.input_format)


def _failed(findings: list, fail_on: str | None) -> int:
    """EXIT_FAIL_ON (with a note on stderr) when a finding reaches ``--fail-on``, else EXIT_OK."""
    if fail_on is None or not reached((f.severity for f in findings), fail_on):
        return EXIT_OK
    worst = sum(f.severity in FAIL_ON[fail_on] for f in findings)
    print(f"collapse-nb: {worst} finding(s) at {fail_on} or above (--fail-on {fail_on}): exit {EXIT_FAIL_ON}",
          file=sys.stderr)
    return EXIT_FAIL_ON


def cmd_report(args: argparse.Namespace) -> int:
    from ..diagnose import diagnose
    from ..report import DEFAULT_STEM, report, resolve_targets

    try:
        th = thresholds(args)
    except ValueError as exc:
        return error(str(exc))
    out = args.output if args.output is not None else str(Path.cwd() / DEFAULT_STEM)
    try:
        resolve_targets(out, args.to)            # a bad -o fails before the work
    except ValueError as exc:
        return error(cli_words(str(exc), output=True))
    progress = Progress.for_args(args)
    try:
        t0 = time.perf_counter()
        run = _load(args, progress)
        t_load = time.perf_counter() - t0
        progress.stage("diagnosing")
        t0 = time.perf_counter()
        try:
            findings = diagnose(run, **th)
        except (ValueError, TypeError) as exc:
            if isinstance(exc, errors.CollapseNBError):
                raise
            return threshold_error(exc)
        t_diagnose = time.perf_counter() - t0
        try:
            comparison = None
            if not args.no_compare:
                progress.stage("comparing with a healthy run")
                comparison = _comparison(args, run, findings, progress)
            progress.stage("drawing plots" if not args.no_plots else "building the report")
            rep = report(run, findings=findings, plots=not args.no_plots, comparison=comparison)
        except (ValueError, TypeError) as exc:
            if isinstance(exc, errors.CollapseNBError):
                raise
            return error(cli_words(str(exc)))
        progress.stage(f"writing {Path(out).name}")
        written = rep.save(out, args.to)
    finally:
        progress.done()
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
    t_diagnose += tm.get("diagnose", 0)
    print(f"({t_load:.1f} s load, {t_diagnose:.1f} s diagnose, {tm.get('plots', 0):.1f} s plots, "
          f"{tm.get('write', 0):.1f} s writing)")
    return _failed(findings, args.fail_on)


def _comparison(args: argparse.Namespace, run: Run, findings: list, progress: Progress) -> Any:
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
        progress.done()
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


def diagnosis_json(path: Any, findings: list, causes: Any, shown: list) -> dict[str, Any]:
    """``collapse-nb diagnose --json``: ``{"schema_version", "path", "verdict": {"status", "text"}, "causes": [...],
    "findings": [...]}`` (the README describes each key)."""
    from ..findings import _json
    from ..report.document import make_verdict

    status, text = make_verdict(findings, causes)
    rows = []
    for r in causes.to_dict(orient="records"):
        row = {"rank": int(r["rank"]), "code": r["code"], "severity": r["severity"], "share": float(r["share"])}
        if "part" in r:
            row["part"] = float(r["part"])
        row.update({"role": r["role"], "title": r["title"],
                    "explains": [c for c in str(r.get("explains") or "").split(", ") if c],
                    "reasoning": r["reasoning"]})
        rows.append(row)
    return {"schema_version": JSON_SCHEMA_VERSION, "path": str(path),
            "verdict": {"status": status, "text": text}, "causes": _json(rows),
            "findings": [f.to_dict() for f in shown]}


def cmd_diagnose(args: argparse.Namespace) -> int:
    from ..diagnose import diagnose, root_causes
    from ..findings import SEVERITIES, by_severity, finding_label, is_problem
    from ..report.verdict import part_percents

    try:
        th = thresholds(args)
    except ValueError as exc:
        return error(str(exc))
    progress = Progress.for_args(args)
    try:
        run = _load(args, progress, announce=False)
        progress.stage("diagnosing")
        try:
            findings = diagnose(run, **th)
        except (ValueError, TypeError) as exc:
            return threshold_error(exc)
        causes = root_causes(findings)
    finally:
        progress.done()
    ordered = by_severity(findings)                       # most severe first, as on every surface
    shown = ordered if args.all else [f for f in ordered if f.severity != "ok"]
    if args.json:
        print(json.dumps(diagnosis_json(args.path, findings, causes, shown), indent=2, allow_nan=False))
        return _failed(findings, args.fail_on)
    probs = [f for f in findings if is_problem(f)]
    counts = {s: sum(f.severity == s for f in findings) for s in SEVERITIES}
    print(f"{args.path}: {len(findings)} finding(s): " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    for i, f in enumerate(shown, start=1):
        print()
        print(_wrap(f"{i}. [{finding_label(f)}] {f.title} ({f.code})", ""))
        if f.summary:
            print(_wrap(f.summary, "   "))
        if is_problem(f) and f.actions:
            print(_wrap(f"-> {f.actions[0]}", "   "))
    hidden = len(findings) - len(shown)
    if hidden:
        print(f"\n{hidden} check(s) passed (severity ok); --all lists them.")
    if probs and not causes.empty:
        parts, unexplained = part_percents(causes)
        print("\nSuspects (root causes, ranked; the percentages are each one's part of the observed failure and add "
              "up to 100% with what no finding explains):")
        for r, pct in zip(causes.itertuples(index=False), parts):
            part = "the failure itself" if r.role == "symptom" and pct == 0 else f"{pct}%"
            print(_wrap(f"{r.rank}. {r.code} ({part}, {r.role}): {r.title}", "  "))
        if unexplained:
            print(_wrap(f"   not explained by any finding: {unexplained}%", "  "))
    return _failed(findings, args.fail_on)
