"""The report's appendix: what was read (files, lines not understood, notes, configuration, what each
check read, the thresholds).

Notes that differ only in their numbers (575 restarts give 575 "restart: segment N begins at line N" notes)
are folded into one line with their count and the first few places (:func:`fold_notes`).
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ..checks import DEFAULT_CHECKS
from ..checks._base import fmt
from ..findings import CHECK_FAILED, NOT_CHECKED, Finding
from .model import BulletList, Cell, Note, Paragraph, Subsection, Table, cell_text, cut
from .sections import _sources, short_source

if TYPE_CHECKING:
    from ..run import Run

#: Lines-not-understood examples listed per file in the appendix.
SKIPPED_ROWS = 20
#: A folded note line shows this many of its notes.
FOLD_EXAMPLES = 3
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def fold_notes(notes: list[str], examples: int = FOLD_EXAMPLES) -> list[str]:
    """``notes`` with those that differ only in their numbers folded into one line each, in the order of their
    first note: ``575 notes alike: restart: segment 2 begins at line 120 of x.log; restart: segment 3 ...; and 572
    more like these``."""
    groups: dict[str, list[str]] = {}
    for n in notes:
        groups.setdefault(_NUMBER.sub("#", str(n)), []).append(str(n))
    out = []
    for same in groups.values():
        if len(same) == 1:
            out.append(same[0])
            continue
        more = f"; and {len(same) - examples:,} more like these" if len(same) > examples else ""
        out.append(f"{len(same):,} notes alike: " + "; ".join(same[:examples]) + more)
    return out


def checks_read(findings: list[Finding]) -> list[list[Cell]]:
    """One row per check that reported: ``check, ran, read, resolution, points`` (from its findings' details)."""
    rows: list[list[Cell]] = []
    for cls in DEFAULT_CHECKS:
        fs = [f for f in findings if f.check == cls.name]
        if not fs:
            continue
        ran = [f for f in fs if f.code not in (NOT_CHECKED, CHECK_FAILED)]
        f = ran[0] if ran else fs[0]
        d = f.details
        if not ran:
            what = ("does not apply: " if d.get("not_applicable") else "not run: ") + \
                str(d.get("missing") or d.get("error") or "")
        else:
            what = d.get("series") or d.get("val_series") or d.get("generator_series") or d.get("reads") \
                or cls.reads or ""
            what = ", ".join(map(str, what)) if isinstance(what, (list, tuple)) else str(what)
        points = d.get("points", d.get("evaluations"))
        rows.append([cls.name, "yes" if ran else "no", cut(what, 160), str(d.get("resolution") or ""),
                     cell_text(points) if points is not None else ""])
    return rows


def _shorten_note(run: Run, note: str) -> str:
    """``/full/path/file.log: note`` -> ``file.log: note`` (the path relative to the run's folder)."""
    for src in sorted(_sources(run), key=len, reverse=True):
        if note.startswith(src + ":"):
            return short_source(run, src) + note[len(src):]
    return note


def appendix(run: Run, findings: list[Finding]) -> list[Any]:
    blocks: list[Any] = []
    files = run.meta.get("files", [])
    blocks.append(Subsection("Files", [Table(
        ["File", "Format", "Values", "Lines not understood"],
        [[short_source(run, f["source"]), f["format"], fmt(f["rows"]), f.get("skipped_text", "")] for f in files])],
        anchor="appendix-files"))
    rows: list[list[Cell]] = []
    unlisted = 0
    for f in files:
        sk = f.get("skipped", {})
        ex = sk.get("examples", [])[:SKIPPED_ROWS]
        groups: dict[tuple[str, str], list[Any]] = {}
        for e in ex:        # the same line text under the same reason: one row listing its line numbers
            groups.setdefault((str(e.get("reason", "")), cut(str(e.get("text", "")), 120)), []).append(e.get("line"))
        rows += [[short_source(run, f["source"]), ", ".join(fmt(n) for n in lines), reason, text]
                 for (reason, text), lines in groups.items()]
        unlisted += max(0, int(sk.get("count", 0)) - len(ex))
    if rows:
        sblocks: list[Any] = [Table(["File", "Line(s)", "Reason", "Text"], rows)]
        if unlisted:
            sblocks.append(Note(f"... {unlisted:,} more lines not understood are counted but not listed (the first "
                                f"{SKIPPED_ROWS} per file are; see the files table for the count by reason)."))
        blocks.append(Subsection("Lines not understood", sblocks, anchor="appendix-skipped"))
    else:
        blocks.append(Subsection("Lines not understood", [Paragraph("None: every line was understood.")],
                                 anchor="appendix-skipped"))
    replaced = [(f, f["skipped"].get("replaced", 0)) for f in files if f.get("skipped", {}).get("replaced")]
    notes = [_shorten_note(run, n) for n in run.meta.get("notes", [])]
    notes += [f"{short_source(run, f['source'])}: {n} line(s) had non-UTF-8 bytes (replaced)" for f, n in replaced
              if not any("UTF-8" in x for x in notes)]
    restarts = run.meta.get("restarts", [])
    notes += [f"restart: segment {r['segment']} begins at line {r['line']} of {short_source(run, r['source'])}"
              for r in restarts]
    notes += [f"ignored: {short_source(run, i['source'])}: {i['reason']}" for i in run.meta.get("ignored", [])]
    folded = fold_notes(notes)
    nblocks: list[Any] = [BulletList(folded) if folded else Paragraph("No notes.")]
    if len(folded) < len(notes):
        nblocks.append(Note(f"{len(notes):,} notes in {len(folded):,} line(s): notes that differ only in their "
                            f"numbers are one line, with their count and the first {FOLD_EXAMPLES} places."))
    blocks.append(Subsection("Notes (restarts, tracebacks, layout decisions, ignored files)", nblocks,
                             anchor="appendix-notes"))
    cfg, where = run.config, run.meta.get("config_sources", {})
    if cfg:
        crow: list[list[Cell]] = [[k, cell_text(v), short_source(run, where.get(k, ""))]
                                  for k, v in sorted(cfg.items())]
        cblocks: list[Any] = [Table(["Setting", "Value", "From"], crow)]
        conflicts = run.meta.get("config_conflicts", [])
        if conflicts:
            cblocks.append(Table(["Setting", "Kept", "From", "Other value", "From"],
                                 [[c["key"], cell_text(c["kept"]), short_source(run, c["kept_from"]),
                                   cell_text(c["other"]), short_source(run, c["other_from"])] for c in conflicts],
                                 caption="Conflicting values (a config file wins over values read from logs)"))
        blocks.append(Subsection("Configuration", cblocks, anchor="appendix-config"))
    else:
        blocks.append(Subsection("Configuration", [Paragraph("No configuration was found.")],
                                 anchor="appendix-config"))
    read_rows = checks_read(findings)
    if read_rows:
        blocks.append(Subsection("What each check read", [
            Paragraph("Whether each check ran, on which series, at which resolution; a check that did not run "
                      "says what it lacked."),
            Table(["Check", "Ran", "Read", "Resolution", "Points"], read_rows)], anchor="appendix-read"))
    th_rows: list[list[Cell]] = []
    seen = set()
    for f in findings:
        if f.check in seen or not f.check:
            continue
        seen.add(f.check)
        owner = next((c for c in DEFAULT_CHECKS if c.name == f.check), None)
        t = dict(f.details.get("thresholds") or {}) or (owner().thresholds() if owner is not None else {})
        th_rows.append([f.check, ", ".join(f"{k}={cell_text(v)}" for k, v in t.items())])
    if th_rows:
        blocks.append(Subsection("Checks and thresholds used", [Table(["Check", "Thresholds"], th_rows)],
                                 anchor="appendix-thresholds"))
    return blocks
