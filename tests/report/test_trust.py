"""What makes a report trustworthy to read (issue 13, "Report"): one vocabulary, parts that add up, notes
folded, long per-parameter tables grouped, names cut in the middle kept distinct, a dark theme, the
document split into modules."""
from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pandas as pd

import collapse_nb as cnb
from collapse_nb.example import default_example_dir
from collapse_nb.findings import SEVERITIES, SEVERITY_WORDS, STATUS_WORDS, TONE, Finding
from collapse_nb.report import report
from collapse_nb.report.appendix import appendix, fold_notes
from collapse_nb.report.document import (FigureBlock, GroupedTable, Table, build_document, cut_unique,
                                         evidence_table, make_verdict, part_percents, percents)
from collapse_nb.report.html import CSS, render_html
from collapse_nb.report.markdown import render_markdown
from collapse_nb.widgets.findings import findings_html

from . import Tags

REPORT = Path(__file__).resolve().parents[2] / "collapse_nb" / "report"


# ----------------------------------------------------------------------------- one vocabulary

def test_findings_and_runs_have_separate_words():
    assert set(SEVERITY_WORDS) == set(SEVERITIES) and list(SEVERITY_WORDS.values()) == list(SEVERITIES)
    assert not set(SEVERITY_WORDS.values()) & set(STATUS_WORDS)          # no finding is "broken", no run "critical"
    assert set(SEVERITY_WORDS.values()) | set(STATUS_WORDS) <= set(TONE)


def test_every_surface_uses_the_severity_words():
    run = cnb.load(default_example_dir())
    rep = report(run, plots=False)
    findings_section = rep.markdown.split("## Findings", 1)[1].split("## Suspects", 1)[0]
    badges = set(re.findall(r"^\| \S+ ([a-z ]+?) \|", findings_section, re.M))
    assert badges <= set(SEVERITY_WORDS.values()) | {"not checked", "check failed"}, badges
    page = Tags(rep.html)
    words = {t for t in page.text if t in set(TONE)}
    assert "critical" in words and "broken" in words                   # a finding's badge, the run's status
    assert "working" not in rep.markdown.split("## Appendix", 1)[0]
    html = findings_html(rep.findings)
    assert "CRITICAL" in html and "BROKEN" not in html and "WORKING" not in html


def test_findings_are_listed_most_severe_first():
    rep = report(cnb.load(default_example_dir()), plots=False)
    md = rep.markdown
    table = md.split("## Findings", 1)[1].split("### Notes", 1)[0]
    order = [SEVERITIES.index(s) for s in re.findall(r"^\| \S+ (critical|warning|info|ok) \|", table, re.M)]
    assert order and order == sorted(order) and order[0] == 0
    problems = md.split("## Problems in detail", 1)[1].split("## What to do", 1)[0]
    heads = re.findall(r"^### \S+ (critical|warning|info) ", problems, re.M)
    assert heads[0] == "critical" and [SEVERITIES.index(h) for h in heads] == sorted(SEVERITIES.index(h) for h in heads)
    # the suspects keep the causal rank: the output head (a warning) explains the collapse (critical)
    assert rep.root_causes.iloc[0]["code"] == "tiny_output_head"


# ----------------------------------------------------------------------------- parts that add up

def test_percents_add_up_to_100():
    assert sum(percents([0.5625, 0.2375, 0.1875, 0.0125])) == 100
    assert percents([1 / 3, 1 / 3, 1 / 3]) in ([34, 33, 33], [33, 34, 33], [33, 33, 34])
    assert percents([0.0, 0.0]) == [0, 0]


def suspects_column(md: str) -> list[str]:
    sus = md.split("## Suspects", 1)[1].split("## Problems in detail", 1)[0]
    return [row.rsplit("|", 2)[-2].strip() for row in sus.splitlines() if row.startswith("| ")][1:]


def test_example_suspects_add_up_and_the_verdict_quotes_the_same_numbers():
    rep = report(cnb.load(default_example_dir()), plots=False)
    col = suspects_column(rep.markdown)
    nums = [int(c[:-1]) for c in col[:-1] if c.endswith("%")]
    assert sum(nums) == 100 and col[-1] == "100%"                       # the "Total" row
    assert "—" in col                                                   # the critical symptom: no part of its own
    pct, rest = part_percents(rep.root_causes)
    assert f"({pct[0]}% of the observed failure)" in rep.verdict
    assert "Part of the failure:" in rep.markdown and "adds up to 100%" in rep.markdown


def test_no_symptom_means_no_percentages():
    f = Finding("dead_parameters", "warning", "2 parameter(s) never receive gradient", check="dead_parameters")
    causes = cnb.root_causes([f])
    assert causes["part"].tolist() == [0.0] and causes.attrs["unexplained"] == 0.0
    doc = build_document(SimpleNamespace(meta={}, config={}, scalars=_empty_scalars(), epochs=pd.DataFrame(),
                                         outputs=pd.DataFrame(), grads=pd.DataFrame(), extra={}), [f], causes)
    md = render_markdown(doc)
    sus = md.split("## Suspects", 1)[1].split("## Problems", 1)[0]
    assert "%" not in sus.split("\n- ")[0] and "No failure symptom was observed" in sus


def _empty_scalars() -> pd.DataFrame:
    return pd.DataFrame(columns=["name", "epoch", "step", "batch", "segment", "value", "param"])


# ----------------------------------------------------------------------------- scale

def test_repeated_notes_fold_into_one_line():
    notes = [f"restart: segment {i} begins at line {100 * i} of train.log" for i in range(2, 577)]
    notes.insert(3, "train.log: section blocks come before the header they belong to")
    out = fold_notes(notes)
    assert len(out) == 2
    assert out[0].startswith("575 notes alike: restart: segment 2 begins at line 200 of train.log; restart: segment "
                             "3 begins at line 300")
    assert out[0].endswith("and 572 more like these") and out[1] == notes[3]
    run = SimpleNamespace(meta={"files": [], "notes": [], "restarts": [
        {"segment": i, "line": 10 * i, "source": "/r/train.log"} for i in range(2, 577)]}, config={})
    blocks = appendix(run, [])
    sub = next(b for b in blocks if b.title.startswith("Notes"))
    assert len(sub.blocks[0].items) == 1 and "575 notes alike" in sub.blocks[0].items[0]
    assert "575 notes in 1 line(s)" in sub.blocks[1].text


def _many_params(n_modules: int = 300, per: int = 10) -> pd.DataFrame:
    rows = [{"param": f"encoder.layers.{m}.block.{p}.weight", "module": f"encoder.layers.{m}.block",
             "grad_median": 10.0 ** -(m % 7), "status": "dead"} for m in range(n_modules) for p in range(per)]
    return pd.DataFrame(rows)


def test_a_long_per_parameter_table_is_grouped_by_module_with_every_row_reachable():
    df = _many_params()
    t = evidence_table(df, caption="Evidence")
    assert isinstance(t, GroupedTable) and t.n_rows == 3000 and len(t.groups) == 300
    assert t.groups[0][0] == "encoder.layers.0.block (10 rows)"       # the check's order: worst first
    doc = _doc([t])
    html = render_html(doc)
    assert html.count("<details") == 300 and html.count("<details class=\"group\" open>") == 1
    assert "<script" not in html
    assert all(f"encoder.layers.299.block.{p}.weight" in html for p in range(10))       # the last rows too
    md = render_markdown(doc)
    assert md.count("| encoder.layers.0.block |") == 10 and "encoder.layers.2.block" not in md
    assert "... 2,988 more rows (298 more module(s)): every row is in the HTML report" in md
    assert not isinstance(evidence_table(df.head(12)), GroupedTable)       # short tables stay tables
    assert isinstance(evidence_table(df.drop(columns="param")), Table)


def _doc(blocks):
    from collapse_nb.report.document import Document, Section
    return Document(title="t", status="broken", verdict="v", sections=[Section("s", "S", list(blocks))])


def test_names_cut_in_the_middle_stay_distinct():
    head = "model." + "very_long_module_name." * 12
    names = [head + f"layers.{i}.attention.q_proj.weight" for i in range(3)] + [head + "x" * 40 + ".weight"]
    cut = cut_unique(names, 120)
    assert len(set(cut)) == 4 and all("…" in c for c in cut[:3])
    assert all(c.endswith(n[-10:]) for c, n in zip(cut, names))
    t = evidence_table(pd.DataFrame({"param": names, "v": [1, 2, 3, 4]}))
    assert len({r[0] for r in t.rows}) == 4


# ----------------------------------------------------------------------------- themes, print, sections

def _rules(css: str) -> dict[str, str]:
    out = {}
    for sel, body in re.findall(r"([^{}]+)\{([^{}]*)\}", css):
        out.setdefault(sel.strip(), "")
        out[sel.strip()] += body
    return out


def test_html_has_a_dark_theme_and_no_hard_coded_light_backgrounds_on_cards():
    assert "@media (prefers-color-scheme: dark)" in CSS
    dark = CSS.split("@media (prefers-color-scheme: dark)", 1)[1]
    for var in ("--fg", "--bg", "--bad-bg", "--warn-bg", "--good-bg", "--note-bg"):
        assert var + ":" in dark
    for sel, body in _rules(CSS.split("@media", 1)[0]).items():
        if any(k in sel for k in (".finding", ".badge", ".verdict", "td", "th", "main", "body")):
            for prop, value in re.findall(r"(background|color|border[\w-]*)\s*:\s*([^;]+)", body):
                assert "#" not in value or "var(" in value, (sel, prop, value)


def test_tables_scroll_on_screen_and_wrap_in_print():
    assert re.search(r"\.table-wrap \{[^}]*overflow-x: auto", CSS)
    printed = CSS.split("@media print", 1)[1]
    assert "overflow: visible" in printed and "white-space: normal" in printed and "overflow-wrap: anywhere" in printed


def test_widget_cards_follow_the_jupyterlab_theme():
    fs = [Finding(code=f"c{s}", severity=s, title=s) for s in SEVERITIES]
    html = findings_html(fs)
    styles = re.findall(r"style='([^']*)'", html)
    for st in styles:
        for _prop, value in re.findall(r"(background|color|border-left)\s*:\s*([^;]+)", st):
            assert "#" not in value or "var(--jp-" in value, st
    assert "var(--jp-layout-color2" in html and "var(--jp-ui-font-color1" in html


def test_metrics_figures_get_their_own_section_after_the_plots():
    figs = [SimpleNamespace(key="loss_curves", title="Loss", caption="", png_base64="AAAA", missing=None),
            SimpleNamespace(key="metrics_map", title="All metrics: map", caption="", png_base64="AAAA", missing=None)]
    run = SimpleNamespace(meta={}, config={}, scalars=_empty_scalars(), epochs=pd.DataFrame(), outputs=pd.DataFrame(),
                          grads=pd.DataFrame(), extra={})
    doc = build_document(run, [], cnb.root_causes([]), figs)
    ids = [s.id for s in doc.sections]
    assert ids[ids.index("plots") + 1] == "metrics" and doc.section("metrics").title == "All metrics"
    assert [b.key for b in doc.section("metrics").blocks if isinstance(b, FigureBlock)] == ["metrics_map"]
    assert [b.key for b in doc.section("plots").blocks if isinstance(b, FigureBlock)] == ["loss_curves"]
    assert "metrics" not in [s.id for s in build_document(run, [], cnb.root_causes([]), figs[:1]).sections]


def test_document_is_split_into_modules_that_fit_in_a_head():
    for name in ("model", "verdict", "sections", "appendix", "document"):
        n = len((REPORT / f"{name}.py").read_text().splitlines())
        assert n < 400, (name, n)
    assert make_verdict.__module__ == "collapse_nb.report.verdict"
    text = (REPORT / "verdict.py").read_text() + (REPORT / "sections.py").read_text()
    for code in ("objective_not_found", "run_incomplete", "gradient_accumulation", "Stopped early"):
        assert code not in text                                         # the checks' own knowledge stays on them
