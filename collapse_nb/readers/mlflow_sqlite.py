"""MLflow's SQLite tracking store: the ``mlflow.db`` that ``mlflow.set_tracking_uri("sqlite:///mlflow.db")`` writes.

One database holds many runs, so besides the :class:`MlflowSqliteReader` (a database of one run, read as
one file) this module gives :func:`list_runs` (the runs in a database) and :func:`read_run` (one of them,
as a :class:`~collapse_nb.readers.base.ReadResult`); :func:`collapse_nb.load_runs` reads every run of a
database apart. The tables read::

    experiments   experiment_id, name
    runs          run_uuid, name, status, start_time, end_time, experiment_id, lifecycle_stage
    metrics       key, value, timestamp (ms), step, run_uuid, is_nan
    params        key, value, run_uuid
    tags          key, value, run_uuid

The database is opened read-only (``mode=ro``, ``query_only``, ``trusted_schema`` off) and only
``SELECT`` from those tables (never a view of the same name) is run: nothing in the file is executed.
Deleted runs (``lifecycle_stage = 'deleted'``) are left out, as MLflow's UI leaves them out.

Each run is read as the file-store reader (:mod:`.mlflow_store`) reads ``mlruns/<exp>/<run>/``: a metric
keeps its name (``train/loss``, so the phase comes from it), each value its step and wall time; NaN
(``is_nan``) is NaN again and the largest float MLflow writes for an infinity is an infinity again; a run
that logged ``epoch`` gives each value the epoch logged at or before its step (the ``epoch`` series is not
a metric); a metric logged without a step (all its values at step 0) is numbered in the order logged.
Params are configuration (``a/b`` as ``a.b``), tags ``mlflow.tags.<key>``, the run's name, status
(``FINISHED``, ``FAILED``, ``KILLED``, ``RUNNING``), start and end time and experiment
``mlflow.run_name``, ``mlflow.status``, ``mlflow.start_time``, ``mlflow.end_time``, ``mlflow.experiment``.
Rows are numbered (``line``) in the order they were logged (by timestamp), so a run resumed into the
same MLflow run whose steps go back shows as a restart.
"""
from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from ..errors import SeveralMlflowRunsError, UnreadableFileError
from .base import ReadResult, Reader, register

SQLITE_MAGIC = b"SQLite format 3\x00"
FORMAT = "mlflow-sqlite"

#: The columns an MLflow store has in every schema version this reader reads.
_NEEDED = {"runs": ("run_uuid", "status", "experiment_id"),
           "metrics": ("key", "value", "timestamp", "run_uuid"),
           "params": ("key", "value", "run_uuid")}
_OPTIONAL = ("experiments", "tags")
_FLOAT_MAX = np.finfo("float64").max         # what MLflow's SQL store writes for +inf (and -max for -inf)


class NotAnMlflowStoreError(UnreadableFileError):
    """An SQLite database that is not an MLflow tracking store (no ``runs``/``metrics``/``params`` tables)."""


def is_sqlite(head: bytes) -> bool:
    return head.startswith(SQLITE_MAGIC)


@dataclass(frozen=True)
class DbRun:
    """One MLflow run of a database: its id, name, experiment and status."""

    run_id: str
    run_name: str | None
    experiment: str
    status: str | None

    @property
    def name(self) -> str:
        """``<experiment name or id>/<run name or run id>``."""
        return f"{self.experiment}/{self.run_name or self.run_id}"


@contextmanager
def _open(path: Path) -> Iterator[tuple[sqlite3.Connection, dict[str, set[str]]]]:
    """The database, read-only, and its MLflow tables' columns; sqlite3 errors become errors naming the file."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise UnreadableFileError(path, f"cannot read: {exc.strerror or exc}") from exc
    if not is_sqlite(head):
        raise UnreadableFileError(path, "not an SQLite database: its header is not 'SQLite format 3' (not a "
                                        "database, or its first bytes are damaged)")
    conn = None
    try:
        conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
        conn.execute("PRAGMA query_only = ON")
        try:
            conn.execute("PRAGMA trusted_schema = OFF")
        except sqlite3.Error:                       # SQLite before 3.31: no such pragma (nothing to turn off)
            pass
        yield conn, _schema(conn, path)
    except sqlite3.Error as exc:
        raise UnreadableFileError(path, f"an SQLite database that cannot be read ({type(exc).__name__}: {exc}): "
                                        f"corrupt, cut short, or not a database") from exc
    finally:
        if conn is not None:
            conn.close()


def _schema(conn: sqlite3.Connection, path: Path) -> dict[str, set[str]]:
    tables = {name for name, kind in conn.execute("SELECT name, type FROM sqlite_master") if kind == "table"}
    columns = {t: {row[1] for row in conn.execute(f'PRAGMA table_info("{t}")')}
               for t in (*_NEEDED, *_OPTIONAL) if t in tables}
    missing = [f"{t}({', '.join(c for c in cols if c not in columns.get(t, ()))})" if t in columns else t
               for t, cols in _NEEDED.items() if not set(cols) <= columns.get(t, set())]
    if missing:
        have = ", ".join(sorted(tables)[:12]) or "none"
        raise NotAnMlflowStoreError(path, f"an SQLite database, but not an MLflow tracking store: it lacks "
                                          f"{'; '.join(missing)} (its tables: {have})")
    return columns


def _col(columns: dict[str, set[str]], table: str, col: str, alias: str, default: str = "NULL") -> str:
    return f"{alias}.{col}" if col in columns.get(table, ()) else default


def list_runs(path: str | Path) -> list[DbRun]:
    """The (not deleted) MLflow runs in the database at ``path``, by experiment then start time."""
    path = Path(path)
    with _open(path) as (conn, cols):
        run_name = _col(cols, "runs", "name", "r")
        if "tags" in cols:          # early schemas kept the run's name only in the mlflow.runName tag
            run_name = (f"COALESCE(NULLIF({run_name}, ''), (SELECT t.value FROM tags t WHERE t.run_uuid = r.run_uuid "
                        f"AND t.key = 'mlflow.runName'))")
        exp = "NULL"
        if {"experiment_id", "name"} <= cols.get("experiments", set()):
            exp = "(SELECT e.name FROM experiments e WHERE e.experiment_id = r.experiment_id)"
        alive = "WHERE COALESCE(r.lifecycle_stage, 'active') != 'deleted'" if "lifecycle_stage" in cols["runs"] \
            else ""
        rows = conn.execute(f"SELECT r.run_uuid, {run_name}, r.experiment_id, {exp}, r.status FROM runs r {alive} "
                            f"ORDER BY r.experiment_id, {_col(cols, 'runs', 'start_time', 'r', '0')}, r.run_uuid"
                            ).fetchall()
    return [DbRun(str(rid), str(name) if name else None, str(ename) if ename else str(eid),
                  str(status) if status is not None else None) for rid, name, eid, ename, status in rows]


def read_run(path: str | Path, run_id: str | None = None) -> ReadResult:
    """One MLflow run of the database at ``path`` (``run_id``; None: the only run, else an error naming them)."""
    path = Path(path)
    if run_id is None:
        found = list_runs(path)
        if not found:
            raise UnreadableFileError(path, "an MLflow tracking store that holds no run")
        if len(found) > 1:
            raise SeveralMlflowRunsError(path, [r.name for r in found])
        run_id = found[0].run_id
    with _open(path) as (conn, cols):
        info = _run_info(conn, cols, path, run_id)
        metrics = _metrics(conn, cols, run_id)
        params = conn.execute("SELECT key, value FROM params WHERE run_uuid = ? ORDER BY key", (run_id,)).fetchall()
        tags = conn.execute("SELECT key, value FROM tags WHERE run_uuid = ? ORDER BY key", (run_id,)).fetchall() \
            if {"key", "value", "run_uuid"} <= cols.get("tags", set()) else []
    config, where = {}, {}
    for key, value in params:
        config[str(key).replace("/", ".")] = "" if value is None else str(value)
        where[str(key).replace("/", ".")] = f"params table, run {run_id}"
    for key, value in tags:
        k = "mlflow.tags." + str(key).replace("/", ".")
        config[k], where[k] = ("" if value is None else str(value)), f"tags table, run {run_id}"
    tag_name = dict(tags).get("mlflow.runName")
    config.update({k: v for k, v in {
        "mlflow.run_id": run_id, "mlflow.run_name": info["name"] or tag_name, "mlflow.status": info["status"],
        "mlflow.start_time": info["start_time"], "mlflow.end_time": info["end_time"],
        "mlflow.experiment": info["experiment"]}.items() if v is not None})
    for k in ("mlflow.run_name", "mlflow.status", "mlflow.start_time", "mlflow.end_time"):
        if k in config:
            where[k] = f"runs table, run {run_id}"
    scalars, notes = _scalars(metrics)
    if str(info["status"]).upper() == "RUNNING" and info["end_time"] is None:
        notes.append("MLflow says the run is RUNNING and it has no end time: it was killed without ending its run, "
                     "or it is still being written")
    notes.insert(0, f"MLflow run {run_id} ({info['experiment']}/{info['name'] or tag_name or run_id}) of the "
                    f"SQLite store")
    return ReadResult(source=str(path), format=FORMAT, scalars=scalars, config=config, config_where=where,
                      notes=notes)


def _run_info(conn: sqlite3.Connection, cols: dict[str, set[str]], path: Path, run_id: str) -> dict:
    exp = "NULL"
    if {"experiment_id", "name"} <= cols.get("experiments", set()):
        exp = "(SELECT e.name FROM experiments e WHERE e.experiment_id = r.experiment_id)"
    row = conn.execute(f"SELECT {_col(cols, 'runs', 'name', 'r')}, r.status, "
                       f"{_col(cols, 'runs', 'start_time', 'r')}, {_col(cols, 'runs', 'end_time', 'r')}, "
                       f"r.experiment_id, {exp} FROM runs r WHERE r.run_uuid = ?", (run_id,)).fetchone()
    if row is None:
        raise UnreadableFileError(path, f"no MLflow run {run_id!r} in this store")
    name, status, start, end, eid, ename = row

    def seconds(t: object) -> float | None:
        return float(t) / 1000.0 if isinstance(t, (int, float)) else None

    return {"name": str(name) if name else None, "status": None if status is None else str(status),
            "start_time": seconds(start), "end_time": seconds(end), "experiment": str(ename or eid)}


def _metrics(conn: sqlite3.Connection, cols: dict[str, set[str]], run_id: str) -> pd.DataFrame:
    """The run's metric rows in one query, in the order they were logged."""
    m = cols["metrics"]
    step = "step" if "step" in m else "0"
    is_nan = "is_nan" if "is_nan" in m else "0"
    rows = conn.execute(f"SELECT key, value, {step}, timestamp, {is_nan} FROM metrics WHERE run_uuid = ? "
                        f"ORDER BY timestamp, {step}", (run_id,)).fetchall()
    return pd.DataFrame.from_records(rows, columns=["key", "value", "step", "timestamp", "is_nan"], nrows=len(rows))


def _scalars(m: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Raw scalars from the metric rows (numpy throughout, no loop per row), and notes on what was done."""
    notes: list[str] = []
    value = pd.to_numeric(m["value"], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    value = np.where(pd.to_numeric(m["is_nan"], errors="coerce").fillna(0).to_numpy() != 0, np.nan, value)
    inf = np.abs(value) >= _FLOAT_MAX
    if inf.any():
        value = np.where(inf, np.sign(value) * np.inf, value)
        notes.append(f"{int(inf.sum())} value(s) at the largest float, what MLflow writes for an infinity: read as "
                     f"infinities")
    step = pd.to_numeric(m["step"], errors="coerce").fillna(0).to_numpy(dtype="int64")
    wall = pd.to_numeric(m["timestamp"], errors="coerce").to_numpy(dtype="float64", na_value=np.nan) / 1000.0
    key = m["key"].astype(str).to_numpy(dtype=object)
    df = pd.DataFrame({"raw_name": key, "value": value, "step": step, "wall_time": wall,
                       "line": np.arange(1, len(m) + 1, dtype="int64")})
    is_epoch = key == "epoch"
    if is_epoch.any():
        ep = df[is_epoch].sort_values("step", kind="stable")
        ep_steps, ep_vals = ep["step"].to_numpy(dtype="float64"), ep["value"].to_numpy(dtype="float64")
        df = df[~is_epoch].reset_index(drop=True)
        idx = np.searchsorted(ep_steps, df["step"].to_numpy(dtype="float64"), side="right") - 1
        df["epoch"] = np.where(idx >= 0, ep_vals[np.maximum(idx, 0)], np.nan)
        notes.append("epochs from the run's 'epoch' metric (the epoch logged at or before each step)")
    if len(df):
        g = df.groupby("raw_name", sort=False)["step"]
        no_step = ((g.transform("max") == 0) & (g.transform("min") == 0) & (g.transform("size") > 1)).to_numpy()
        if no_step.any():
            df.loc[no_step, "step"] = df[no_step].groupby("raw_name", sort=False).cumcount().to_numpy()
            names = sorted(set(df.loc[no_step, "raw_name"]))
            notes.append(f"logged without a step (every value at step 0), numbered in the order logged: "
                         f"{', '.join(names[:8])}{', ...' if len(names) > 8 else ''}")
    return df, notes


@register
class MlflowSqliteReader(Reader):
    name = FORMAT
    description = ("MLflow SQLite tracking store (mlflow.db): experiments, runs, metrics, params, tags "
                   "(one run per load)")

    def sniff(self, head: bytes, path: Path) -> float:
        if is_sqlite(head):
            return 0.99
        # a damaged header on a file named as a database: read, to say so (no reader would otherwise)
        return 0.01 if Path(path).suffix.lower() in (".db", ".sqlite", ".sqlite3") and b"\x00" in head[:100] else 0.0

    def read(self, path: Path) -> ReadResult:
        return read_run(path)


__all__ = ["DbRun", "FORMAT", "MlflowSqliteReader", "NotAnMlflowStoreError", "SQLITE_MAGIC", "is_sqlite",
           "list_runs", "read_run"]
