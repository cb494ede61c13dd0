"""Progress of a long command on stderr: one line, rewritten in place, only on a terminal and without ``--quiet``.

    collapse-nb: reading file 3/12: training_diagnostic.log (312.4 MB)
    collapse-nb: diagnosing
    collapse-nb: drawing plots
    collapse-nb: writing collapse_nb_report.html

:func:`reading` and :func:`runs_progress` listen to the library's progress events (:mod:`collapse_nb.progress`:
a file or a run about to be read) for the length of one command; nothing listens when progress is off.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Any, Iterator, TextIO

from ..progress import listening


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
def reading(progress: Progress) -> Iterator[None]:
    """While the block runs, each file read shows ``reading file i/n: NAME (SIZE)``."""
    if not progress.enabled:
        yield
        return
    state = {"n": 0, "i": 0}

    def listen(event: str, info: dict[str, Any]) -> None:
        if event == "files":
            state["n"] += info["n"]
        elif event == "file":
            state["i"] += 1
            size = f" ({size_text(info['size'])})" if info.get("size") is not None else ""
            progress.stage(f"reading file {state['i']}/{max(state['n'], state['i'])}: {Path(info['path']).name}{size}")

    with listening(listen):
        yield


@contextlib.contextmanager
def runs_progress(progress: Progress, mode: str = "") -> Iterator[None]:
    """While the block runs, each run of a folder shows a line: ``reading run i/n: NAME``
    (:func:`collapse_nb.load_runs`), ``triaging run i/n: NAME`` (:func:`collapse_nb.cluster.triage_folder` here)
    or ``triaging N run(s) on the cluster`` (the tasks run on the workers, whose progress is not seen here).
    ``mode`` is kept for callers; the events say which it is."""
    if not progress.enabled:
        yield
        return
    state = {"n": 0, "i": 0}

    def listen(event: str, info: dict[str, Any]) -> None:
        if event == "runs":
            state["n"], state["i"] = info["n"], 0
            if info.get("where") == "cluster":
                progress.stage(f"triaging {info['n']} run(s) on the cluster")
        elif event == "run":
            state["i"] += 1
            progress.stage(f"{info['verb']} run {state['i']}/{max(state['n'], state['i'])}: {info['name']}")

    with listening(listen):
        yield
