"""Many runs as one Parquet dataset, partitioned by run (hive style), that DuckDB, pandas, polars and Spark read.

Layout under ``OUT``::

    OUT/scalars/run=<name>/part-0.parquet      one folder per table: scalars, epochs, grads, outputs, findings,
    OUT/epochs/run=<name>/part-0.parquet       and the tables readers add (params, optimizer, histograms, ...)
    ...
    OUT/triage.parquet                         one row per run (unreadable runs too), worst first

``<name>`` is the run's name percent-encoded as a URI segment (``mlruns/1/abc`` is ``run=mlruns%2F1%2Fabc``),
which pyarrow (so pandas), DuckDB (``hive_partitioning=true``), polars and Spark decode back. The ``run`` column
is in the folder name, not in the files. A run without rows for a table has no folder there.

Each run's partitions can be written where the run is read (a Dask worker, :mod:`collapse_nb.cluster`); the
files of one table then differ in columns (one run logged ``val_acc``, another did not), so :func:`finish`
gives every file of a table the same columns and types (a column a run lacks is null there; one logged as an
integer by a run and a float by another is a float), which readers that take the first file's schema need.
Every file is written to a hidden temporary name and renamed into place. Writing again over ``OUT`` replaces the
partitions of the runs written; those of runs no longer there are left.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import quote

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ._atomic import atomic_target
from .runs_tables import RUN_TABLES, findings_table, plain, run_frame

if TYPE_CHECKING:
    from .run import Run

PART = "part-0.parquet"


def partition_value(name: str) -> str:
    """``name`` as a hive partition value: percent-encoded (``/`` as ``%2F``, ``=`` as ``%3D``, ``%`` as ``%25``)."""
    return quote(name, safe="")


def partition_dir(out: str | os.PathLike, table: str, name: str) -> Path:
    return Path(out) / table / f"run={partition_value(name)}"


def _arrow(df: pd.DataFrame) -> pa.Table:
    """``df`` as an Arrow table without the pandas metadata (one run's dtypes must not decide the dataset's)."""
    return pa.Table.from_pandas(plain(df), preserve_index=False).replace_schema_metadata(None)


def _write(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_target(path) as tmp:                                 # hidden: no reader lists it
        pq.write_table(table, tmp)


def write_run(out: str | os.PathLike, name: str, run: Run, findings: list) -> dict[str, pa.Schema]:
    """Write the partitions of one run; the schema of each table written (for :func:`finish`)."""
    frames = {t: run_frame(run, t) for t in (*RUN_TABLES, *[k for k in run.extra if k not in RUN_TABLES])}
    frames["findings"] = findings_table(name, findings).drop(columns=["run"])
    schemas = {}
    for table, df in frames.items():
        path = partition_dir(out, table, name) / PART
        if not len(df):
            if path.exists():                   # an earlier write of this run had rows here
                path.unlink()
            continue
        t = _arrow(df)
        _write(t, path)
        schemas[table] = t.schema
    return schemas


def unified(schemas: list[pa.Schema]) -> pa.Schema:
    """One schema for the files of a table: every column seen, in the order first seen; a column whose files
    disagree on its type is a float64 when all are numbers, else text."""
    order: dict[str, list[pa.DataType]] = {}
    for s in schemas:
        for f in s:
            order.setdefault(f.name, []).append(f.type)
    fields = []
    for name, types in order.items():
        kinds = {t for t in types if not pa.types.is_null(t)}
        if not kinds:
            typ = pa.null()
        elif len(kinds) == 1:
            typ = kinds.pop()
        elif all(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) for t in kinds):
            typ = pa.float64()
        else:
            typ = pa.string()
        fields.append(pa.field(name, typ))
    return pa.schema(fields)


def conform(path: str | os.PathLike, schema: pa.Schema) -> None:
    """Rewrite the file ``path`` with ``schema``'s columns (nulls where it has none) and types."""
    t = pq.read_table(path, partitioning=None)
    cols = []
    for f in schema:
        if f.name in t.column_names:
            col = t.column(f.name)
            cols.append(col if col.type == f.type else col.cast(f.type, safe=False))
        else:
            cols.append(pa.nulls(len(t), f.type))
    _write(pa.Table.from_arrays(cols, schema=schema), Path(path))


def finish(out: str | os.PathLike, written: list[tuple[str, dict[str, pa.Schema]]], triage: pd.DataFrame,
           run_map: Callable[..., list] | None = None) -> dict[str, Any]:
    """Give every file of a table the same schema and write ``OUT/triage.parquet``. ``written``: per run its name
    and the schemas :func:`write_run` gave; ``run_map(fn, paths, schemas)`` runs the rewrites elsewhere (a Dask
    cluster) and returns when they are done. Returns what was written: ``{"tables", "runs", "rewritten"}``."""
    by_table: dict[str, list[tuple[str, pa.Schema]]] = {}
    for name, schemas in written:
        for table, s in schemas.items():
            by_table.setdefault(table, []).append((name, s))
    todo_paths, todo_schemas = [], []
    for table, items in by_table.items():
        target = unified([s for _, s in items])
        for name, s in items:
            if not s.equals(target):
                todo_paths.append(str(partition_dir(out, table, name) / PART))
                todo_schemas.append(target)
    if run_map is not None and todo_paths:
        run_map(conform, todo_paths, todo_schemas)
    else:
        for p, s in zip(todo_paths, todo_schemas):
            conform(p, s)
    Path(out).mkdir(parents=True, exist_ok=True)
    _write(pa.Table.from_pandas(plain(triage), preserve_index=False), Path(out) / "triage.parquet")
    return {"tables": sorted(by_table), "runs": len(written), "rewritten": len(todo_paths)}


__all__ = ["write_run", "finish", "unified", "conform", "partition_value", "partition_dir", "PART"]
