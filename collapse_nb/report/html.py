"""The report :class:`~collapse_nb.report.document.Document` as one self-contained HTML page.

Self-contained: inline CSS, figures as ``data:image/png;base64`` images, system fonts, no
script and nothing fetched from the network. A Content-Security-Policy ``<meta>`` forbids
scripts and any load other than inline styles and ``data:`` images, so a page that is opened
from disk cannot run or fetch anything even if some text slipped through unescaped. And none
should: every text (titles, log-derived names, table cells, captions) passes through
:func:`html.escape`.
"""
from __future__ import annotations

import html
import re
from typing import Any

from ..findings import TONE
from .model import (Badge, BulletList, Document, FigureBlock, GroupedTable, KeyValues, Note, Paragraph, Section,
                    Subsection, Table)

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
_B64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")

CSS = """
:root { color-scheme: light dark;
  --fg: #1d2330; --muted: #5b6475; --line: #d8dde6; --bg: #ffffff; --soft: #f5f7fa; --stripe: #fafbfc;
  --link: #1f4f8a;
  --bad: #b42318; --bad-bg: #fde8e7; --bad-line: #b42318;
  --warn: #8a5a00; --warn-bg: #fff3d6; --warn-line: #d99a00;
  --good: #1d6b35; --good-bg: #e3f5e8; --good-line: #1d6b35;
  --note: #1f4f8a; --note-bg: #e6eefa; --note-line: #1f4f8a;
  --off: #555c68; --off-bg: #eceef1; --off-line: #8a919c; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e3e7ee; --muted: #a3abb8; --line: #3a4150; --bg: #161a21; --soft: #1e232c; --stripe: #1b2028;
    --link: #8ab4f8;
    --bad: #ffb4ab; --bad-bg: #4a1714; --bad-line: #f97066;
    --warn: #ffd27a; --warn-bg: #43320b; --warn-line: #e0a526;
    --good: #9be3b0; --good-bg: #14361f; --good-line: #4cc27a;
    --note: #a8c7fa; --note-bg: #182b47; --note-line: #6d9eeb;
    --off: #c3c8d1; --off-bg: #2b313b; --off-line: #7d8592; }
  figure img { background: #ffffff; }
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--soft); color: var(--fg);
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1120px; margin: 0 auto; padding: 24px 28px 48px; background: var(--bg);
  box-shadow: 0 0 0 1px var(--line); min-height: 100vh; }
h1 { font-size: 26px; margin: 0 0 6px; line-height: 1.25; overflow-wrap: anywhere; }
h2 { font-size: 20px; margin: 34px 0 10px; padding-bottom: 4px; border-bottom: 2px solid var(--line); }
h3 { font-size: 16.5px; margin: 22px 0 8px; overflow-wrap: anywhere; }
h4 { font-size: 15px; margin: 16px 0 6px; }
p { margin: 8px 0; overflow-wrap: anywhere; }
a { color: var(--link); }
.meta { color: var(--muted); margin: 0 0 14px; }
nav.toc { display: flex; flex-wrap: wrap; gap: 6px 14px; font-size: 13.5px; padding: 8px 12px;
  background: var(--soft); border: 1px solid var(--line); border-radius: 6px; }
nav.toc a { color: var(--link); text-decoration: none; }
nav.toc a:hover { text-decoration: underline; }
.verdict { border-left: 6px solid var(--off-line); background: var(--off-bg); color: var(--fg); padding: 12px 16px;
  border-radius: 4px; font-size: 15.5px; }
.verdict.bad { border-color: var(--bad-line); background: var(--bad-bg); }
.verdict.warn { border-color: var(--warn-line); background: var(--warn-bg); }
.verdict.good { border-color: var(--good-line); background: var(--good-bg); }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600;
  white-space: nowrap; background: var(--off-bg); color: var(--off); vertical-align: 1px; }
.badge.bad { background: var(--bad-bg); color: var(--bad); }
.badge.warn { background: var(--warn-bg); color: var(--warn); }
.badge.good { background: var(--good-bg); color: var(--good); }
.badge.note { background: var(--note-bg); color: var(--note); }
.table-wrap { overflow-x: auto; max-width: 100%; margin: 8px 0 12px; }
table { border-collapse: collapse; font-size: 13.5px; min-width: 40%; }
th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top;
  overflow-wrap: break-word; }
th { background: var(--soft); font-weight: 600; white-space: nowrap; }
tr:nth-child(even) td { background: var(--stripe); }
td.long { min-width: 16em; }
td.short { white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
caption { caption-side: top; text-align: left; color: var(--muted); font-size: 13px; padding-bottom: 3px; }
.more { color: var(--muted); font-style: italic; font-size: 13px; margin: -6px 0 12px; }
.note { color: var(--muted); font-size: 13.5px; }
details.group { margin: 4px 0; }
details.group > summary { cursor: pointer; color: var(--fg); font-size: 13.5px; }
details.group .table-wrap { margin: 4px 0 8px 14px; }
dl.kv { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 8px 0; }
dl.kv dt { font-weight: 600; color: var(--muted); }
dl.kv dd { margin: 0; overflow-wrap: anywhere; }
ul, ol { padding-left: 24px; margin: 6px 0 10px; }
li { margin: 3px 0; overflow-wrap: anywhere; }
.finding { border: 1px solid var(--line); border-radius: 6px; padding: 2px 16px 8px; margin: 14px 0;
  background: var(--bg); color: var(--fg); }
.finding.bad { border-left: 5px solid var(--bad-line); }
.finding.warn { border-left: 5px solid var(--warn-line); }
.finding.good { border-left: 5px solid var(--good-line); }
.finding.note { border-left: 5px solid var(--note-line); }
figure { margin: 18px 0; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
figcaption { color: var(--muted); font-size: 13.5px; margin-top: 4px; }
footer { margin-top: 36px; color: var(--muted); font-size: 12.5px; }
@media print {
  :root { color-scheme: light; --fg: #000000; --muted: #444444; --line: #bbbbbb; --bg: #ffffff; --soft: #ffffff;
    --stripe: #ffffff; }
  body { background: #ffffff; } main { box-shadow: none; max-width: none; padding: 0; } nav.toc { display: none; }
  .table-wrap { overflow: visible; }
  table { width: 100%; table-layout: auto; }
  th, td, td.short, td.num, th { white-space: normal; overflow-wrap: anywhere; word-break: break-word; }
  details.group > * { display: block; }
}
"""

_NUM = re.compile(r"^[-+]?[\d,]*\.?\d+(e[-+]?\d+)?(x|%)?$", re.I)


def esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _cls(status: str) -> str:
    """The colour class of a label (:data:`collapse_nb.findings.TONE`: ``bad``, ``warn``, ``good``, ``note``,
    ``off``), whether a finding's severity or a run's status."""
    return TONE.get(str(status), "off")


def badge(status: str) -> str:
    return f'<span class="badge {_cls(status)}">{esc(status)}</span>'


def _cell(c: Any) -> str:
    if isinstance(c, Badge):
        return f"<td>{badge(c.status)}</td>"
    s = str(c)
    cls = (' class="num"' if _NUM.match(s.strip()) else ' class="long"' if len(s) > 60 else
           ' class="short"' if len(s) <= 24 else "")
    return f"<td{cls}>{esc(s)}</td>"


def table(t: Table) -> str:
    if not t.columns:
        return ""
    cap = f"<caption>{esc(t.caption)}</caption>" if t.caption else ""
    head = "".join(f"<th>{esc(c)}</th>" for c in t.columns)
    body = "".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in t.rows)
    out = f'<div class="table-wrap"><table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'
    if t.more_rows:
        out += f'<p class="more">... {t.more_rows:,} more rows</p>'
    return out


def grouped_table(t: GroupedTable) -> str:
    """Every group as a collapsible ``<details>`` (the first open): all rows reachable, no script."""
    if not t.columns:
        return ""
    head = "".join(f"<th>{esc(c)}</th>" for c in t.columns)
    cap = f'<p class="note">{esc(t.caption)}</p>' if t.caption else ""
    parts = []
    for i, (label, rows) in enumerate(t.groups):
        body = "".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in rows)
        parts.append(f'<details class="group"{" open" if i == 0 else ""}><summary>{esc(label)}</summary>'
                     f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
                     "</div></details>")
    return cap + "".join(parts)


def _items(b: BulletList) -> str:
    lis = []
    for i, item in enumerate(b.items):
        lead = b.leads[i] if i < len(b.leads) else ""
        lis.append("<li>" + (f"<strong>{esc(lead)}</strong> " if lead else "") + esc(item) + "</li>")
    tag = "ol" if b.ordered else "ul"
    return f"<{tag}>{''.join(lis)}</{tag}>"


def _block(b: Any, level: int) -> str:
    if isinstance(b, Paragraph):
        lead = f"<strong>{esc(b.lead)}</strong> " if b.lead else ""
        return f"<p>{lead}{esc(b.text)}</p>"
    if isinstance(b, Note):
        return f'<p class="note">{esc(b.text)}</p>'
    if isinstance(b, BulletList):
        return _items(b)
    if isinstance(b, KeyValues):
        return '<dl class="kv">' + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in b.items) + "</dl>"
    if isinstance(b, Table):
        return table(b)
    if isinstance(b, GroupedTable):
        return grouped_table(b)
    if isinstance(b, FigureBlock):
        data = b.png_base64 if _B64.fullmatch(b.png_base64 or "") else ""
        if not data:
            return f'<p class="note">{esc(b.title)}: the image could not be embedded.</p>'
        return (f'<figure id="fig-{esc(b.key)}"><img src="data:image/png;base64,{data}" alt="{esc(b.title)}">'
                f"<figcaption><strong>{esc(b.title)}.</strong> {esc(b.caption)}</figcaption></figure>")
    if isinstance(b, Subsection):
        h = f"h{min(level, 6)}"
        title = (badge(b.badge) + " " if b.badge else "") + esc(b.title)
        inner = "".join(_block(x, level + 1) for x in b.blocks)
        cls = f' class="finding {_cls(b.badge)}"' if b.badge else ""
        ident = f' id="{esc(b.anchor)}"' if b.anchor else ""
        return f"<div{cls}{ident}><{h}>{title}</{h}>{inner}</div>"
    raise TypeError(f"unknown report block {type(b).__name__}")


def section(s: Section, doc: Document) -> str:
    if s.id == "verdict":
        inner = f'<div class="verdict {_cls(doc.status)}">' + "".join(_block(b, 3) for b in s.blocks) + "</div>"
    else:
        inner = "".join(_block(b, 3) for b in s.blocks)
    return f'<section id="{esc(s.id)}"><h2>{esc(s.title)}</h2>{inner}</section>'


def render_html(doc: Document) -> str:
    """The document as a complete, self-contained HTML page (see the module docstring)."""
    toc = "".join(f'<a href="#{esc(s.id)}">{esc(s.title)}</a>' for s in doc.sections)
    body = "".join(section(s, doc) for s in doc.sections)
    gen = f"{esc(doc.generator)}. " if doc.generator else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{esc(CSP)}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(doc.title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n"
        f"<header><h1>{esc(doc.title)}</h1>"
        f'<p class="meta">Status: {badge(doc.status)}</p></header>\n'
        f'<nav class="toc">{toc}</nav>\n{body}\n'
        f"<footer>{gen}Self-contained page: no script, nothing loaded from the network.</footer>\n"
        "</main>\n</body>\n</html>\n"
    )
