"""Finding: validation, JSON-safe export, ordering."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from collapse_nb.findings import (SEVERITIES, Finding, check_failed, findings_frame, is_problem, not_checked,
                                  severity_rank, sort_findings)


def test_severity_order_and_bad_severity():
    assert [severity_rank(s) for s in SEVERITIES] == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="severity must be one of critical, warning, info, ok; got 'fatal'"):
        Finding(code="x", severity="fatal", title="t")
    with pytest.raises(ValueError, match="code must be a non-empty string"):
        Finding(code="", severity="ok", title="t")


def test_to_dict_is_json_safe():
    ev = pd.DataFrame({"a": [1.0, np.nan, np.inf], "b": pd.array([1, None, 3], dtype="Int64"),
                       "c": pd.Categorical(["x", None, "z"])})
    f = Finding(code="c", severity="warning", title="t", evidence=ev, score=np.float64(2.5),
                details={"x": np.float32(np.nan), "y": [np.int64(3), -math.inf], "z": {"k": pd.NA}})
    d = f.to_dict()
    text = json.dumps(d, allow_nan=False)          # raises if any NaN/inf survived
    assert d["evidence"][1] == {"a": None, "b": None, "c": None}
    assert d["evidence"][2]["a"] is None and d["evidence"][2]["b"] == 3
    assert d["details"] == {"x": None, "y": [3, None], "z": {"k": None}}
    assert d["score"] == 2.5 and "warning" in text


def test_nan_score_becomes_zero_and_evidence_defaults_empty():
    f = Finding(code="c", severity="ok", title="t", score=float("nan"), evidence=None)
    assert f.score == 0.0 and f.evidence.empty and f.to_dict()["evidence"] == []


def test_sort_findings_problems_first_then_info_then_ok():
    fs = [Finding("a", "ok", "a"), Finding("b", "info", "b"), Finding("c", "warning", "c", score=1),
          Finding("d", "critical", "d", score=0.1), Finding("e", "warning", "e", score=5)]
    assert [f.code for f in sort_findings(fs)] == ["d", "e", "c", "b", "a"]
    assert [is_problem(f) for f in sort_findings(fs)] == [True, True, True, False, False]
    frame = findings_frame(fs)
    assert list(frame.columns) == ["severity", "code", "check", "title", "score", "summary"] and len(frame) == 5


def test_not_checked_and_check_failed():
    n = not_checked("variance_collapse", "no pred/target std")
    assert (n.code, n.severity, n.check, n.details["missing"]) == ("not_checked", "info", "variance_collapse",
                                                                   "no pred/target std")
    e = check_failed("lr_schedule_mismatch", KeyError("lr"))
    assert e.code == "check_failed" and e.severity == "info" and "KeyError" in e.title and "lr_schedule" in e.summary
