"""Triage of a folder of runs past one machine: one task per run, on a Dask cluster or in this process.

:func:`triage_folder` finds the runs where it is called (:func:`collapse_nb.discovery.find_runs`: a walk of the
folders, no log is read), then each task reads one run (through the read cache, :mod:`collapse_nb.cache`),
diagnoses it once, returns its triage row (kept in the cache too, keyed by all the run's files and the thresholds:
a run none of whose files changed is not read or diagnosed again, unless its dataset is being written) and, with
``out``, writes its partitions of the Parquet dataset
(:mod:`collapse_nb.dataset`) from where it runs. The table is the one :meth:`collapse_nb.Runs.triage` gives.
Dask is optional (``pip install "dask[distributed]"``); without a ``client`` the tasks run here, one by one.
"""
from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import pandas as pd

from . import progress
from .errors import CollapseNBError


def run_task(rf: Any, format: str | None = None, cache: Any = None, out: str | None = None,
             thresholds: dict[str, Any] | None = None) -> dict[str, Any]:
    """Read, diagnose and (with ``out``) write one run (a :class:`~collapse_nb.discovery.RunFolder`):
    ``{"name", "row", "schemas"}``; a run that cannot be read gives its ``unreadable`` row."""
    from .cache import get_row, put_row, resolve, run_key
    from .diagnose import diagnose
    from .runs import _load_one
    from .triage import triage_row, unreadable_row

    store = resolve(cache)
    files = [rf.db] if getattr(rf, "db", None) is not None else rf.files
    extra = [getattr(rf, "db_run", None), thresholds or {}]
    key = run_key(files, format, extra) if store is not None and out is None else None
    row = get_row(store, key)
    if row is not None:                                # the run has not changed since it was triaged
        return {"name": rf.name, "row": row, "schemas": None}
    try:
        run = _load_one(rf, format, store)
    except CollapseNBError as exc:
        return {"name": rf.name, "row": unreadable_row(rf.name, str(getattr(exc, "reason", None) or exc)),
                "schemas": None}
    findings = diagnose(run, **(thresholds or {}))
    row = triage_row(rf.name, run, findings=findings)
    put_row(store, key, row, files, format, extra)
    schemas = None
    if out is not None:
        from .dataset import write_run
        schemas = write_run(out, rf.name, run, findings)
    return {"name": rf.name, "row": row, "schemas": schemas}


def _dask_map(client: Any):
    def run_map(fn, *iterables, **kwargs):
        futures = client.map(fn, *iterables, pure=False, **kwargs)
        return client.gather(futures)
    return run_map


def triage_folder(path: str | os.PathLike, client: Any = None, out: str | os.PathLike | None = None,
                  format: str | None = None, cache: Any = None, **thresholds: Any) -> pd.DataFrame:
    """One row per run under ``path``, worst first (:func:`collapse_nb.triage.triage`), each run read and diagnosed by
    a task on the Dask ``client`` (a ``distributed.Client``; ``None``: here). ``out``: also write the Parquet
    dataset there (:mod:`collapse_nb.dataset`), each run's partitions by its task; ``out`` must then be a folder
    every worker can write (shared storage). ``cache``: as :func:`collapse_nb.load` (``None``: each worker's own
    ``COLLAPSE_NB_CACHE_DIR``; a folder on shared storage shares it)."""
    from .runs import run_folders
    from .triage import triage_frame

    folders = run_folders(Path(path))
    dest = None if out is None else str(Path(out).resolve())
    kwargs = {"format": format, "cache": cache, "out": dest, "thresholds": thresholds}
    progress.report("runs", n=len(folders), where="here" if client is None else "cluster")
    if client is None:
        results = []
        for rf in folders:
            progress.report("run", name=rf.name, verb="triaging")
            results.append(run_task(rf, **kwargs))
        run_map = None
    else:
        _need_distributed()
        run_map = _dask_map(client)
        results = run_map(run_task, folders, **kwargs)
    table = triage_frame([r["row"] for r in results])
    if dest is not None:
        from .dataset import finish
        finish(dest, [(r["name"], r["schemas"]) for r in results if r["schemas"] is not None], table, run_map)
    return table


def _need_distributed() -> None:
    try:
        importlib.import_module("distributed")
    except ImportError as exc:
        raise ImportError('triage on a Dask cluster needs dask.distributed: pip install "dask[distributed]" '
                          '(or pip install "collapse_nb[dask]")') from exc


def connect(address: str) -> Any:
    """A ``distributed.Client`` of the scheduler at ``address`` (``tcp://host:8786``)."""
    _need_distributed()
    from distributed import Client
    return Client(address)


__all__ = ["triage_folder", "run_task", "connect"]
