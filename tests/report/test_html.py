"""HTML rendering: self-contained, and every text from the logs escaped."""
from __future__ import annotations

import pytest

import collapse_nb as cnb
from collapse_nb.report import report
from collapse_nb.report.document import (Badge, BulletList, Document, FigureBlock, KeyValues, Note, Paragraph,
                                         Section, Subsection, Table)
from collapse_nb.report.html import render_html

from . import EVIL_METRIC, EVIL_PARAM, Tags, assert_inert_html, write_evil_run

EVIL = EVIL_PARAM + EVIL_METRIC + "\"'><svg onload=alert(1)>"


def doc(*blocks, title="t", status="broken") -> Document:
    return Document(title=title, status=status, verdict="v", sections=[Section("s", "S", list(blocks))],
                    generator=EVIL)


def test_every_block_type_escapes_its_text():
    page = render_html(doc(
        Paragraph(EVIL, lead=EVIL), Note(EVIL), BulletList([EVIL], leads=[EVIL]), KeyValues([(EVIL, EVIL)]),
        Table([EVIL], [[EVIL], [Badge(EVIL)]], caption=EVIL, more_rows=3),
        FigureBlock(EVIL, EVIL, EVIL, "iVBORw0KGgo="),
        Subsection(EVIL, [Paragraph(EVIL)], anchor=EVIL, badge=EVIL), title=EVIL, status=EVIL))
    t = assert_inert_html(page)
    assert "svg" not in t.names() and "script" not in t.names()
    assert EVIL in t.all_text()                           # shown as text, intact
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_a_figure_that_is_not_base64_is_not_embedded():
    page = render_html(doc(FigureBlock("k", "Loss", "c", 'x" onerror="alert(1)')))
    t = assert_inert_html(page)
    assert t.attrs("img") == [] and "the image could not be embedded" in page


def test_page_structure():
    page = render_html(doc(Paragraph("hello")))
    assert page.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in page
    t = Tags(page)
    assert {"style", "nav", "section", "footer"} <= t.names()
    assert [a["href"] for a in t.attrs("a")] == ["#s"]


@pytest.fixture(scope="module")
def evil_report(tmp_path_factory):
    path = write_evil_run(tmp_path_factory.mktemp("evil"))
    return report(cnb.load(path))


def test_log_text_with_tags_is_escaped_in_the_report(evil_report):
    page = evil_report.html
    t = assert_inert_html(page)
    assert "script" not in t.names()
    text = t.all_text()
    assert EVIL_PARAM in text and EVIL_METRIC in text     # the parameter and the file name, as text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert evil_report.document.status in ("suspicious", "broken")    # the evil parameter is dead


def test_log_text_with_tags_and_pipes_is_escaped_in_markdown(evil_report):
    md = evil_report.markdown
    assert "<script" not in md and "<img" not in md
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in md and "&lt;img src=x onerror=alert(1)&gt;" in md
    assert "dead\\|pipe.weight" in md                    # a pipe in a parameter name does not split a cell
    assert "dead|pipe" not in "".join(line for line in md.splitlines() if line.startswith("| "))
