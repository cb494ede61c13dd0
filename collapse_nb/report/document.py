"""The report as a format-neutral document: :func:`build_document` puts the sections together.

:func:`build_document` turns a run, its findings, their ranked root causes and the rendered
figures into a :class:`~.model.Document`; :mod:`.markdown` and :mod:`.html` only lay it out. Every
text is *plain text* (log text included, unescaped): escaping is the renderers' job.

The parts live in modules of their own: :mod:`.model` (the blocks, the document, the cell helpers),
:mod:`.verdict` (the status word and the verdict paragraph), :mod:`.sections` (what was analysed, the
findings, the suspects, the problems, the actions, what is not wrong, the healthy bands, the plots) and
:mod:`.appendix` (what was read). Everything they define that other modules import is re-exported here.

Sections, in order (their ``id``): ``run`` (what was analysed), ``verdict``, ``findings`` (most severe
first: critical / warning / ok, notes apart), ``suspects`` (root causes ranked, each with its part of the
observed failure; the parts add up to 100%), ``problems`` (each problem finding with its summary, evidence
and actions, most severe first), ``compared`` (with a healthy run, when given), ``actions`` (deduplicated,
most useful first), ``not-wrong`` (what is ok), ``healthy`` (healthy bands from the checks' thresholds next
to this run's numbers), ``plots``, ``metrics`` ("All metrics": the figures whose key starts with
``metrics_``, when there are any) and ``appendix`` (files, lines not understood, notes, configuration,
thresholds).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

import pandas as pd

from ..findings import Finding
from .appendix import SKIPPED_ROWS, appendix, checks_read, fold_notes  # noqa: F401 (re-exported)
from .model import (CELL_CHARS, EVIDENCE_ROWS, GROUP_ROWS, Badge, Block, BulletList, Cell,  # noqa: F401
                    Document, FigureBlock, GroupedTable, KeyValues, Note, Paragraph, Section, Subsection, Table,
                    anchor, cell_text, cut, cut_unique, evidence_table, frame_table, percents, status_of)
from .sections import (METRICS_PREFIX, actions_section, findings_overview, healthy_comparison,  # noqa: F401
                       healthy_rows, not_wrong, plot_blocks, problem_details, run_identification, run_name,
                       short_source, split_figures, suspects)
from .verdict import SYMPTOM_WORDS, _why, make_verdict, part_percents  # noqa: F401 (re-exported)

if TYPE_CHECKING:
    from ..run import Run


__all__ = ["build_document", "SKIPPED_ROWS", "appendix", "checks_read", "fold_notes", "CELL_CHARS", "EVIDENCE_ROWS",
           "GROUP_ROWS", "Badge", "Block", "BulletList", "Cell", "Document", "FigureBlock", "GroupedTable", "KeyValues",
           "Note", "Paragraph", "Section", "Subsection", "Table", "anchor", "cell_text", "cut", "cut_unique",
           "evidence_table", "frame_table", "percents", "status_of", "METRICS_PREFIX", "actions_section",
           "findings_overview", "healthy_comparison", "healthy_rows", "not_wrong", "plot_blocks", "problem_details",
           "run_identification", "run_name", "short_source", "split_figures", "suspects", "SYMPTOM_WORDS", "_why",
           "make_verdict", "part_percents"]


def build_document(run: Run, findings: list[Finding], causes: pd.DataFrame, figures: Iterable[Any] = (),
                   generator: str = "", comparison: Any = None) -> Document:
    """The report of ``run`` as a :class:`Document` (see the module docstring for its sections).

    ``causes`` is :func:`collapse_nb.diagnose.root_causes` of ``findings``; ``figures`` are
    :class:`collapse_nb.report.figures.RenderedFigure` (drawn, or with the reason they are not): those whose
    key starts with ``metrics_`` go to the section "All metrics" after "Plots"; ``comparison`` (a
    :class:`collapse_nb.compare.Comparison` with a healthy run) adds the section "Compared with <reference>"
    after the problems.
    """
    status, verdict = make_verdict(findings, causes)
    plots, metrics = split_figures(figures)
    sections = [
        Section("run", "What was analysed", run_identification(run, findings)),
        Section("verdict", "Verdict", [Paragraph(verdict, lead=status.capitalize() + ".")]),
        Section("findings", "Findings", findings_overview(findings)),
        Section("suspects", "Suspects (root causes, ranked)", suspects(findings, causes)),
        Section("problems", "Problems in detail", problem_details(findings)),
        *([_comparison_section(comparison)] if comparison is not None else []),
        Section("actions", "What to do", actions_section(findings, causes)),
        Section("not-wrong", "What's NOT wrong", not_wrong(findings)),
        Section("healthy", "Healthy training vs this run", healthy_comparison(findings)),
        Section("plots", "Plots", plot_blocks(plots)),
        *([Section("metrics", "All metrics", plot_blocks(metrics))] if metrics else []),
        Section("appendix", "Appendix: what was read", appendix(run, findings)),
    ]
    return Document(title=f"Training run report: {run_name(run)}", status=status, verdict=verdict,
                    sections=sections, generator=generator)


def _comparison_section(comparison: Any) -> Section:
    from .comparison import comparison_section
    return comparison_section(comparison)
