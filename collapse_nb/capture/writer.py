"""A buffered JSON-lines writer that does not lose its tail.

Records are encoded with :func:`json.dumps` (compact separators; non-finite
floats as Python's ``NaN`` / ``Infinity`` literals, which every collapse_nb
JSON reader accepts) and kept in memory until ``flush_every`` records or
``flush_seconds`` have gone by, then written with one ``write`` call and
flushed to the operating system. :meth:`JsonlWriter.close` (also called from
``__exit__``, from an ``atexit`` handler and when the writer is garbage
collected) writes what is left, so an exception in the training loop or a
normal interpreter exit keeps every record. A process killed with SIGKILL
loses at most the records still buffered, and a line cut in half by the kill
is counted (and skipped) by the reader.
"""
from __future__ import annotations

import atexit
import json
import math
import os
import time
import weakref
from pathlib import Path
from typing import Any, Callable


def _default(obj: Any) -> Any:
    """JSON fallback for values ``json`` does not know (numpy numbers, tensors, paths, dtypes...)."""
    item = getattr(obj, "item", None)
    if callable(item):
        try:
            return item()
        except (TypeError, ValueError, RuntimeError):
            pass
    tolist = getattr(obj, "tolist", None)
    if callable(tolist):
        try:
            return tolist()
        except (TypeError, ValueError, RuntimeError):
            pass
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    return str(obj)


def encode(record: dict) -> str:
    """One record as one line (with its newline)."""
    return json.dumps(record, separators=(",", ":"), allow_nan=True, default=_default) + "\n"


def _flush_ref(ref: "weakref.ref[JsonlWriter]") -> None:
    w = ref()
    if w is not None:
        w.close()


class JsonlWriter:
    """Append JSON records to ``path``, one per line, buffered.

    Parameters
    ----------
    path
        The file; parent directories are created.
    mode
        ``"a"`` (default) appends to an existing file, ``"w"`` truncates it.
    flush_every
        Write the buffer once it holds this many records (>= 1).
    flush_seconds
        ... or once this many seconds have passed since the last write.
    """

    def __init__(self, path: str | os.PathLike, mode: str = "a", flush_every: int = 20,
                 flush_seconds: float = 10.0) -> None:
        if mode not in ("a", "w"):
            raise ValueError(f"mode must be 'a' or 'w', got {mode!r}")
        if not isinstance(flush_every, int) or isinstance(flush_every, bool) or flush_every < 1:
            raise ValueError(f"flush_every must be an int >= 1, got {flush_every!r}")
        if not (isinstance(flush_seconds, (int, float)) and flush_seconds >= 0 and not math.isnan(flush_seconds)):
            raise ValueError(f"flush_seconds must be a number >= 0, got {flush_seconds!r}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.flush_every = flush_every
        self.flush_seconds = float(flush_seconds)
        self._buf: list[str] = []
        self._last = time.monotonic()
        self._file = open(self.path, mode, encoding="utf-8", newline="\n")
        # a crash may have left a half-written last line: start on a fresh line so it stays the only broken one
        if mode == "a" and self._file.tell() > 0:
            with open(self.path, "rb") as f:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    self._file.write("\n")
        self._atexit: Callable[[], None] | None = None
        ref = weakref.ref(self)
        self._atexit = lambda: _flush_ref(ref)
        atexit.register(self._atexit)
        self.records = 0

    @property
    def closed(self) -> bool:
        return self._file.closed

    def write(self, record: dict) -> None:
        """Queue one record; written at the next flush."""
        if self._file.closed:
            raise ValueError(f"{self.path}: writer is closed")
        self._buf.append(encode(record))
        self.records += 1
        if len(self._buf) >= self.flush_every or time.monotonic() - self._last >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        """Write every queued record and hand it to the operating system."""
        if self._file.closed:
            return
        if self._buf:
            self._file.write("".join(self._buf))
            self._buf.clear()
        self._file.flush()
        self._last = time.monotonic()

    def close(self) -> None:
        """Flush and close; safe to call more than once."""
        if self._file.closed:
            return
        try:
            self.flush()
        finally:
            self._file.close()
            if self._atexit is not None:
                atexit.unregister(self._atexit)
                self._atexit = None

    def __enter__(self) -> "JsonlWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # a writer dropped without close() still keeps its records
        try:
            self.close()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass
