"""The report's section "Compared with <sibling>": a :class:`~collapse_nb.compare.Comparison` as blocks.

The comparison is computed before the report (by :func:`collapse_nb.compare` or
:meth:`collapse_nb.Runs.compare`, or by ``collapse-nb report`` for a run that has healthy siblings) and
handed in; rendering never loads or diagnoses another run.
"""
from __future__ import annotations

from typing import Any

import pandas as pd

from .model import Badge, BulletList, Note, Paragraph, Section, Subsection, Table, frame_table

#: A check's result on either side as its label: the severity itself (the one vocabulary,
#: :data:`collapse_nb.findings.SEVERITY_WORDS`), ``not checked`` when that side has no finding of the check.
_SEVERITY_BADGE = {"absent": "not checked"}


def comparison_section(comparison: Any) -> Section:
    """``Section("compared", "Compared with <reference>", ...)``: the summary, then one table per question."""
    ref = comparison.reference_name
    blocks: list[Any] = [
        Paragraph(f"What differs between this run and {ref}, a healthy run beside it (chosen as the one whose "
                  f"configuration differs least, unless named)."),
        BulletList(comparison.summary()),
    ]
    if len(comparison.config):
        blocks.append(Subsection("Configuration that differs", [frame_table(
            comparison.config.rename(columns={"run": "this run", "reference": ref}), max_rows=20)]))
    parted = comparison.parted()
    if len(comparison.curves):
        cols = ["series", "where", "run_at", "reference_at", "noise", "run_end", "reference_end", "verdict"]
        shown = pd.concat([parted, comparison.curves[comparison.curves["parted_at"].isna()]])[cols]
        shown = shown.rename(columns={"where": "parts at", "run_at": "this run there", "reference_at": f"{ref} there",
                                      "run_end": "this run at end", "reference_end": f"{ref} at end"})
        basis = sorted(set(comparison.curves["noise_basis"]))
        blocks.append(Subsection("Where the curves part", [frame_table(
            shown, max_rows=12, caption=f"noise: {'; '.join(basis)}")]))
    if len(comparison.checks):
        rows = [[r.check, Badge(_SEVERITY_BADGE.get(r.run, r.run)), r.run_title,
                 Badge(_SEVERITY_BADGE.get(r.reference, r.reference)), r.reference_title]
                for r in comparison.checks.itertuples()]
        blocks.append(Subsection("Checks whose verdict differs", [Table(
            ["Check", "This run", "Finding", ref, f"{ref}'s finding"], rows)]))
    if len(comparison.params):
        blocks.append(Subsection("Parameters that behave differently", [frame_table(
            comparison.params.rename(columns={"run": "this run", "reference": ref}), max_rows=15)]))
    if not (len(comparison.config) or len(parted) or len(comparison.checks) or len(comparison.params)):
        blocks.append(Note(f"Nothing found that differs from {ref} beyond the noise."))
    return Section("compared", f"Compared with {ref}", blocks)
