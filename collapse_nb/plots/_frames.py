"""Plot functions take a Run or a tidy DataFrame: the tables accepted, and how their rows are placed.

Accepted DataFrames (every plot's docstring says which it takes):

- the **long scalars table** (``run.scalars``: ``name, value`` and any of ``source, segment, phase,
  epoch, batch, step, raw_name, param``), several runs' tables concatenated with a ``run`` column;
- the **placed tables** the plots draw (:mod:`collapse_nb.plots._data`): ``metric_over_time``,
  ``outputs_over_time``, ``grads_over_time``: rows with an ``x`` position are drawn where they are;
- the **derived tables** ``run.outputs`` and ``run.grads`` (time columns, no ``x``).

Rows without ``x`` are placed as the other plots place them (:mod:`collapse_nb.timeaxis`): a long
scalars table becomes a :class:`~collapse_nb.run.Run` per value of its ``run`` column, whose metric
time axes are those of a loaded run; other tables get the :func:`~collapse_nb.timeaxis.timeline` of
their own rows, one per ``run``. The axis label says how (one line per run when runs differ).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..timeaxis import placement
from ._data import MissingDataError

#: The column that tells concatenated runs apart.
RUN_COLUMN = "run"


def is_run(obj: Any) -> bool:
    return hasattr(obj, "scalars") and hasattr(obj, "meta")


def check_input(obj: Any, func: str) -> None:
    """A Run or a DataFrame, else a TypeError naming what was given (matplotlib must be there to draw)."""
    from ._common import require_matplotlib
    require_matplotlib()
    if not (is_run(obj) or isinstance(obj, pd.DataFrame)):
        raise TypeError(f"{func}() needs a collapse_nb Run (from collapse_nb.load) or a tidy DataFrame; got "
                        f"{type(obj).__name__}")


def several_runs(df: pd.DataFrame) -> bool:
    """Whether ``df`` holds the rows of several runs (a ``run`` column with more than one value)."""
    return RUN_COLUMN in df.columns and df[RUN_COLUMN].nunique(dropna=False) > 1


def resolve_hue(df: pd.DataFrame, hue: str | None, func: str, what: str, default: str | None = None) -> str | None:
    """The column to colour by: ``hue`` as given, else ``run`` when ``df`` holds several runs, else ``default``;
    a ``hue`` that is not a column of ``df`` is a ``ValueError`` naming ``func`` and what ``df`` is."""
    if hue is None:
        hue = RUN_COLUMN if several_runs(df) else default
    if hue is not None and hue not in df.columns:
        raise ValueError(f"{func}(): hue={hue!r} is not a column of {what} (they have: "
                         f"{', '.join(map(str, df.columns))})")
    return hue


def require_columns(df: pd.DataFrame, cols: tuple[str, ...], func: str, what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise MissingDataError(f"{func}() needs {what} with columns {', '.join(cols)}; missing {', '.join(missing)} "
                               f"(the DataFrame has: {', '.join(map(str, df.columns)) or 'no columns'})")


def groups(df: pd.DataFrame, by: str | None = RUN_COLUMN) -> list[tuple[Any, pd.DataFrame]]:
    """``[(level, rows)]`` per value of ``by`` (in order of appearance), or ``[(None, df)]`` without it."""
    if by is None or by not in df.columns:
        return [(None, df)]
    key = df[by].astype(object).where(df[by].notna(), None)
    return [(k, df[(key == k).to_numpy(dtype=bool)] if k is not None else df[key.isna().to_numpy(dtype=bool)])
            for k in dict.fromkeys(key)]


def as_scalars(df: pd.DataFrame, func: str) -> pd.DataFrame:
    """A long table as ``run.scalars`` (the columns a Run has, with their dtypes; absent ones empty)."""
    from ..tables import SCALAR_DTYPES
    require_columns(df, ("name", "value"), func, "a long scalars table (run.scalars)")
    n = len(df)
    out = {}
    for c, dtype in SCALAR_DTYPES.items():
        if c in df.columns:
            col = df[c]
            if dtype in ("Int64", "Float64"):
                col = pd.to_numeric(col, errors="coerce")
                col = col.round() if dtype == "Int64" else col
            elif dtype == "category":
                col = col.astype(object).where(col.notna(), None).map(lambda v: v if v is None else str(v))
            out[c] = col.astype(dtype).to_numpy() if dtype != "category" else pd.Categorical(col)
        elif c == "segment":
            out[c] = pd.array(np.zeros(n, dtype=np.int64), dtype="Int64")
        elif c == "raw_name":
            out[c] = pd.Categorical(df["name"].astype(str))
        else:
            out[c] = pd.array([pd.NA] * n, dtype=dtype) if dtype != "category" else pd.Categorical([None] * n)
    return pd.DataFrame(out, index=pd.RangeIndex(n))


def as_runs(data: Any, func: str, by: str | None = RUN_COLUMN) -> list[tuple[Any, Any]]:
    """``[(run label, Run)]``: the run itself, or one Run per ``by`` value of a long scalars table."""
    if is_run(data):
        return [(None, data)]
    from ..run import Run
    return [(k, Run(scalars=as_scalars(rows, func), meta={"files": {}})) for k, rows in groups(data, by)]


def is_long(df: pd.DataFrame) -> bool:
    """A long scalars table (``name`` and ``value``), not one of the placed or derived tables."""
    return "name" in df.columns and "value" in df.columns and "x" not in df.columns


def place(df: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """``df`` with an ``x`` column (kept when it has one) and the axis label.

    Without ``x``, each run's rows (``run`` column) are placed on the :func:`~collapse_nb.timeaxis.timeline`
    of its own rows; rows that cannot be placed are left out and counted in ``attrs["unplaced"]``."""
    if "x" in df.columns:
        out = df.assign(x=pd.to_numeric(df["x"], errors="coerce"))
        return out, str(df.attrs.get("xlabel", "x"))
    parts, labels = [], {}
    unplaced: dict[str, int] = {}
    for k, rows in groups(df):
        tl = placement.timeline(rows)
        if tl.kind is not None:
            x = tl.positions(rows)
            label = tl.label
        else:                                         # per-epoch values only: at their epoch
            x = placement.floats(rows["epoch"]) if "epoch" in rows.columns else np.full(len(rows), np.nan)
            label = "epoch"
        ok = ~np.isnan(x)
        for s, c in pd.Series(placement.sources_of(rows)[~ok]).value_counts().items():
            unplaced[str(s)] = unplaced.get(str(s), 0) + int(c)
        parts.append(rows.assign(x=x)[ok])
        labels[k] = label
    out = pd.concat(parts) if parts else df.assign(x=pd.Series([], dtype=float))
    if "segment" in out.columns:
        out = out.sort_values([c for c in (RUN_COLUMN, "segment", "x") if c in out.columns], kind="stable")
    out = out.reset_index(drop=True)
    out.attrs["unplaced"] = unplaced
    return out, axis_label(labels)


def axis_label(labels: dict[Any, str]) -> str:
    """One axis label for several runs' axes: the shared one, else one line per run."""
    distinct = list(dict.fromkeys(labels.values()))
    if len(distinct) <= 1:
        return distinct[0] if distinct else "x"
    return "\n".join(f"{k}: {v}" for k, v in labels.items())


def segment_column(df: pd.DataFrame) -> np.ndarray:
    return np.nan_to_num(placement.floats(df["segment"]), nan=0.0).astype(int) if "segment" in df.columns \
        else np.zeros(len(df), dtype=int)
