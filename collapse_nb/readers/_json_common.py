"""Shared pieces of the JSON-based readers (JSON lines, Chainer ``log``, ``trainer_state.json``).

- :func:`loads` parses JSON with ``orjson`` when it is installed, else ``json``;
  either way Python's non-standard ``NaN`` / ``Infinity`` / ``-Infinity``
  literals (what ``json.dumps`` writes for non-finite floats) parse.
- :func:`iter_lines` reads a file line by line in binary, with a length cap, so a
  line of hundreds of megabytes is skipped instead of hanging the reader.
- :func:`numeric_items` turns one JSON object into ``(raw name, float)`` pairs:
  numbers are values, nested dicts become ``a/b`` names, short numeric lists
  become ``name/0``, ``name/1``...; booleans and text are not values (except the
  strings ``"nan"``, ``"inf"``, ``"-inf"``, ``"Infinity"``... which keep their meaning).
- :func:`iter_array_records` decodes the elements of a JSON array one by one,
  with the line each starts on, keeping what precedes a cut-off or broken element.
- :class:`RowBuilder` collects the long raw-scalar columns described in
  :mod:`collapse_nb.readers.base`.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from .base import SkipLog

try:  # optional speed-up; never a dependency
    import orjson as _orjson
except ImportError:  # pragma: no cover - depends on the environment
    _orjson = None

#: Lines longer than this are skipped (with a reason), never parsed.
MAX_LINE_BYTES = 16 * 1024 * 1024
#: Numeric lists up to this length are kept as ``name/0``, ``name/1``...; longer ones are skipped.
MAX_LIST_LEN = 16

_DECODER = json.JSONDecoder()
_NEXT_OBJECT = re.compile(r"\{\s*(?:\"|\})")
_SPECIAL_FLOATS = {"nan": math.nan, "+nan": math.nan, "-nan": math.nan, "inf": math.inf, "+inf": math.inf,
                   "-inf": -math.inf, "infinity": math.inf, "+infinity": math.inf, "-infinity": -math.inf}


class TooDeepError(ValueError):
    """A JSON document nested deeper than Python's parser can follow (a ``ValueError``: a bad line or file)."""


def loads(text: str | bytes) -> Any:
    """Parse one JSON document; ``NaN``/``Infinity`` literals are accepted. A document nested too deeply
    for the parser (``[[[[...`` thousands of levels) raises :class:`TooDeepError`, a ``ValueError`` like
    any other malformed JSON, never a ``RecursionError``."""
    if _orjson is not None:
        try:
            return _orjson.loads(text)
        except _orjson.JSONDecodeError:
            pass  # orjson refuses NaN/Infinity (and depth > 1024): let json decide
    try:
        return json.loads(text)
    except RecursionError:
        raise TooDeepError(f"JSON nested more deeply than {MAX_DEPTH_HINT} levels") from None


#: What the error says about depth; Python's parser stops near its recursion limit.
MAX_DEPTH_HINT = "the parser's recursion limit of about 1,000"


def decode_line(data: bytes, line: int, skipped: SkipLog) -> str:
    """Decode one line as UTF-8; bad bytes are replaced and noted (the line is still read)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        skipped.add_replaced([line])      # a note, not a lost line
        return data.decode("utf-8", errors="replace")


def iter_lines(path: Path, cap: int = MAX_LINE_BYTES) -> Iterator[tuple[int, bytes | None, bool]]:
    """Yield ``(line number, bytes or None if longer than cap, ended by a newline)``."""
    with open(path, "rb") as f:
        n = 0
        while True:
            chunk = f.readline(cap + 1)
            if not chunk:
                return
            n += 1
            if len(chunk) > cap and not chunk.endswith(b"\n"):
                while chunk and not chunk.endswith(b"\n"):  # drain the rest of the long line
                    chunk = f.readline(1 << 20)
                yield n, None, bool(chunk)
                continue
            yield n, chunk, chunk.endswith(b"\n")


def special_float(value: str) -> float | None:
    """``"nan"``, ``"inf"``, ``"-Infinity"``... as a float; any other text gives ``None``."""
    return _SPECIAL_FLOATS.get(value.strip().lower())


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class ListNotes:
    """Collects, once per name, why a list was (not) kept, and turns that into notes."""

    def __init__(self) -> None:
        self.too_long: dict[str, int] = {}
        self.sentinel: set[str] = set()
        self.not_numeric: set[str] = set()
        self.text: set[str] = set()
        self.huge: set[str] = set()

    def notes(self) -> list[str]:
        out = []
        if self.huge:
            out.append(f"integers too large for a float64 read as inf: {', '.join(sorted(self.huge)[:10])}")
        if self.too_long:
            names = ", ".join(f"{k} ({n})" for k, n in sorted(self.too_long.items())[:10])
            out.append(f"lists longer than {MAX_LIST_LEN} values not kept: {names}")
        if self.sentinel:
            out.append("lists hold -1.0 values, which COCO-style evaluators write for 'not applicable' "
                       f"(e.g. no small objects); kept as they are: {', '.join(sorted(self.sentinel)[:10])}")
        if self.not_numeric:
            out.append(f"lists that are not all numbers not kept: {', '.join(sorted(self.not_numeric)[:10])}")
        if self.text:
            out.append(f"text values not kept as scalars: {', '.join(sorted(self.text)[:10])}")
        return out


def numeric_items(obj: dict, notes: ListNotes, prefix: str = "") -> Iterator[tuple[str, float]]:
    """The ``(raw name, value)`` pairs of one JSON object (see the module docstring)."""
    for key, v in obj.items():
        name = f"{prefix}{key}" if prefix else key
        t = type(v)
        if t is float:  # the common case first (bool is not int here)
            yield name, v
        elif t is int or is_number(v):  # ints (of any size) and int/float subclasses
            x = _float(v)
            if math.isinf(x) and not isinstance(v, float):
                notes.huge.add(name)
            yield name, x
        elif isinstance(v, str):
            f = special_float(v)
            if f is not None:
                yield name, f
            else:
                notes.text.add(name)
        elif isinstance(v, dict):
            yield from numeric_items(v, notes, name + "/")
        elif isinstance(v, list):
            yield from _list_items(name, v, notes)
        # booleans and null: not values


def _list_items(name: str, values: list, notes: ListNotes) -> Iterator[tuple[str, float]]:
    if not values:
        return
    if not all(is_number(x) or (isinstance(x, str) and special_float(x) is not None) for x in values):
        notes.not_numeric.add(name)
        return
    if len(values) > MAX_LIST_LEN:
        notes.too_long[name] = len(values)
        return
    # every value is a number or a special float's text (checked above): none of them gives None
    nums = [x for x in (_float(v) if is_number(v) else special_float(v) for v in values) if x is not None]
    if any(math.isinf(x) and not isinstance(v, float) for x, v in zip(nums, values) if is_number(v)):
        notes.huge.add(name)
    if any(x == -1.0 for x in nums):
        notes.sentinel.add(name)
    for i, x in enumerate(nums):
        yield f"{name}/{i}", x


def _float(v: Any) -> float:
    """``float(v)``, with an integer too large for a float64 as +-inf instead of an OverflowError."""
    try:
        return float(v)
    except OverflowError:
        return math.inf if v > 0 else -math.inf


def as_counter(value: Any) -> float:
    """A time counter (step, iteration, epoch) as float: NaN when it is absent (``None``), ``inf`` when it is
    there but is no number (``NaN``, text), so that the loader counts the row as skipped instead of treating
    it as one without a step."""
    if value is None:
        return math.nan
    x = as_float(value)
    return math.inf if math.isnan(x) else x


_SPECIAL_TEXT = ("nan", "-nan", "inf", "-inf", "+inf", "infinity", "-infinity", "+infinity")


def number_or_none(v: Any, numeric_text: bool = True) -> float | None:
    """A JSON value as a float, or None for what is no number (null, booleans, lists, other text).

    Numbers of any size (a huge integer is +-inf); text ``"nan"``/``"inf"``; other numeric text such as
    ``"0.5"`` only with ``numeric_text``."""
    if v is None or isinstance(v, bool):
        return None
    if is_number(v):
        return as_float(v)
    if isinstance(v, str):
        low = v.strip().lower()
        if not numeric_text and low not in _SPECIAL_TEXT:
            return None
        x = as_float(v)
        return None if math.isnan(x) and low not in ("nan", "-nan") else x
    return None


def as_float(value: Any) -> float:
    """An index value (step, epoch...) as float; NaN when it is not a number (inf when it is too large)."""
    if is_number(value):
        return _float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return math.nan
    return math.nan


class LineCounter:
    """The 1-based line of an offset in ``text``, for offsets that never decrease (O(text) in all)."""

    def __init__(self, text: str) -> None:
        self.text, self.pos, self.line = text, 0, 1

    def __call__(self, pos: int) -> int:
        self.line += self.text.count("\n", self.pos, pos)
        self.pos = pos
        return self.line


def iter_array_records(text: str, skipped: SkipLog, start: int = 0) -> Iterator[tuple[int, object]]:
    """Decode the elements of the JSON array opening at or after ``start``, one at a time.

    Yields ``(line of the element's start, element)``.
    A broken element is skipped (with its line) and decoding resumes at the next
    ``{``; a file cut off before its closing ``]`` keeps every complete element.
    """
    pos = text.index("[", start) + 1
    line_of = LineCounter(text)
    n = len(text)
    while True:
        while pos < n and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= n or text[pos] == "]":
            return
        try:
            try:
                obj, end = _DECODER.raw_decode(text, pos)
            except RecursionError:
                raise TooDeepError("nested too deeply") from None
        except ValueError as exc:
            nxt = _NEXT_OBJECT.search(text, pos + 1)
            truncated = nxt is None
            why = ("nested too deeply for the JSON parser" if isinstance(exc, TooDeepError) else
                   "not valid JSON" + (" (file cut off)" if truncated else ""))
            skipped.add(line_of(pos), why, text[pos:pos + 200].strip())
            if nxt is None:
                return
            pos = nxt.start()
            continue
        yield line_of(pos), obj
        pos = end


class RowBuilder:
    """Accumulates raw scalar rows, then makes the DataFrame.

    Index values are stored once per record (:meth:`record`), values once per
    number (:meth:`add`); :meth:`frame` spreads the first over the second.
    """

    _INDEX = ("line", "epoch", "batch", "step", "wall_time")

    def __init__(self) -> None:
        self.index: dict[str, list[float]] = {c: [] for c in self._INDEX}
        self.rec: list[int] = []
        self.names: list[str] = []
        self.values: list[float] = []
        self.phases: list[str | None] = []

    def __len__(self) -> int:
        return len(self.values)

    def record(self, *, line: float = math.nan, epoch: float = math.nan, batch: float = math.nan,
               step: float = math.nan, wall_time: float = math.nan) -> int:
        """Start a record (one JSON object); returns its id for :meth:`add`."""
        ix = self.index
        ix["line"].append(line)
        ix["epoch"].append(epoch)
        ix["batch"].append(batch)
        ix["step"].append(step)
        ix["wall_time"].append(wall_time)
        return len(ix["line"]) - 1

    def add(self, rec: int, raw_name: str, value: float, phase: str | None = None) -> None:
        self.rec.append(rec)
        self.names.append(raw_name)
        self.values.append(value)
        self.phases.append(phase)

    def frame(self) -> pd.DataFrame:
        """The raw scalars; index columns that are empty in every row are left out."""
        rec = np.asarray(self.rec, dtype=np.int64)
        data: dict[str, Any] = {"raw_name": pd.Series(self.names, dtype="string"),
                                "value": np.asarray(self.values, dtype="float64")}
        for name in self._INDEX:
            per_record = np.asarray(self.index[name], dtype="float64")
            if len(per_record) and not np.isnan(per_record).all():
                data[name] = per_record[rec]
        if any(p is not None for p in self.phases):
            data["phase"] = pd.Series(self.phases, dtype="object")
        return pd.DataFrame(data)
