"""Folders of many runs: :func:`load_runs` and :class:`Runs`.

``load_runs(path)`` finds the runs under ``path`` (:mod:`collapse_nb.discovery` has the rules), reads
each one as :func:`collapse_nb.load` reads a folder, and returns them as a :class:`Runs`: a sequence
of :class:`~collapse_nb.Run`, each named by its path relative to ``path`` (``run.meta["run_name"]``).
A run that cannot be read is listed in ``Runs.failed`` with the reason, never dropped silently. A
Lightning ``version_N`` whose steps continue a sibling's is linked to it
(``run.meta["resumed_from"]``). :meth:`Runs.triage` says which runs failed and how. Each MLflow run of an
SQLite store (``mlflow.db``) is a run of its own, named ``<experiment>/<run name>``.
"""
from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Iterator

import pandas as pd

from . import progress
from .cache import resolve as resolve_cache
from .discovery import RunFolder, find_runs
from .errors import CollapseNBError, MissingPathError, NothingReadableError
from .loading import assemble, read_database_run, read_folder_files
from .run import Run


class Runs(Sequence):
    """The runs of a folder, in name order; index by position or by name (``runs["version_1"]``)."""

    def __init__(self, root: Path, runs: list[Run], names: list[str], failed: dict[str, str]):
        self.root = Path(root)
        self._runs = list(runs)
        self.names = list(names)
        #: ``{name: reason}`` of the runs found but not readable
        self.failed = dict(failed)

    def __len__(self) -> int:
        return len(self._runs)

    def __iter__(self) -> Iterator[Run]:
        return iter(self._runs)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            try:
                return self._runs[self.names.index(key)]
            except ValueError:
                raise KeyError(f"no run named {key!r}; runs: {', '.join(self.names[:20])}") from None
        if isinstance(key, slice):
            return Runs(self.root, self._runs[key], self.names[key], {})
        return self._runs[key]

    def __repr__(self) -> str:
        more = f", {len(self.failed)} unreadable" if self.failed else ""
        return f"<Runs: {len(self)} run(s) under {self.root}{more}>"

    def items(self) -> Iterator[tuple[str, Run]]:
        return zip(self.names, self._runs)

    def findings(self, name: str) -> list:
        """:func:`collapse_nb.diagnose` of the run ``name`` (computed once, then kept)."""
        memo = self.__dict__.setdefault("_findings", {})
        if name not in memo:
            from .diagnose import diagnose
            memo[name] = diagnose(self[name])
        return memo[name]

    def status(self, name: str) -> str:
        """The report's status word of the run ``name`` (``broken``, ``suspicious``, ``healthy``, ...)."""
        from .diagnose import root_causes
        from .report.document import make_verdict
        f = self.findings(name)
        return make_verdict(f, root_causes(f))[0]

    def healthy(self) -> list[str]:
        """The names of the runs that came out healthy."""
        return [n for n in self.names if self.status(n) == "healthy"]

    def compare(self, name: str, with_: str | list[str] | None = None) -> Any:
        """:func:`collapse_nb.compare` of the run ``name`` with ``with_`` (a run's name, or several: the first is the
        reference, the others measure the run-to-run noise), by default with the healthy sibling whose
        configuration differs least (:func:`collapse_nb.compare.closest`), and the healthy repeats of it (the same
        configuration but for the seed) as the run-to-run noise. Raises ``ValueError`` when no run is healthy and
        none is named."""
        from .compare import closest, compare, repeats_of
        if with_ is None:
            healthy = [n for n in self.healthy() if n != name]
            if not healthy:
                raise ValueError(f"no healthy run beside {name!r} to compare with (statuses: "
                                 + ", ".join(f"{n} {self.status(n)}" for n in self.names[:10])
                                 + "); name one: compare(name, with_=...)")
            nearest = closest(self[name], [(n, self[n]) for n in healthy])
            assert nearest is not None            # (there are healthy candidates)
            best = nearest[0]
            with_ = [best] + [n for n, _ in repeats_of(self[best], [(n, self[n]) for n in healthy if n != best])]
        names = [with_] if isinstance(with_, str) else list(with_)
        for n in [name, *names]:
            self[n]                                      # a clear KeyError for a name that is not a run
        return compare(self[name], self[names[0]], findings=self.findings(name),
                       reference_findings=self.findings(names[0]), others=[self[n] for n in names[1:]])

    def sql(self, query: str) -> pd.DataFrame:
        """The result of the SQL ``query`` (DuckDB) over every run's ``scalars``, ``epochs``, ``grads``, ``outputs``,
        ``findings`` and ``triage``, each with a ``run`` column: see :mod:`collapse_nb.runs_tables`."""
        from .runs_tables import sql
        return sql(self, query)

    def triage(self, client: Any = None, **thresholds: Any) -> pd.DataFrame:
        """One row per run, worst first: see :func:`collapse_nb.triage.triage`. With a Dask ``client``
        (``distributed.Client``), the runs under :attr:`root` are read and diagnosed again there, one task per run
        (:func:`collapse_nb.cluster.triage_folder`): the same table, computed on the cluster."""
        if client is not None:
            from .cluster import triage_folder
            return triage_folder(self.root, client=client, **thresholds)
        from .triage import triage
        return triage(self, **thresholds)


def load_runs(path: str | os.PathLike, format: str | None = None, cache: Any = None) -> Runs:
    """The runs under ``path`` (a folder of runs, or one run), each read as :func:`collapse_nb.load` reads a
    folder (``cache`` as there: files read before are not read again). Raises
    :class:`~collapse_nb.errors.NothingReadableError` when no run is found."""
    root = Path(path)
    folders = run_folders(root)
    progress.report("runs", n=len(folders), where="here")
    runs, names, failed = [], [], {}
    for rf in folders:
        progress.report("run", name=rf.name, verb="reading")
        try:
            runs.append(_load_one(rf, format, cache))
            names.append(rf.name)
        except CollapseNBError as exc:
            failed[rf.name] = str(getattr(exc, "reason", None) or exc)
    _link_resumed(runs, names)
    return Runs(root, runs, names, failed)


def run_folders(root: Path) -> list[RunFolder]:
    """The runs under ``root`` (:func:`collapse_nb.discovery.find_runs`); raises when ``root`` is missing or holds no
    run."""
    if not root.exists():
        raise MissingPathError(root)
    folders = find_runs(root)
    if not folders:
        raise NothingReadableError(f"{root}: no run found (no folder holds a training log any reader recognises)")
    return folders


def _load_one(rf: RunFolder, format: str | None, cache: Any = None) -> Run:
    ignored: list[dict[str, str]] = []
    if rf.db is not None:                   # one MLflow run of an SQLite store
        run = assemble([read_database_run(rf.db, rf.db_run)], ignored)
        run.meta["run_name"] = rf.name
        run.meta["run_folder"] = str(rf.path)
        return run
    store = resolve_cache(cache)
    results = read_folder_files(rf.path, rf.files, format, ignored, store)
    run = assemble(results, ignored)
    if store is not None:
        run.meta["cache"] = store.stats()
    run.meta["run_name"] = rf.name
    run.meta["run_folder"] = str(rf.path)
    return run


_VERSION = re.compile(r"^(?P<parent>.*?)(?:^|/)version_(?P<n>\d+)$")


def _span(steps: pd.Series) -> tuple[float, float, float] | None:
    """``(first, last, logging interval)`` of a run's steps, or None when it has none."""
    s = pd.to_numeric(steps, errors="coerce").dropna().astype("float64")
    if not len(s):
        return None
    u = pd.Series(sorted(set(s)))
    return float(u.iloc[0]), float(u.iloc[-1]), float(u.diff().median()) if len(u) > 1 else 1.0


def _continues(earlier: tuple[float, float, float], later: tuple[float, float, float]) -> bool:
    """Whether a run whose steps span ``later`` resumes one that spans ``earlier``: its first step follows the
    earlier one's last within two logging intervals or a tenth of it (a run resumed from a checkpoint)."""
    first, last_before, every = later[0], earlier[1], earlier[2]
    return first > 0 and last_before <= first and first - last_before <= max(0.1 * last_before, 2 * every, 1)


def _link_resumed(runs: list[Run], names: list[str]) -> None:
    """``meta["resumed_from"]`` for a Lightning ``version_N`` whose steps continue those of an earlier
    ``version_M`` beside it (:func:`_continues`)."""
    spans = {}
    for run, name in zip(runs, names):
        m = _VERSION.match(name)
        span = _span(run.scalars["step"]) if m and "step" in run.scalars else None
        if m and span is not None:
            spans[name] = (m["parent"], int(m["n"]), span)
    for run, name in zip(runs, names):
        if name not in spans:
            continue
        parent, n, span = spans[name]
        earlier = [(k, v) for k, v in spans.items() if v[0] == parent and v[1] < n and _continues(v[2], span)]
        if earlier:
            prev = max(earlier, key=lambda kv: kv[1][1])[0]
            run.meta["resumed_from"] = prev
            run.meta.setdefault("notes", []).append(f"resumed from {prev}: its steps continue that run's "
                                                    f"(from step {span[0]:,.0f})")


def resumed_chain(run: Run, folders: list[RunFolder]) -> list[str] | None:
    """The names of ``folders`` in order when they are Lightning ``version_N`` siblings each of whose steps (in
    ``run``, the folders read as one) continue the one before: one run resumed into new folders. Else None."""
    matches = [(m, rf) for rf in folders if (m := _VERSION.match(rf.name))]
    if len(folders) < 2 or len(matches) != len(folders) or len({m["parent"] for m, _ in matches}) != 1:
        return None
    s = run.scalars
    if "step" not in s or s.empty:
        return None
    source = s["source"].astype(str)
    spans = []
    for _m, rf in sorted(matches, key=lambda mr: int(mr[0]["n"])):
        inside = source.map(lambda src, root=str(rf.path): src == root or src.startswith(root + os.sep))
        span = _span(s.loc[inside.to_numpy(dtype=bool), "step"])
        if span is None:
            return None
        spans.append((rf.name, span))
    if all(_continues(a[1], b[1]) for a, b in zip(spans, spans[1:])):
        return [name for name, _ in spans]
    return None
