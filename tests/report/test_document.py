"""The format-neutral document: cells, trimming, verdicts, actions, healthy bands (small hand-made findings)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from collapse_nb.findings import Finding, not_checked
from collapse_nb.report.document import (Badge, EVIDENCE_ROWS, actions_section, cell_text, frame_table,
                                         healthy_rows, make_verdict, status_of)


def F(code, severity, title="t", check=None, **kw):
    return Finding(code=code, severity=severity, title=title, check=check or code, **kw)


NO_CAUSES = pd.DataFrame(columns=["rank", "code", "severity", "role", "share", "explains", "reasoning", "title"])


@pytest.mark.parametrize("value, text", [
    (None, ""), (np.nan, ""), (pd.NA, ""), (3, "3"), (12345, "12,345"), (0.000123456, "0.0001235"),
    (1.0, "1"), (True, "yes"), ("x" * 300, "x" * 133 + "…" + "x" * 66), ([1, 2.5], "1, 2.5"), (float("inf"), "inf"),
])
def test_cell_text(value, text):
    assert cell_text(value) == text


def test_frame_table_trims_and_counts_the_rest():
    df = pd.DataFrame({"a": range(30), "b": ["x|y"] * 30})
    t = frame_table(df)
    assert len(t.rows) == EVIDENCE_ROWS and t.more_rows == 30 - EVIDENCE_ROWS
    assert t.columns == ["a", "b"] and t.rows[0] == ["0", "x|y"]
    assert frame_table(df.head(3)).more_rows == 0
    assert frame_table(pd.DataFrame()).columns == []


@pytest.mark.parametrize("code, severity, status", [
    ("variance_collapse", "critical", "critical"), ("dead_parameters", "warning", "warning"),
    ("lr_schedule_ok", "ok", "ok"), ("clipping_saturated", "info", "info"),
    ("not_checked", "info", "not checked"), ("check_failed", "info", "check failed"),
])
def test_status_of(code, severity, status):
    assert status_of(F(code, severity)) == status


def test_verdict_without_problems():
    status, text = make_verdict([F("loss_finite", "ok", check="nonfinite_loss"),
                                 F("lr_schedule_ok", "ok", check="lr_schedule_mismatch")], NO_CAUSES)
    assert status == "healthy" and text.startswith("No problem found: 2 check(s) passed.")


def test_verdict_when_most_checks_lacked_data():
    fs = [F("loss_finite", "ok", check="nonfinite_loss"), not_checked("variance_collapse", "no outputs"),
          not_checked("dead_parameters", "no grads")]
    status, text = make_verdict(fs, NO_CAUSES)
    assert status == "inconclusive"
    assert "2 of 3 checks could not run for lack of data (variance_collapse, dead_parameters)" in text


def test_verdict_when_nothing_could_be_judged():
    status, text = make_verdict([not_checked("variance_collapse", "no outputs")], NO_CAUSES)
    assert status == "not judged" and "Nothing could be judged" in text


def test_verdict_with_problems_but_no_symptom():
    fs = [F("dead_parameters", "warning", title="2 parameter(s) never receive gradient")]
    status, text = make_verdict(fs, NO_CAUSES)
    assert status == "suspicious"
    assert "No failure symptom" in text and "2 parameter(s) never receive gradient (warning)" in text


def test_actions_are_deduplicated_first_actions_first():
    a = F("tiny_output_head", "warning", actions=["Fix the head init.", "Lower weight decay."])
    b = F("variance_collapse", "critical", actions=["fix the head init", "Log the std."])
    causes = pd.DataFrame([{"rank": 1, "code": "tiny_output_head", "severity": "warning", "role": "cause",
                            "share": 0.9, "explains": "variance_collapse", "reasoning": "", "title": "t"}])
    blocks = actions_section([b, a], causes)
    start, then = [x for x in blocks if hasattr(x, "items")]
    assert start.items == ["Fix the head init. (tiny_output_head)", "Log the std. (variance_collapse)"]
    assert then.items == ["Lower weight decay. (tiny_output_head)"]


def test_healthy_rows_use_the_findings_thresholds():
    vc = F("variance_collapse", "warning", details={
        "ratio_last": 0.2, "pred_std_last": 0.2, "target_std_last": 1.0,
        "thresholds": {"critical_ratio": 0.05, "warning_ratio": 0.25}})
    rows = {r["check"]: r for r in healthy_rows([vc, not_checked("dead_parameters", "no grads")])}
    assert rows["variance_collapse"]["healthy"] == "≥ 0.25 (collapsed below 0.05)"
    assert rows["variance_collapse"]["this_run"].startswith("0.2 (1:5)")
    assert rows["variance_collapse"]["status"] == "warning"
    # a check that did not run: the default band, and what it lacked
    assert rows["dead_parameters"]["healthy"] == "0 (a norm ≤ 1e-12 counts as zero)"
    assert rows["dead_parameters"]["this_run"] == "not measured: no grads"
    assert rows["dead_parameters"]["status"] == "not checked"
    assert rows["loss_divergence"]["status"] == "no finding"


def test_healthy_row_falls_back_to_the_title_when_details_lack_a_number():
    rows = {r["check"]: r for r in healthy_rows([F("variance_collapse", "critical", title="Collapsed")])}
    assert rows["variance_collapse"]["this_run"] == "Collapsed"


def test_badge_is_a_cell():
    t = frame_table(pd.DataFrame({"a": [1]}))
    t.rows[0].append(Badge("broken"))
    assert isinstance(t.rows[0][-1], Badge)


def test_constant_text_columns_fold_into_the_caption():
    df = pd.DataFrame({"param": ["a", "b", "c"], "status": ["dead"] * 3, "n": [5, 5, 5], "x": [1.0, 2.0, 3.0],
                       "source": ["grads"] * 3})
    t = frame_table(df, caption="Evidence", fold_constant=True)
    assert t.columns == ["param", "n", "x"]                   # numbers stay, even when constant
    assert t.caption == "Evidence; all rows: status = dead, source = grads"
    assert frame_table(df).columns == list(df.columns)         # only when asked
    assert frame_table(df.head(2), fold_constant=True).columns == list(df.columns)   # too few rows to fold
