"""Triage of many runs: which failed, how, how far they got, and their validation results.

:func:`triage` diagnoses every run of a :class:`~collapse_nb.runs.Runs` and returns one row per run,
worst first (broken, suspicious, not assessed, inconclusive, healthy; then by their critical and
warning counts):

``run, status, top_cause, top_finding, verdict, critical, warnings, steps, epochs, stopped_early,
best_val, best_val_where, final_val, files``

``status`` and ``verdict`` are the report's (:func:`collapse_nb.report.document.make_verdict`);
``top_cause`` is the code of the root cause :func:`collapse_nb.root_causes` ranks first, or of the
most severe finding; ``stopped_early`` is the ``coverage`` check's ``run_incomplete``. Runs that could
not be read come last with status ``unreadable`` and the reason as their verdict.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .diagnose import diagnose, order_findings, root_causes
from .report.document import make_verdict
from .timeaxis import curve

if TYPE_CHECKING:
    from .run import Run

STATUS_ORDER = {"broken": 0, "suspicious": 1, "not assessed": 2, "inconclusive": 3, "healthy": 4, "working": 4,
                "unreadable": 5}
COLUMNS = ["run", "status", "top_cause", "top_finding", "verdict", "critical", "warnings", "steps", "epochs",
           "stopped_early", "best_val", "best_val_where", "final_val", "files"]


def triage_row(name: str, run: Run, findings: list | None = None, **thresholds: Any) -> dict:
    """The triage row of one run (see the module docstring), from its ``findings`` when they are known."""
    findings = diagnose(run, **thresholds) if findings is None else findings
    causes = root_causes(findings)
    status, verdict = make_verdict(findings, causes)
    bad = [f for f in order_findings(findings) if f.severity in ("critical", "warning")]
    top = None
    if causes is not None and len(causes):
        first = causes.iloc[0] if hasattr(causes, "iloc") else causes[0]
        top = first.get("code") if hasattr(first, "get") else getattr(first, "code", None)
    if top is None and bad:
        top = bad[0].code
    s = run.scalars
    steps = float(s["step"].max()) if len(s) and s["step"].notna().any() else math.nan
    epochs = float(s["epoch"].max()) if len(s) and s["epoch"].notna().any() else math.nan
    val = curve(run, "val")
    vals = val["value"].to_numpy(dtype="float64") if len(val) else np.array([])
    fin = np.isfinite(vals)
    best = float(np.min(vals[fin])) if fin.any() else math.nan
    best_where = val["where"].iloc[int(np.flatnonzero(fin)[np.argmin(vals[fin])])] if fin.any() else None
    stopped = next((f for f in findings if f.code == "run_incomplete"), None)
    return {"run": name, "status": status, "top_cause": top, "top_finding": bad[0].title if bad else None,
            "verdict": verdict, "critical": sum(f.severity == "critical" for f in findings),
            "warnings": sum(f.severity == "warning" for f in findings), "steps": steps, "epochs": epochs,
            "stopped_early": stopped.title if stopped is not None else None, "best_val": best,
            "best_val_where": best_where, "final_val": float(vals[fin][-1]) if fin.any() else math.nan,
            "files": len(run.meta.get("files", []))}


def triage(runs: Any, **thresholds: Any) -> pd.DataFrame:
    """One row per run of ``runs`` (a :class:`~collapse_nb.runs.Runs`), worst first."""
    known = getattr(runs, "findings", None) if not thresholds else None     # Runs keeps each run's findings
    rows = [triage_row(name, run, findings=known(name) if known else None, **thresholds)
            for name, run in runs.items()]
    return triage_frame(rows + [unreadable_row(name, why) for name, why in runs.failed.items()])


def unreadable_row(name: str, why: str) -> dict:
    return {"run": name, "status": "unreadable", "verdict": why}


def triage_frame(rows: list[dict]) -> pd.DataFrame:
    """The triage table of rows made by :func:`triage_row` (or :func:`unreadable_row`), worst first."""
    df = pd.DataFrame(rows, columns=COLUMNS)
    if df.empty:
        return df
    df["_o"] = df["status"].map(STATUS_ORDER).fillna(9)
    df["_c"] = -df["critical"].fillna(0) * 10 - df["warnings"].fillna(0)
    return df.sort_values(["_o", "_c", "run"], kind="stable").drop(columns=["_o", "_c"]).reset_index(drop=True)
