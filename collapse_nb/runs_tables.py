"""Every run's tables as one table each, with a ``run`` column: :meth:`Runs.sql <collapse_nb.runs.Runs.sql>`.

Tables (the names a query can use): ``scalars``, ``epochs``, ``grads``, ``outputs`` (as on each
:class:`~collapse_nb.Run`), ``findings`` (one row per finding: ``run, rank, severity, code, check, title,
summary, score, details``; ``details`` is the finding's numbers as JSON text, ``rank`` its place in the run's
ranked findings), ``triage`` (:func:`collapse_nb.triage.triage`: one row per run, unreadable runs too) and any
table a reader added (``params``, ``optimizer``, ``histograms``, ``histogram_stats``). Only the tables a query
names are built. DuckDB is the engine (``pip install duckdb``).
"""
from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import pandas as pd

from .findings import _json, sort_findings

if TYPE_CHECKING:
    from .run import Run

RUN_TABLES = ("scalars", "epochs", "grads", "outputs")
FINDING_COLUMNS = ["run", "rank", "severity", "code", "check", "title", "summary", "score", "details"]


def run_frame(run: Run, table: str) -> pd.DataFrame:
    """One run's table ``table`` (``scalars``, ``epochs``, ``grads``, ``outputs`` or one of ``run.extra``)."""
    if table in RUN_TABLES:
        return getattr(run, table)
    t = run.extra.get(table)
    return t if t is not None else pd.DataFrame()


def findings_table(name: str, findings: list) -> pd.DataFrame:
    """One row per finding of the run ``name``, ranked as the report ranks them."""
    rows = [{"run": name, "rank": i, "severity": f.severity, "code": f.code, "check": f.check, "title": f.title,
             "summary": f.summary, "score": f.score, "details": json.dumps(_json(f.details), sort_keys=True)}
            for i, f in enumerate(sort_findings(findings))]
    return pd.DataFrame(rows, columns=FINDING_COLUMNS)


def plain(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with what an SQL engine or a Parquet dataset of many runs takes as is: categories as text, tuples
    and lists (a tensor's shape) as JSON text."""
    out = df.copy()
    for c in out.columns:
        col = out[c]
        if isinstance(col.dtype, pd.CategoricalDtype):
            out[c] = col.astype(object).where(col.notna(), None)
        elif col.dtype == object and col.map(lambda x: isinstance(x, (tuple, list, dict))).any():
            out[c] = [json.dumps(_json(x)) if isinstance(x, (tuple, list, dict)) else x for x in col]
    return out


def _findings_of(runs: Any, name: str) -> list:
    memo = getattr(runs, "findings", None)          # Runs keeps each run's findings once computed
    if callable(memo):
        return memo(name)
    from .diagnose import diagnose
    return diagnose(runs[name])


def table_names(runs: Any) -> list[str]:
    extra = sorted({k for run in runs for k in run.extra})
    return [*RUN_TABLES, *[k for k in extra if k not in RUN_TABLES], "findings", "triage"]


def build_table(runs: Any, table: str) -> pd.DataFrame:
    """The table ``table`` of every run of ``runs``, a ``run`` column first."""
    from .triage import triage_frame, triage_row, unreadable_row

    if table == "triage":
        rows = [triage_row(name, run, findings=_findings_of(runs, name)) for name, run in runs.items()]
        return triage_frame(rows + [unreadable_row(n, why) for n, why in runs.failed.items()])
    if table == "findings":
        parts = [findings_table(name, _findings_of(runs, name)) for name in runs.names]
    else:
        parts = [plain(run_frame(run, table)).assign(run=name) for name, run in runs.items()]
        parts = [p[["run", *[c for c in p.columns if c != "run"]]] for p in parts if len(p)]
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame(columns=FINDING_COLUMNS if table == "findings" else ["run"])
    return pd.concat(parts, ignore_index=True)


def sql(runs: Any, query: str) -> pd.DataFrame:
    """Run the SQL ``query`` over the tables of every run (see the module docstring) with DuckDB."""
    try:
        import duckdb
    except ImportError as exc:
        raise ImportError("Runs.sql needs DuckDB: pip install duckdb (or pip install 'collapse_nb[sql]')") from exc
    named = {w.lower() for w in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", query)}
    con = duckdb.connect()
    try:
        for table in table_names(runs):
            if table.lower() in named:
                con.register(table, build_table(runs, table))
        return con.execute(query).df()
    finally:
        con.close()


__all__ = ["sql", "build_table", "table_names", "findings_table", "run_frame", "plain", "RUN_TABLES"]
