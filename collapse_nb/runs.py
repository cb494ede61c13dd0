"""Folders of many runs: :func:`load_runs` and :class:`Runs`.

``load_runs(path)`` finds the runs under ``path`` (:mod:`collapse_nb.discovery` has the rules), reads
each one as :func:`collapse_nb.load` reads a folder, and returns them as a :class:`Runs`: a sequence
of :class:`~collapse_nb.Run`, each named by its path relative to ``path`` (``run.meta["run_name"]``).
A run that cannot be read is listed in ``Runs.failed`` with the reason, never dropped silently. A
Lightning ``version_N`` whose steps continue a sibling's is linked to it
(``run.meta["resumed_from"]``). :meth:`Runs.triage` says which runs failed and how.
"""
from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Iterator

import pandas as pd

from .discovery import RunFolder, find_runs
from .errors import CollapseNBError, MissingPathError, NothingReadableError
from .loading import assemble, read_folder_files
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

    def triage(self, **thresholds: Any) -> pd.DataFrame:
        """One row per run, worst first: see :func:`collapse_nb.triage.triage`."""
        from .triage import triage
        return triage(self, **thresholds)


def load_runs(path: str | os.PathLike, format: str | None = None) -> Runs:
    """The runs under ``path`` (a folder of runs, or one run), each read as :func:`collapse_nb.load` reads a
    folder. Raises :class:`~collapse_nb.errors.NothingReadableError` when no run is found."""
    root = Path(path)
    if not root.exists():
        raise MissingPathError(root)
    folders = find_runs(root)
    if not folders:
        raise NothingReadableError(f"{root}: no run found (no folder holds a training log any reader recognises)")
    runs, names, failed = [], [], {}
    for rf in folders:
        try:
            runs.append(_load_one(rf, format))
            names.append(rf.name)
        except CollapseNBError as exc:
            failed[rf.name] = str(getattr(exc, "reason", None) or exc)
    _link_resumed(runs, names)
    return Runs(root, runs, names, failed)


def _load_one(rf: RunFolder, format: str | None) -> Run:
    ignored: list[dict[str, str]] = []
    results = read_folder_files(rf.path, rf.files, format, ignored)
    run = assemble(results, ignored)
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
        if span is not None:
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
    matches = [(_VERSION.match(rf.name), rf) for rf in folders]
    if len(folders) < 2 or not all(m for m, _ in matches) or len({m["parent"] for m, _ in matches}) != 1:
        return None
    s = run.scalars
    if "step" not in s or s.empty:
        return None
    source = s["source"].astype(str)
    spans = []
    for m, rf in sorted(matches, key=lambda mr: int(mr[0]["n"])):
        inside = source.map(lambda src, root=str(rf.path): src == root or src.startswith(root + os.sep))
        span = _span(s.loc[inside.to_numpy(dtype=bool), "step"])
        if span is None:
            return None
        spans.append((rf.name, span))
    if all(_continues(a[1], b[1]) for a, b in zip(spans, spans[1:])):
        return [name for name, _ in spans]
    return None
