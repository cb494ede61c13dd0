"""The report's document model: a format-neutral :class:`Document` of sections of blocks, and the cell helpers.

Every text here is *plain text* (log text included, unescaped): escaping is the renderers' job
(:mod:`.markdown`, :mod:`.html`). The sections themselves are built in :mod:`.sections`,
:mod:`.verdict` and :mod:`.appendix`; :func:`collapse_nb.report.document.build_document` puts them together.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np
import pandas as pd

from ..checks._base import fmt, module_of
from ..findings import Finding, finding_label

#: Evidence tables show at most this many rows, then "... N more rows".
EVIDENCE_ROWS = 12
#: Longest cell text before it is cut (in the middle, keeping the distinguishing tail: :func:`cut`).
CELL_CHARS = 200
#: A per-parameter evidence table with more rows than this is grouped by module (:class:`GroupedTable`).
GROUP_ROWS = 24


# ----------------------------------------------------------------------------- the model

@dataclass
class Badge:
    """A status word shown as a coloured badge (HTML) or a marked word (Markdown)."""

    status: str     # a finding's label (critical / warning / info / ok / not checked / check failed) or a run's
                    # status (broken / suspicious / healthy / inconclusive / not assessed / not judged)


Cell = Union[str, Badge]


@dataclass
class Paragraph:
    text: str
    lead: str = ""          # shown bold before the text


@dataclass
class BulletList:
    items: list[str]
    ordered: bool = False
    leads: list[str] = field(default_factory=list)     # optional bold lead per item


@dataclass
class Table:
    columns: list[str]
    rows: list[list[Cell]]
    more_rows: int = 0          # rows left out ("... N more rows")
    caption: str = ""


@dataclass
class KeyValues:
    items: list[tuple[str, str]]


@dataclass
class FigureBlock:
    key: str
    title: str
    caption: str
    png_base64: str


@dataclass
class Note:
    """A muted one-line remark (a plot left out, a table trimmed)."""

    text: str


@dataclass
class Subsection:
    title: str
    blocks: list[Any]
    anchor: str = ""
    badge: str = ""


@dataclass
class GroupedTable:
    """A long per-parameter table in groups (one per module), worst group first.

    HTML shows every group as a collapsible ``<details>`` (the first ``open``), so every row is reachable
    without a script; Markdown shows the first ``top`` rows and counts the rest. ``groups`` are
    ``(label, rows)`` with rows as in :class:`Table`.
    """

    columns: list[str]
    groups: list[tuple[str, list[list[Cell]]]]
    caption: str = ""
    top: int = 12

    @property
    def n_rows(self) -> int:
        return sum(len(r) for _, r in self.groups)


Block = Union[Paragraph, BulletList, Table, GroupedTable, KeyValues, FigureBlock, Note, Subsection]


@dataclass
class Section:
    id: str
    title: str
    blocks: list[Any]


@dataclass
class Document:
    title: str
    status: str                 # broken / suspicious / healthy / inconclusive / not assessed / not judged
    verdict: str
    sections: list[Section]
    generator: str = ""

    def section(self, id: str) -> Section:
        for s in self.sections:
            if s.id == id:
                return s
        raise KeyError(f"no section {id!r}; sections: {', '.join(s.id for s in self.sections)}")

    def figures(self) -> list[FigureBlock]:
        return [b for s in self.sections for b in s.blocks if isinstance(b, FigureBlock)]


# ----------------------------------------------------------------------------- small helpers

def status_of(f: Finding) -> str:
    """A finding's label: its severity, or ``not checked`` / ``check failed``
    (:func:`collapse_nb.findings.finding_label`)."""
    return finding_label(f)


def cell_text(v: Any, digits: int = 4) -> str:
    """One table cell as text: numbers with ``digits`` significant digits, missing values empty."""
    if v is None or v is pd.NA or v is pd.NaT:
        return ""
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return fmt(int(v))
    if isinstance(v, (float, np.floating)):
        return fmt(float(v), digits) if not math.isnan(float(v)) else ""
    if isinstance(v, (list, tuple, set)):
        return ", ".join(cell_text(x) for x in v)
    try:
        if pd.isna(v):
            return ""
    except (TypeError, ValueError):
        pass
    return cut(str(v))


def cut(text: str, n: int = CELL_CHARS) -> str:
    """``text`` at most ``n`` characters: cut in the middle (``…``), keeping the head and the last third,
    where names differ (``model.layers.17.attn.q_proj.weight``)."""
    text = str(text)
    if len(text) <= n:
        return text
    back = max(1, (n - 1) // 3)
    return text[: n - 1 - back] + "…" + text[len(text) - back:]


def cut_unique(texts: list[str], n: int = CELL_CHARS) -> list[str]:
    """:func:`cut` of each text, with more room for the ones whose cut would equal another's: distinct texts
    stay distinct (at worst shown in full)."""
    texts = [str(t) for t in texts]
    out = [cut(t, n) for t in texts]
    room = n
    longest = max((len(t) for t in texts), default=0)
    while len(set(out)) < len(set(texts)) and room < longest:
        room += max(8, n // 4)
        seen: dict[str, set[str]] = {}
        for t, o in zip(texts, out):
            seen.setdefault(o, set()).add(t)
        out = [cut(t, room) if len(seen[o]) > 1 else o for t, o in zip(texts, out)]
    return out


def fold_constant_columns(df: pd.DataFrame, caption: str = "") -> tuple[pd.DataFrame, str]:
    """In a wide table (5+ columns, 3+ rows), the text columns with the same value in every row left out and
    named in the caption instead (``all rows: source = grads``); numbers stay, even when constant."""
    if df.shape[1] >= 5 and len(df) >= 3:
        same = [c for c in df.columns if df[c].astype(object).nunique(dropna=False) == 1
                and all(isinstance(v, str) for v in df[c].head(1))]
        same = same[: df.shape[1] - 2]
        if same:
            text = ", ".join(f"{c} = {cell_text(df[c].iloc[0]) or 'empty'}" for c in same)
            caption = f"{caption}; all rows: {text}" if caption else f"All rows: {text}"
            df = df.drop(columns=same)
    return df, caption


def frame_table(df: pd.DataFrame, max_rows: int = EVIDENCE_ROWS, caption: str = "",
                fold_constant: bool = False) -> Table:
    """A DataFrame as a :class:`Table` of at most ``max_rows`` rows (the rest counted in ``more_rows``).

    ``fold_constant``: :func:`fold_constant_columns` first.
    """
    if df is None or df.empty:
        return Table(columns=[], rows=[], caption=caption)
    if fold_constant:
        df, caption = fold_constant_columns(df, caption)
    shown = df.head(max_rows)
    return Table(columns=[str(c) for c in df.columns], rows=_rows(shown), more_rows=max(0, len(df) - len(shown)),
                 caption=caption)


def _rows(df: pd.DataFrame) -> list[list[Cell]]:
    """The cells of ``df``; long texts cut in the middle with :func:`cut_unique`, so distinct names stay distinct."""
    cols = []
    for c in df.columns:
        raw = list(df[c].astype(object))
        vals = [cell_text(v) for v in raw]
        if any(isinstance(v, str) and len(v) > CELL_CHARS for v in raw):
            texts = [v if isinstance(v, str) else t for v, t in zip(raw, vals)]
            vals = cut_unique(texts)
        cols.append(vals)
    return [list(r) for r in zip(*cols)] if cols else []


def evidence_table(df: pd.DataFrame, caption: str = "") -> Table | GroupedTable:
    """An evidence table: :func:`frame_table` (12 rows, then a count), or, for a per-parameter table longer than
    :data:`GROUP_ROWS` (a ``param`` column), a :class:`GroupedTable` of every row, one group per module (its
    ``module`` column, else the parameter name without its last part), the groups in the order of their first
    row: the checks list the worst first."""
    if df is None or df.empty or "param" not in df.columns or len(df) <= GROUP_ROWS:
        return frame_table(df, caption=caption, fold_constant=True)
    frame, caption = fold_constant_columns(df.reset_index(drop=True), caption)
    mods = (frame["module"].astype(str).tolist() if "module" in frame.columns else
            [module_of(str(p)) for p in frame["param"]])
    groups: dict[str, list[list[Cell]]] = {}
    for m, r in zip(mods, _rows(frame)):
        groups.setdefault(m, []).append(r)
    labelled = [(f"{m} ({len(r):,} row{'s' if len(r) != 1 else ''})", r) for m, r in groups.items()]
    caption = f"{caption}; {len(frame):,} rows in {len(groups):,} module(s), worst first"
    return GroupedTable(columns=[str(c) for c in frame.columns], groups=labelled, caption=caption, top=EVIDENCE_ROWS)


def anchor(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or "x"


def _first_upper(text: str) -> str:
    """Upper-case the first character only (``str.capitalize`` would lower-case the rest: names, units)."""
    return text[:1].upper() + text[1:]


def _first_lower(text: str) -> str:
    return text[:1].lower() + text[1:] if text[:2] != text[:2].upper() else text


def _sentence(text: str) -> str:
    text = text.strip()
    return text if not text or text[-1] in ".!?" else text + "."


def _pct(x: float) -> str:
    return f"{x:.0%}"


def percents(values: list[float]) -> list[int]:
    """Whole percentages of ``values`` (fractions that add up to 1) that add up to exactly 100: each rounded
    down, then the largest remainders rounded up (so a column of parts a reader adds gives 100%)."""
    raw = [max(0.0, float(v)) * 100 for v in values]
    total = sum(raw)
    if not raw or total <= 0:
        return [0 for _ in raw]
    raw = [v * 100 / total for v in raw]
    out = [int(math.floor(v)) for v in raw]
    for i in sorted(range(len(raw)), key=lambda i: raw[i] - out[i], reverse=True)[: 100 - sum(out)]:
        out[i] += 1
    return out
