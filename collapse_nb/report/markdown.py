"""The report :class:`~collapse_nb.report.document.Document` as Markdown (GitHub-flavoured tables).

Text from the logs is made inert: every Markdown metacharacter is backslash-escaped, the backslash
first (no link, image, HTML tag, autolink or emphasis can form from a file or metric name), ``&`` is
``&amp;``, and a line that would start a block (``#``, ``>``, ``-``, ``1.``) is escaped; in table
cells line breaks become ``<br>``. Figures are image links to PNG files (``figure_dir``) or, without one, a line
saying the image is in the HTML report.
"""
from __future__ import annotations

import re
from typing import Any

from ..findings import TONE
from .model import (Badge, BulletList, Cell, Document, FigureBlock, GroupedTable, KeyValues, Note, Paragraph,
                    Section, Subsection, Table)

#: A marker per label: a finding's severity (critical, warning, info, ok, not checked, check failed) or a run's
#: status (broken, suspicious, healthy, inconclusive, not assessed, not judged): the one vocabulary of
#: :data:`collapse_nb.findings.SEVERITY_WORDS` and :data:`~collapse_nb.findings.STATUS_WORDS`.
_MARKS = {"bad": "❌", "warn": "⚠️", "good": "✅", "note": "ℹ️", "off": "➖"}
BADGES = {word: f"{_MARKS[tone]} {word}" for word, tone in TONE.items()}
BADGES["no finding"] = "· no finding"


#: Characters with a meaning inside a Markdown line (emphasis, code, links, images), backslash-escaped; ``*``
#: and ``_`` only where they could open emphasis (an underscore inside a word, ``pred_std``, or a ``*`` before
#: a space, ``attn.*  (2)``, cannot, and with every opener escaped no closer has one to close): the
#: backslash first, so that an escape in the text cannot undo the ones added here. These are escapable in
#: CommonMark, GitHub and Python-Markdown alike; ``&``, ``<`` and ``>`` become entities instead (no HTML tag,
#: autolink or quote can form).
_INLINE = re.compile(r"([\\`\[\]!]|\*(?=\S)|(?<![A-Za-z0-9])_(?=\S))")
#: What starts a block when it begins a line: a heading, a list item, a rule, a setext underline.
_BLOCK_START = re.compile(r"^(\s*)(?:(#|[-+=](?=\s|[-=]*$))|(\d+)([.)])(?=\s|$))")


def _escape(s: str, cell: bool = False) -> str:
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    s = _INLINE.sub(r"\\\1", s)
    if cell:                  # inside a table row no line starts a block: only the column separator matters
        return s.replace("|", "\\|")
    return _BLOCK_START.sub(lambda m: m.group(1) + ("\\" + m.group(2) if m.group(2) else
                                                    m.group(3) + "\\" + m.group(4)), s)


def md_text(text: Any) -> str:
    """Plain text made safe for a Markdown paragraph: one line, every Markdown metacharacter escaped (the
    backslash included), so that no name in a log can become a link, an image, HTML or formatting."""
    s = str(text).replace("\r\n", "\n").replace("\r", "\n")
    return " ".join(_escape(part) for part in s.split("\n"))


def md_cell(text: Any) -> str:
    """Plain text made safe for a Markdown table cell: escaped as :func:`md_text`, line breaks as ``<br>``."""
    s = str(text).replace("\r\n", "\n").replace("\r", "\n")
    return "<br>".join(_escape(part.strip(), cell=True) for part in s.split("\n")) or " "


def badge(status: str) -> str:
    return BADGES.get(status, status)


def _cell(c: Any) -> str:
    return badge(c.status) if isinstance(c, Badge) else md_cell(c)


def table(t: Table) -> list[str]:
    if not t.columns:
        return []
    out = []
    if t.caption:
        out += [f"*{md_text(t.caption)}*", ""]
    out.append("| " + " | ".join(md_cell(c) for c in t.columns) + " |")
    out.append("|" + "|".join("---" for _ in t.columns) + "|")
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in t.rows]
    if t.more_rows:
        out += ["", f"*... {t.more_rows:,} more rows*"]
    return out + [""]


def grouped_table(t: GroupedTable) -> list[str]:
    """The first ``t.top`` rows (worst groups first) with their module as the first column, then a count of the
    rest (every row is in the HTML report)."""
    if not t.columns:
        return []
    own = "module" not in t.columns             # the module as the first column, unless the table has one
    rows: list[list[Cell]] = [[*([label.rsplit(" (", 1)[0]] if own else []), *row]
                              for label, rs in t.groups for row in rs]
    group = [label for label, rs in t.groups for _ in rs]
    shown = rows[: t.top]
    more = len(rows) - len(shown)
    groups_left = len(set(group[t.top:]) - set(group[: t.top]))
    out = table(Table((["module"] if own else []) + t.columns, shown, caption=t.caption))
    if more:
        while out and out[-1] == "":
            out.pop()
        out += ["", f"*... {more:,} more rows"
                + (f" ({groups_left:,} more module(s))" if groups_left else "")
                + ": every row is in the HTML report, grouped by module*", ""]
    return out


def _block(b: Any, level: int, figure_dir: str | None) -> list[str]:
    if isinstance(b, Paragraph):
        lead = f"**{md_text(b.lead)}** " if b.lead else ""
        return [(lead + md_text(b.text)).strip(), ""]
    if isinstance(b, Note):
        return [f"*{md_text(b.text)}*", ""]
    if isinstance(b, BulletList):
        out = []
        for i, item in enumerate(b.items, start=1):
            lead = b.leads[i - 1] if i - 1 < len(b.leads) else ""
            mark = f"{i}." if b.ordered else "-"
            out.append(f"{mark} " + (f"**{md_text(lead)}** " if lead else "") + md_text(item))
        return out + [""]
    if isinstance(b, KeyValues):
        return [f"- **{md_text(k)}**: {md_text(v)}" for k, v in b.items] + [""]
    if isinstance(b, Table):
        return table(b)
    if isinstance(b, GroupedTable):
        return grouped_table(b)
    if isinstance(b, FigureBlock):
        if figure_dir is not None:
            return [f"![{md_text(b.title)}]({figure_dir}/{b.key}.png)", "", f"*{md_text(b.caption)}*", ""]
        return [f"**{md_text(b.title)}** (the image is in the HTML report). {md_text(b.caption)}", ""]
    if isinstance(b, Subsection):
        title = (badge(b.badge) + " " if b.badge else "") + md_text(b.title)
        out = ["#" * level + " " + title, ""]
        for x in b.blocks:
            out += _block(x, level + 1, figure_dir)
        return out
    raise TypeError(f"unknown report block {type(b).__name__}")


def section(s: Section, figure_dir: str | None = None) -> list[str]:
    out = [f"## {md_text(s.title)}", ""]
    for b in s.blocks:
        out += _block(b, 3, figure_dir)
    return out


def render_markdown(doc: Document, figure_dir: str | None = None) -> str:
    """The document as Markdown. ``figure_dir``: where the figures' PNG files are, relative to the
    Markdown file (``<dir>/<key>.png``); ``None`` leaves images out (they are in the HTML report)."""
    out = [f"# {md_text(doc.title)}", "", f"**Status: {badge(doc.status)}**"
           + (f" · {md_text(doc.generator)}" if doc.generator else ""), ""]
    for s in doc.sections:
        out += section(s, figure_dir)
    while out and out[-1] == "":
        out.pop()
    return "\n".join(out) + "\n"
