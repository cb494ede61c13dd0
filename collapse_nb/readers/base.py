"""What every reader hands back, and the registry that finds the right reader.

A reader turns one file into a :class:`ReadResult`: a long table of *raw*
scalars (what the file said, not yet canonicalised), the configuration values
it found, and a :class:`SkipLog` of what it could not understand. Everything
after that (canonical names, restarts, the wide tables) is done once, in
:mod:`collapse_nb.tables`, for every format alike.

Raw scalar columns (a reader may leave optional ones out):

=========== ========= ==========================================================
column      required  meaning
=========== ========= ==========================================================
raw_name    yes       the metric as the file spells it (``val/loss``)
value       yes       float64; NaN and inf are kept
line        no        1-based line (or record) number in the file
phase       no        ``train``/``val``/``test`` when the *context* says so
epoch       no        float; fractional epochs allowed
batch       no        integer batch index within the epoch
step        no        integer global step / iteration
param       no        parameter (or param group) a per-parameter value is for
wall_time   no        seconds since the epoch, when the file has it
rank        no        integer rank of the process that wrote the row (a distributed run: ``[rank3]:`` line
                      prefixes); left out, the loader takes it from the file name (``rank_3.log``, see
                      :mod:`collapse_nb.ranks`), else NA
phase_fixed no        True where the reader's ``phase`` must beat a phase word in the name
=========== ========= ==========================================================
"""
from __future__ import annotations

import re

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from ..errors import UnknownFormatError, UnreadableFileError

RAW_COLUMNS = ("line", "phase", "epoch", "batch", "step", "param", "raw_name", "value", "wall_time", "rank")

#: How many bytes of a file the sniffers look at.
SNIFF_BYTES = 64 * 1024


@dataclass
class SkipLog:
    """Lines (or records) a reader did not understand: how many, and where.

    ``examples`` keeps the first few ``(line, reason, text)`` so a user can go and
    look; ``by_reason`` counts every skipped line by why it was skipped, so
    ``count == sum(by_reason.values())`` always.

    Lines that were read after a repair (non-UTF-8 bytes replaced) are not
    skipped: they are counted apart, in ``replaced``, with the first few line
    numbers in ``replaced_lines`` (see :meth:`replaced_note`).
    """

    count: int = 0
    examples: list[tuple[int, str, str]] = field(default_factory=list)
    by_reason: dict[str, int] = field(default_factory=dict)
    max_examples: int = 20
    replaced: int = 0
    replaced_lines: list[int] = field(default_factory=list)

    def add(self, line: int, reason: str, text: str = "", n: int = 1) -> None:
        self.count += n
        self.by_reason[reason] = self.by_reason.get(reason, 0) + n
        if len(self.examples) < self.max_examples:
            self.examples.append((int(line), reason, text[:200]))

    def add_replaced(self, lines: list[int], n: int | None = None) -> None:
        """Lines still read, whose bytes that were not UTF-8 were replaced: a note, not a skip."""
        self.replaced += len(lines) if n is None else n
        room = max(self.max_examples - len(self.replaced_lines), 0)
        self.replaced_lines.extend(int(x) for x in lines[:room])

    def merge(self, other: "SkipLog") -> None:
        self.count += other.count
        for k, v in other.by_reason.items():
            self.by_reason[k] = self.by_reason.get(k, 0) + v
        room = self.max_examples - len(self.examples)
        self.examples.extend(other.examples[:max(room, 0)])
        self.add_replaced(other.replaced_lines, other.replaced)

    def as_dict(self) -> dict[str, Any]:
        return {"count": self.count, "by_reason": dict(self.by_reason),
                "examples": [{"line": ln, "reason": r, "text": t} for ln, r, t in self.examples],
                "replaced": self.replaced, "replaced_lines": list(self.replaced_lines)}

    def replaced_note(self) -> str | None:
        """``"2 line(s) had non-UTF-8 bytes (replaced, still read) at line 3, 9"``, or ``None``."""
        if not self.replaced:
            return None
        where = ", ".join(str(ln) for ln in self.replaced_lines[:8])
        more = ", ..." if self.replaced > len(self.replaced_lines[:8]) else ""
        return f"{self.replaced} line(s) had non-UTF-8 bytes (replaced, still read) at line {where}{more}"

    def describe(self) -> str:
        note = self.replaced_note()
        tail = f"; {note}" if note else ""
        if not self.count:
            return "every line understood" + tail
        where = ", ".join(str(ln) for ln, _, _ in self.examples[:8])
        reasons = "; ".join(f"{k}: {v}" for k, v in sorted(self.by_reason.items(), key=lambda kv: -kv[1]))
        more = "" if self.count <= 8 else ", ..."
        return f"{self.count} not understood ({reasons}) at line {where}{more}{tail}"


@dataclass
class ReadResult:
    """One file, read. ``scalars`` uses the raw columns described in the module docstring."""

    source: str
    format: str
    scalars: pd.DataFrame
    config: dict[str, Any] = field(default_factory=dict)
    skipped: SkipLog = field(default_factory=SkipLog)
    notes: list[str] = field(default_factory=list)
    #: Rows of the config a reader recognised, as ``{key: (value, where)}`` for provenance.
    config_where: dict[str, str] = field(default_factory=dict)
    #: Where each restarted run appended to the file begins (1-based lines), when the reader knows better
    #: than the first value of each segment; ``meta["restarts"]`` then uses these lines.
    segment_starts: list[int] = field(default_factory=list)
    #: Extra tables a reader may produce (e.g. ``histograms`` for TensorBoard).
    extra: dict[str, pd.DataFrame] = field(default_factory=dict)
    #: Set when the loader normalises ``scalars``: the restarts found in them (``[{line, segment}]``).
    segments_found: list[dict[str, int]] = field(default_factory=list)


class Reader:
    """A reader for one format. Subclasses set ``name`` and implement both methods.

    ``sniff`` gets the first :data:`SNIFF_BYTES` of the file and its path, and returns
    a confidence in [0, 1]: 0 means "not mine". ``read`` does the work.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    #: A config reader contributes configuration, not metrics; a directory load
    #: does not count a file read only by it as "readable metrics".
    is_config: ClassVar[bool] = False

    def sniff(self, head: bytes, path: Path) -> float:  # pragma: no cover - interface
        raise NotImplementedError

    def read(self, path: Path) -> ReadResult:  # pragma: no cover - interface
        raise NotImplementedError


_REGISTRY: dict[str, Reader] = {}


def register(cls: type[Reader]) -> type[Reader]:
    """Class decorator: make a reader known to :func:`collapse_nb.load`."""
    if not cls.name:
        raise TypeError(f"{cls.__name__} has no format name")
    _REGISTRY[cls.name] = cls()
    return cls


def readers() -> dict[str, Reader]:
    from . import _all  # noqa: F401  (importing registers the built-in readers)
    return dict(_REGISTRY)


def get_reader(fmt: str) -> Reader:
    known = readers()
    if fmt not in known:
        raise UnknownFormatError(f"unknown format {fmt!r}; known formats: {', '.join(sorted(known))}")
    return known[fmt]


def read_head(path: Path, n: int = SNIFF_BYTES) -> bytes:
    with open(path, "rb") as f:
        return f.read(n)


_NUL_RUN = re.compile(rb"\x00{16,}")


def looks_binary(head: bytes) -> bool:
    """True for data that is not text in any encoding a log would use."""
    if not head:
        return False
    if b"\x00" in head:
        # runs of NUL bytes are the padding a writer killed mid-write leaves in a text file; a NUL between
        # other bytes is binary data (or UTF-16, which the loader converts before any reader looks)
        head = _NUL_RUN.sub(b"", head)
        if b"\x00" in head or not head.strip():
            return True
    sample = head[:4096]
    control = sum(1 for b in sample if b < 9 or 13 < b < 32)
    return control / len(sample) > 0.05


def decode_text(data: bytes, path: Path | str, skipped: SkipLog | None = None) -> str:
    """Decode bytes as UTF-8, replacing what is not; note the lines that had bad bytes.

    Those lines are still read, so they are not skipped: they go to
    ``skipped.replaced`` / ``skipped.replaced_lines``, not to ``skipped.count``.
    """
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("utf-8", errors="replace")
        if skipped is not None:
            skipped.add_replaced([i + 1 for i, ln in enumerate(text.split("\n")) if "\ufffd" in ln])
        return text


def read_text(path: Path, skipped: SkipLog | None = None, max_bytes: int | None = None) -> str:
    """Read a whole (small) text file, refusing binary data with a clear error."""
    with open(path, "rb") as f:
        data = f.read() if max_bytes is None else f.read(max_bytes)
    if not data.strip():
        raise UnreadableFileError(path, "file is empty")
    if looks_binary(data[:SNIFF_BYTES]):
        raise UnreadableFileError(path, "file holds binary data, not text")
    return decode_text(data, path, skipped)


def empty_scalars() -> pd.DataFrame:
    return pd.DataFrame({"raw_name": pd.Series([], dtype="string"), "value": pd.Series([], dtype="float64")})


def to_float(values: Any) -> np.ndarray:
    """Convert a column of numbers-or-strings to float64; what is not a number becomes NaN.

    Strings ``nan``/``inf``/``-inf`` (any case) keep their meaning.
    """
    s = pd.Series(values)
    if s.dtype.kind in "fiub":
        return s.to_numpy(dtype="float64", na_value=np.nan)
    return pd.to_numeric(s.astype("string").str.strip().str.replace(",", "", regex=False),
                         errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


__all__ = ["RAW_COLUMNS", "SNIFF_BYTES", "SkipLog", "ReadResult", "Reader", "register", "readers",
           "get_reader", "read_head", "looks_binary", "decode_text", "read_text", "empty_scalars",
           "to_float"]
