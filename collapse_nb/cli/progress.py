"""Progress of a long command on stderr: one line, rewritten in place, only on a terminal and without ``--quiet``.

    collapse-nb: reading file 3/12: training_diagnostic.log (312.4 MB)
    collapse-nb: diagnosing
    collapse-nb: drawing plots
    collapse-nb: writing collapse_nb_report.html

The library has no progress callbacks: :func:`reading` and :func:`runs_progress` watch it by wrapping, for the length
of one command, the functions that read one file (``collapse_nb.loading._read_one``), list a folder's files
(``collapse_nb.loading._files_in``), list the runs of a folder (``collapse_nb.discovery.find_runs``) and read or
triage one run (``collapse_nb.runs._load_one``, ``collapse_nb.cluster.run_task``); they are put back when the
block ends, and nothing is wrapped when progress is off. ``tests/test_cli_progress.py`` fails if one is renamed.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path
from typing import Any, Iterator, TextIO


def size_text(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover


class Progress:
    """One status line on ``stream``; does nothing when ``enabled`` is false."""

    def __init__(self, enabled: bool, stream: TextIO | None = None) -> None:
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self._shown = False

    @classmethod
    def for_args(cls, args: argparse.Namespace) -> "Progress":
        """On when stderr is a terminal and ``--quiet`` was not given."""
        stream = sys.stderr
        try:
            tty = bool(stream.isatty())
        except (AttributeError, ValueError):        # a closed or odd stream
            tty = False
        return cls(tty and not getattr(args, "quiet", False), stream)

    def stage(self, text: str) -> None:
        """Show ``text`` in place of the previous line."""
        if not self.enabled:
            return
        line = f"collapse-nb: {text}"
        self.stream.write("\r\x1b[K" + line[:200])
        self.stream.flush()
        self._shown = True

    def done(self) -> None:
        """Clear the line (before the command prints its results)."""
        if self.enabled and self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False


@contextlib.contextmanager
def _wrapped(module: Any, name: str, make: Any) -> Iterator[None]:
    original = getattr(module, name)
    setattr(module, name, make(original))
    try:
        yield
    finally:
        setattr(module, name, original)


@contextlib.contextmanager
def reading(progress: Progress) -> Iterator[None]:
    """While the block runs, each file read shows ``reading file i/n: NAME (SIZE)``."""
    if not progress.enabled:
        yield
        return
    from .. import loading

    state = {"n": 0, "i": 0}

    def files_in(original: Any) -> Any:
        def listed(*a: Any, **k: Any) -> Any:
            out = original(*a, **k)
            state["n"] += len(out)
            return out
        return listed

    def read_one(original: Any) -> Any:
        def read(path: Any, *a: Any, **k: Any) -> Any:
            state["i"] += 1
            try:
                size = f" ({size_text(os.stat(path).st_size)})"
            except OSError:
                size = ""
            progress.stage(f"reading file {state['i']}/{max(state['n'], state['i'])}: {Path(path).name}{size}")
            return original(path, *a, **k)
        return read

    with _wrapped(loading, "_files_in", files_in), _wrapped(loading, "_read_one", read_one):
        yield


@contextlib.contextmanager
def runs_progress(progress: Progress, mode: str) -> Iterator[None]:
    """While the block runs, each run of a folder shows a line: ``mode`` ``"load_runs"`` (``reading run i/n: NAME``,
    :func:`collapse_nb.load_runs`), ``"triage"`` (``triaging run i/n: NAME``, :func:`collapse_nb.cluster.triage_folder`
    here) or ``"cluster"`` (``triaging N run(s) on the cluster``: the tasks run on the workers, not watched)."""
    if not progress.enabled:
        yield
        return
    from .. import cluster, discovery, runs

    state = {"n": 0, "i": 0}

    def find_runs(original: Any) -> Any:
        def found(*a: Any, **k: Any) -> Any:
            out = original(*a, **k)
            state["n"], state["i"] = len(out), 0
            if mode == "cluster":
                progress.stage(f"triaging {len(out)} run(s) on the cluster")
            return out
        return found

    def one_run(verb: str) -> Any:
        def make(original: Any) -> Any:
            def run(rf: Any, *a: Any, **k: Any) -> Any:
                state["i"] += 1
                progress.stage(f"{verb} run {state['i']}/{max(state['n'], state['i'])}: {getattr(rf, 'name', rf)}")
                return original(rf, *a, **k)
            return run
        return make

    with contextlib.ExitStack() as stack:
        stack.enter_context(_wrapped(discovery, "find_runs", find_runs))
        stack.enter_context(_wrapped(runs, "find_runs", find_runs))
        if mode == "load_runs":
            stack.enter_context(_wrapped(runs, "_load_one", one_run("reading")))
        elif mode == "triage":
            stack.enter_context(_wrapped(cluster, "run_task", one_run("triaging")))
        yield
