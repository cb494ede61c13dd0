"""Progress of long library work, for whoever listens: the CLI's status line, a notebook's progress bar.

The library announces what it is about to do with :func:`report`; nothing happens unless a listener is
installed for the current context with :func:`listening` (a :mod:`contextvars` variable: one listener per thread
or task, nothing global to undo)::

    with collapse_nb.progress.listening(lambda event, info: print(event, info)):
        runs = collapse_nb.load_runs("sweep/")

Events and their ``info``:

=========  ==============================================================================
``files``  ``n``: how many files of a folder are about to be looked at
``file``   ``path``, ``size``: one file is about to be read
``runs``   ``n``, ``where`` (``"here"`` or ``"cluster"``): how many runs are about to be read
``run``    ``name``, ``verb`` (``"reading"`` or ``"triaging"``): one run is about to be read
=========  ==============================================================================

A listener that raises is ignored: progress never stops the work.
"""
from __future__ import annotations

import contextlib
import contextvars
from typing import Any, Callable, Iterator

Listener = Callable[[str, dict[str, Any]], None]

_listener: contextvars.ContextVar[Listener | None] = contextvars.ContextVar("collapse_nb_progress", default=None)


def report(event: str, **info: Any) -> None:
    """Tell the listener, if there is one, that ``event`` is about to happen."""
    fn = _listener.get()
    if fn is None:
        return
    try:
        fn(event, info)
    except Exception:  # noqa: BLE001 - a broken progress display must not stop the work
        pass


@contextlib.contextmanager
def listening(fn: Listener) -> Iterator[None]:
    """Send the events of the work done inside the block to ``fn(event, info)``."""
    token = _listener.set(fn)
    try:
        yield
    finally:
        _listener.reset(token)


__all__ = ["report", "listening", "Listener"]
