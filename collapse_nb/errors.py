"""Exceptions raised by collapse_nb.

Every error that concerns a file names the file and says what was wrong with it,
so a user never has to read a traceback from deep inside pandas to find out.
"""
from __future__ import annotations

from pathlib import Path


class CollapseNBError(Exception):
    """Base class of every error collapse_nb raises on purpose."""


class UnreadableFileError(CollapseNBError, ValueError):
    """A file exists but cannot be read as the format asked for (or any format)."""

    def __init__(self, path: str | Path, reason: str):
        self.path = printable_path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class UnknownFormatError(CollapseNBError, ValueError):
    """A format name that no reader has, or a file no reader recognises."""


class NothingReadableError(CollapseNBError, ValueError):
    """A directory (or list of paths) in which no file could be read."""


class SeveralRunsError(CollapseNBError, ValueError):
    """A folder given to :func:`collapse_nb.load` holds several runs (``names``): they are not one run."""

    def __init__(self, path: str | Path, names: list[str]):
        self.path = printable_path(path)
        self.names = list(names)
        shown = ", ".join(self.names[:8]) + (", ..." if len(self.names) > 8 else "")
        super().__init__(
            f"{self.path}: holds {len(self.names)} runs ({shown}), not one: read them apart with "
            f"collapse_nb.load_runs({self.path!r}) (then runs[{self.names[0]!r}] is one) or `collapse-nb triage "
            f"{self.path}`; load(..., merge=True) reads them all as one run")


class MissingPathError(CollapseNBError, FileNotFoundError):
    """A path given to :func:`collapse_nb.load` does not exist."""

    def __init__(self, path: str | Path):
        self.path = printable_path(path)
        super().__init__(f"{self.path}: no such file or directory")


def printable_path(path: "str | Path") -> str:
    """A path as text that can always be printed and written: bytes of the name that are not UTF-8 (kept by
    Python as surrogate escapes) shown as ``\\xff`` escapes."""
    import os
    try:
        return os.fsencode(path).decode("utf-8", "backslashreplace")
    except (TypeError, ValueError):
        return str(path)


class SeveralMlflowRunsError(SeveralRunsError):
    """An MLflow SQLite store (``mlflow.db``) given where one run is read holds several runs (``names``)."""

    def __init__(self, path: str | Path, names: list[str]):
        super().__init__(path, names)
        shown = ", ".join(self.names[:8]) + (", ..." if len(self.names) > 8 else "")
        self.reason = (f"an MLflow store of {len(self.names)} runs ({shown}), not one: read them apart with "
                       f"collapse_nb.load_runs({self.path!r}) (then runs[{self.names[0]!r}] is one) or "
                       f"`collapse-nb triage {self.path}`")
        self.args = (f"{self.path}: {self.reason}",)
