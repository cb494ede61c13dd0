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
    assert md_cell(EVIL_PARAM) == "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert md_cell("") == " "


def test_text_is_one_line_without_tags_or_links():
    assert md_text("a\n# b") == "a \\# b"
    assert md_text("[x](javascript:alert(1))") == "\\[x\\](javascript:alert(1))"
    assert md_text("\\[x](javascript:alert(1))") == "\\\\\\[x\\](javascript:alert(1))"   # the backslash too
    assert md_text(EVIL_METRIC) == "&lt;img src=x onerror=alert(1)&gt;"


def test_table_with_more_rows_and_badges():
    md = render_markdown(doc(Table(["a", "b|c"], [["1", Badge("critical")], ["x\ny", Badge("ok")]],
                                   more_rows=7, caption="Evidence")))
    assert "*Evidence*\n\n| a | b\\|c |\n|---|---|\n| 1 | ❌ critical |\n| x<br>y | ✅ ok |" in md
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
    md = render_markdown(doc(Subsection("Sub", [Paragraph("p")], badge="warning"), title="Report"))
    assert md.startswith("# Report\n\n**Status: ❌ broken**")
    assert "## S\n" in md and "### ⚠️ warning Sub\n" in md and md.endswith("p\n")


#: A real tag that links, loads or runs something (escaped text such as ``&lt;a href`` is not one).
LIVE_TAG = __import__("re").compile(r"<(a|img|script|iframe|ol|code)\b|<[^<>]*\s(href|src)\s*=", __import__("re").I)

HOSTILE = [r"\[x](javascript:alert(1))", "![i](http://evil.example/x.png)", "<a href='http://e'>y</a>",
           "[a][r]\n\n[r]: http://evil.example", "<http://evil.example>", "`code`_*em*_", "&lt;script&gt;",
           "# heading", "1. list", "x|y"]


def test_a_real_markdown_renderer_finds_no_link_image_or_tag():
    markdown = __import__("pytest").importorskip("markdown")
    for evil in HOSTILE:
        md = render_markdown(doc(Paragraph(evil, lead=evil), Note(evil), BulletList([evil]), KeyValues([(evil, evil)]),
                                 Table([evil, "b"], [[evil, evil]]), Subsection(evil, [Paragraph(evil)]),
                                 title=evil))
        html = markdown.markdown(md, extensions=["tables"])
        assert not LIVE_TAG.search(html), (evil, html)
    html = markdown.markdown(md_text("`code`_*em*_ **b**"))
    assert "*em*" in html and "**b**" in html and "`code`" in html            # no formatting from log text


def test_a_report_on_a_run_with_hostile_names_renders_inert(tmp_path):
    markdown = __import__("pytest").importorskip("markdown")
    import json

    import collapse_nb as cnb
    from collapse_nb.report import report

    rows = [{"step": s, "loss": 1.0 / (s + 1), r"\[x](javascript:alert(1))": 0.5, "![i](http://e/x.png)": 1.0}
            for s in range(20)]
    (tmp_path / "log.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    run = cnb.load(tmp_path)
    out = tmp_path / "report.md"
    report(run, out, findings=cnb.diagnose(run))
    html = markdown.markdown(out.read_text(encoding="utf-8"), extensions=["tables"])
    own = __import__("re").sub(r'<img alt="[^"<>]*" src="report_figures/[a-z_]+\.png" />', "", html)   # its plots
    assert not LIVE_TAG.search(own)
