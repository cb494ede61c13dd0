"""The findings panel: what is listed follows the severity toggles; every text is escaped."""
from __future__ import annotations

import pandas as pd
import pytest

import collapse_nb as cnb
from collapse_nb.findings import Finding, by_severity
from collapse_nb.widgets import FindingsPanel, findings_html, findings_panel


def test_panel_lists_every_finding_problems_first(small_run):
    found = cnb.diagnose(small_run)
    panel = findings_panel(found)
    assert isinstance(panel, FindingsPanel)
    assert panel.shown == [f.code for f in by_severity(found)]
    assert panel.shown[0] == "variance_collapse"      # most severe first (diagnose's own order is by root cause)
    assert "variance_collapse" in panel.shown
    html = panel.html.value
    for f in found:
        assert f"data-code='{f.code}'" in html
    assert html.index("variance_collapse") < html.index("loss_finite")
    assert "Root causes, ranked" in html


def test_severity_toggles_filter_what_is_shown(small_run):
    panel = findings_panel(cnb.diagnose(small_run))
    panel.severity_buttons["ok"].value = False
    panel.severity_buttons["info"].value = False
    assert panel.shown == ["variance_collapse", "dead_parameters"]      # the problems, most severe first
    problems = [f.code for f in by_severity(cnb.diagnose(small_run)) if f.severity in ("critical", "warning")]
    assert panel.shown == problems
    assert "data-code='loss_finite'" not in panel.html.value
    panel.severity_buttons["critical"].value = False
    assert panel.shown == ["dead_parameters"]
    assert "showing 1." in panel.html.value


def test_evidence_tables_can_be_hidden(small_run):
    panel = findings_panel(cnb.diagnose(small_run))
    assert "<summary>evidence (" in panel.html.value
    panel.evidence.value = False
    assert "<summary>evidence (" not in panel.html.value
    assert "<summary>what to do (" in panel.html.value


def test_update_replaces_the_findings(small_run, healthy_run_dir):
    panel = findings_panel(cnb.diagnose(small_run))
    panel.update(cnb.diagnose(cnb.load(healthy_run_dir)))
    assert "variance_collapse" not in panel.shown
    assert "outputs_spread_ok" in panel.shown


def test_text_is_escaped():
    evil = Finding(code="x_code", severity="warning", title="<script>alert(1)</script>",
                   summary="a < b & c", actions=["<b>do</b>"],
                   evidence=pd.DataFrame({"param": ["<img src=x onerror=alert(1)>"], "v": [0.123456789]}))
    html = findings_html([evil])
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "a &lt; b &amp; c" in html
    assert "<img" not in html and "&lt;img" in html
    assert "&lt;b&gt;do&lt;/b&gt;" in html
    assert "0.1235" in html                     # floats shortened in evidence cells


def test_severity_colours_differ():
    fs = [Finding(code=f"c{s}", severity=s, title=s) for s in ("critical", "warning", "info", "ok")]
    html = findings_html(fs)
    assert html.count("border-left:5px solid var(--jp-error-color1, #b71c1c)") == 1
    accents = {s: html.split(f"cnb-{s}'")[1].split("border-left:5px solid ")[1].split(";")[0] for s in
               ("critical", "warning", "info", "ok")}
    assert len(set(accents.values())) == 4 and all(a.startswith("var(--jp-") for a in accents.values())
    assert "cnb-critical" in html and "cnb-ok" in html


def test_rejects_what_is_not_a_finding():
    with pytest.raises(TypeError, match="needs Finding objects"):
        findings_panel(["variance_collapse"])


def test_empty_panel_says_so():
    panel = findings_panel([])
    assert panel.shown == []
    assert "No finding to show" in panel.html.value
