"""Markdown rendering: escaping of log text, tables, trimmed rows, figure links."""
from __future__ import annotations

from collapse_nb.report.document import (Badge, BulletList, Document, FigureBlock, KeyValues, Note, Paragraph,
                                         Section, Subsection, Table)
from collapse_nb.report.markdown import md_cell, md_text, render_markdown

from . import EVIL_METRIC, EVIL_PARAM


def doc(*blocks, title="t") -> Document:
    return Document(title=title, status="broken", verdict="v", sections=[Section("s", "S", list(blocks))])


def test_cells_escape_pipes_newlines_and_tags():
    assert md_cell("a|b\nc") == "a\\|b<br>c"
    assert md_cell("x\r\ny") == "x<br>y"
    assert md_cell(EVIL_PARAM) == "&lt;script>alert(1)&lt;/script>"
    assert md_cell("") == " "


def test_text_is_one_line_without_tags_or_links():
    assert md_text("a\n# b") == "a # b"
    assert md_text("[x](javascript:alert(1))") == "\\[x](javascript:alert(1))"
    assert md_text(EVIL_METRIC) == "&lt;img src=x onerror=alert(1)>"


def test_table_with_more_rows_and_badges():
    md = render_markdown(doc(Table(["a", "b|c"], [["1", Badge("broken")], ["x\ny", Badge("working")]],
                                   more_rows=7, caption="Evidence")))
    assert "*Evidence*\n\n| a | b\\|c |\n|---|---|\n| 1 | ❌ broken |\n| x<br>y | ✅ working |" in md
    assert "*... 7 more rows*" in md


def test_every_block_type_escapes_log_text():
    evil = EVIL_PARAM + "|" + EVIL_METRIC
    md = render_markdown(doc(
        Paragraph(evil, lead=evil), Note(evil), BulletList([evil], leads=[evil]), KeyValues([(evil, evil)]),
        Table([evil], [[evil]]), FigureBlock("k", evil, evil, "AAAA"),
        Subsection(evil, [Paragraph(evil)], badge="suspicious"), title=evil))
    assert "<script" not in md and "<img" not in md


def test_figures_link_files_only_when_a_folder_is_given():
    d = doc(FigureBlock("loss_curves", "Loss curves", "caption", "AAAA"))
    assert "![" not in render_markdown(d) and "(the image is in the HTML report)" in render_markdown(d)
    assert "![Loss curves](r_figures/loss_curves.png)" in render_markdown(d, figure_dir="r_figures")


def test_headings_and_status():
    md = render_markdown(doc(Subsection("Sub", [Paragraph("p")], badge="suspicious"), title="Report"))
    assert md.startswith("# Report\n\n**Status: ❌ broken**")
    assert "## S\n" in md and "### ⚠️ suspicious Sub\n" in md and md.endswith("p\n")
