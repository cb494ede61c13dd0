"""Shared machinery of the CSV readers: sniffing a header, parsing rows, turning cells into numbers.

:func:`parse_table` reads a delimited text file into a :class:`Table`: the
header, the cells of every well-formed row (as columns of strings) and the
1-based file line each row starts on. Rows that cannot be used (wrong number
of fields, a truncated last line, a repeated header, a comment) are counted in
the table's :class:`~collapse_nb.readers.base.SkipLog` with their line, never
dropped silently; lines whose non-UTF-8 bytes were replaced are still read, and
noted in the table's ``notes``.

:func:`to_numbers` converts one column of cells, vectorised: empty cells and
null markers (``None``, ``null``, ``NA``) are "no value"; ``nan``/``inf`` keep
their meaning; anything else that is not a number is *bad* and is counted by
the caller.
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import UnreadableFileError
from .base import SNIFF_BYTES, SkipLog, looks_binary, read_text

DELIMITERS = (",", "\t", ";")
#: Cells that mean "nothing logged here" (compared lower-cased).
NULL_TOKENS = frozenset({"none", "null", "na", "n/a", "<na>", "nat", "-"})
#: Cells that mean "the value was NaN" (``pd.to_numeric`` already reads inf/-inf).
NAN_TOKENS = frozenset({"nan", "-nan", "+nan"})
#: Wall times are seconds since 1970: a median below this (about 1973) is an elapsed time, i.e. a metric.
MIN_WALL_TIME = 1e8
_TENSOR = re.compile(r"^tensor\(\s*([-+]?(?:[\d.]+(?:e[-+]?\d+)?|nan|inf))", re.I)
_DECIMAL_COMMA = re.compile(r"^[-+]?\d+,\d+(?:[eE][-+]?\d+)?$")
_NUMBER = re.compile(r"^\s*[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\s*$|^\s*[-+]?(?:nan|inf|infinity)\s*$", re.I)


@dataclass
class Table:
    """A parsed delimited file: ``columns[j]`` holds column ``j``'s cells for the rows in ``lines``."""

    header: list[str]
    columns: list[np.ndarray]
    lines: np.ndarray
    delimiter: str
    skipped: SkipLog = field(default_factory=SkipLog)
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.lines)


@dataclass(frozen=True)
class Head:
    """What the first bytes of a file say: delimiter, header names and a sample of data rows."""

    delimiter: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    @property
    def norm(self) -> tuple[str, ...]:
        return tuple(norm_name(h) for h in self.header)

    def fraction_well_formed(self) -> float:
        return float(np.mean([len(r) == len(self.header) for r in self.rows])) if self.rows else 0.0

    def numeric_columns(self) -> int:
        """How many columns hold a number (or nan/inf) in most sample rows that fill them."""
        n = 0
        for j in range(len(self.header)):
            cells = [r[j] for r in self.rows if len(r) == len(self.header) and r[j].strip()]
            if cells and sum(bool(_NUMBER.match(c)) for c in cells) >= 0.8 * len(cells):
                n += 1
        return n

    def sparse(self) -> bool:
        """True when some well-formed sample row leaves cells empty (Lightning's sparse rows)."""
        return any(len(r) == len(self.header) and any(not c.strip() for c in r) for r in self.rows)


def norm_name(name: str) -> str:
    """Header name for role matching: lower case, separators as ``_``, no leading underscores."""
    return re.sub(r"[\s\-.]+", "_", name.strip().lower()).strip("_")


_LINEBREAK = re.compile(r"\r\n|\r|\n")


def _content_lines(text: str, limit: int = 51) -> tuple[list[tuple[int, str]], list[int]]:
    """The first ``limit`` non-blank lines with their 1-based numbers, and the leading ``#`` comment lines."""
    out: list[tuple[int, str]] = []
    comments: list[int] = []
    for i, ln in enumerate(_LINEBREAK.split(text), start=1):
        if not ln.strip():
            continue
        if not out and ln.lstrip().startswith("#"):
            comments.append(i)
            continue
        out.append((i, ln))
        if len(out) >= limit:
            break
    return out, comments


def choose_delimiter(header: str, sample: list[str]) -> str | None:
    """The delimiter that splits the header and the sample lines into the same number of fields."""
    best, best_key = None, (0.0, 0)
    for d in DELIMITERS:
        c = header.count(d)
        if c == 0:
            continue
        same = np.mean([ln.count(d) == c for ln in sample]) if sample else 1.0
        key = (float(same), c)
        if key > best_key:
            best, best_key = d, key
    return best


#: A header field longer than this is prose, not a column name (hyper-parameter sweeps write names of a few
#: hundred characters: ``val/loss/lr=0.001,wd=0.01,...``).
MAX_COLUMN_NAME = 2048


@lru_cache(maxsize=16)
def sniff_head(head: bytes) -> Head | None:
    """Parse the first bytes of a file as a headed CSV; ``None`` when it clearly is not one."""
    if not head or looks_binary(head):
        return None
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    if len(head) >= SNIFF_BYTES:  # the last line of a cut-off head is incomplete
        text = text[:text.rfind("\n") + 1] or text
    lines, _ = _content_lines(text)
    if len(lines) < 2:
        return None
    first = lines[0][1]
    if first.lstrip()[:1] in ("{", "[", "<"):
        return None
    delim = choose_delimiter(first, [ln for _, ln in lines[1:51]])
    if delim is None:
        return None
    rows = list(csv.reader([ln for _, ln in lines[:51]], delimiter=delim, skipinitialspace=True))
    header = tuple(h.strip() for h in rows[0])
    named = [h for h in header if h]
    if not named or len(set(named)) < len(named) / 2 or any(len(h) > MAX_COLUMN_NAME for h in named):
        return None
    if all(_NUMBER.match(h) for h in named):
        return None  # no header: the first line is data
    return Head(delim, header, tuple(tuple(r) for r in rows[1:]))


def _all_rows(text: str, delimiter: str) -> tuple[list, np.ndarray, np.ndarray, dict[int, str]]:
    """Every row: ``(rows, start lines, end lines, {row index: csv error})``, 1-based lines.

    When every row is exactly one line (the usual case) the rows are parsed at
    C speed with no Python work per row; otherwise row by row, so that a csv
    error (or a quoted field running over several lines) is pinned to its lines.
    """
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, skipinitialspace=True)
    try:
        rows = list(reader)
        if reader.line_num == len(rows):
            lines = np.arange(1, len(rows) + 1, dtype=np.int64)
            return rows, lines, lines, {}
    except csv.Error:
        pass
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, skipinitialspace=True)
    rows, starts, ends, errors = [], [], [], {}
    prev = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            errors[len(rows)] = str(exc)
            row = []
        rows.append(row)
        starts.append(prev + 1)
        ends.append(reader.line_num)
        prev = reader.line_num
    return rows, np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64), errors


def _skip_row(skipped: SkipLog, row: list[str], start: int, end: int, k: int, truncated: bool,
              delim: str) -> None:
    """Count one row that does not have the header's number of fields (blank lines are not counted)."""
    text = delim.join(row)
    if not any(c.strip() for c in row):
        return
    if row[0].lstrip().startswith("#"):
        skipped.add(start, "comment line", text)
    elif truncated and len(row) < k:
        skipped.add(start, f"truncated last line ({len(row)} of {k} fields)", text)
    else:
        spans = f" (one row over lines {start}-{end}: unbalanced quote?)" if end > start else ""
        skipped.add(start, f"wrong number of fields (expected {k}, got {len(row)}){spans}", text,
                    n=int(end - start + 1))


def _split_stray_quotes(text: str, delim: str, k: int, rows: list, starts: np.ndarray, ends: np.ndarray,
                        errors: dict[int, str]) -> tuple[list, np.ndarray, np.ndarray, dict[int, str]]:
    """A row quoted over several lines whose lines each look like a whole row was a stray quote: split it.

    Without this, one unbalanced ``"`` would swallow every following line into one cell.
    """
    physical = _LINEBREAK.split(text)
    new_rows: list = []
    new_starts: list[int] = []
    new_ends: list[int] = []
    new_errors: dict[int, str] = {}
    for i, row in enumerate(rows):
        s, e = int(starts[i]), int(ends[i])
        parts = list(csv.reader(physical[s - 1:e], delimiter=delim, quoting=csv.QUOTE_NONE,
                                skipinitialspace=True)) if e > s else None
        if parts is not None and all(len(p) == k or not any(c.strip() for c in p) for p in parts):
            new_rows.extend(parts)
            new_starts.extend(range(s, e + 1))
            new_ends.extend(range(s, e + 1))
            continue
        if i in errors:
            new_errors[len(new_rows)] = errors[i]
        new_rows.append(row)
        new_starts.append(s)
        new_ends.append(e)
    return (new_rows, np.asarray(new_starts, dtype=np.int64), np.asarray(new_ends, dtype=np.int64),
            new_errors)


def parse_table(path: Path) -> Table:
    """Read a delimited file with a header row; see the module docstring."""
    skipped = SkipLog()
    text = read_text(path, skipped).lstrip("\ufeff")
    lines, comments = _content_lines(text[:1024 * 1024])
    for ln in comments:
        skipped.add(ln, "comment line")
    if not lines:
        raise UnreadableFileError(path, "file holds only comments, no header row")
    header_line = lines[0][0]
    if lines[0][1].lstrip()[:1] in ("{", "["):
        raise UnreadableFileError(path, f"line {header_line} starts with {lines[0][1].lstrip()[0]!r}: "
                                        "JSON, not a CSV header")
    delim = choose_delimiter(lines[0][1], [ln for _, ln in lines[1:]]) or ","
    rows, starts, ends, errors = _all_rows(text, delim)
    h = int(np.searchsorted(ends, header_line))
    raw_header = rows[h]
    header = [c.strip() for c in raw_header]
    if not any(header):
        raise UnreadableFileError(path, f"no header row: line {header_line} holds no column names")
    if all(_NUMBER.match(c) for c in header if c):
        raise UnreadableFileError(path, f"no header row: line {header_line} holds numbers, not column names")
    k = len(header)
    rows, starts, ends = rows[h + 1:], starts[h + 1:], ends[h + 1:]
    errors = {i - h - 1: e for i, e in errors.items() if i > h}
    if (ends > starts).any():
        rows, starts, ends, errors = _split_stray_quotes(text, delim, k, rows, starts, ends, errors)
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    good = lengths == k
    for i in np.flatnonzero(lengths == k + 1):  # a trailing delimiter on a data line
        if not rows[i][-1].strip():
            rows[i], good[i] = rows[i][:k], True
    for row, err in errors.items():
        good[row] = False
        skipped.add(int(starts[row]), f"unparseable row ({err})")
    truncated_end = not text.endswith(("\n", "\r"))
    for i in np.flatnonzero(~good):
        if i not in errors:
            _skip_row(skipped, rows[i], starts[i], ends[i], k, truncated_end and i == len(rows) - 1, delim)
    keep = np.flatnonzero(good)
    kept = rows if len(keep) == len(rows) else [rows[i] for i in keep]
    columns = [np.asarray(c, dtype=object) for c in zip(*kept)] if kept else \
        [np.array([], dtype=object) for _ in header]
    lines_kept = starts[keep]
    # a header written again (a restarted writer): most of its cells are the column names
    same = sum((c == f) | (c == f.strip()) for c, f in zip(columns, raw_header)) if kept else np.zeros(0)
    repeat = np.asarray(same, dtype=np.int64) >= max(1, (k + 1) // 2)
    for i in np.flatnonzero(repeat):
        skipped.add(int(lines_kept[i]), "header line again", delim.join(c[i] for c in columns))
    if repeat.any():
        columns = [c[~repeat] for c in columns]
        lines_kept = lines_kept[~repeat]
    notes = [n for n in [skipped.replaced_note()] if n]
    return Table(header, columns, lines_kept, delim, skipped, notes)


def to_numbers(cells: np.ndarray, decimal_comma: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """One column of cells -> ``(values, present, bad, unwrapped)``.

    ``present`` marks cells that hold a value (numbers, ``nan``, ``inf``);
    ``bad`` marks non-empty cells that are not numbers; ``unwrapped`` counts
    ``tensor(0.5)`` cells read as their number.
    """
    cells = np.asarray(cells, dtype=object)
    empty = cells == ""
    values = np.full(len(cells), np.nan)
    try:  # fast path: every non-empty cell is a plain number
        values[~empty] = cells[~empty].astype("float64")
        return values, ~empty, np.zeros(len(cells), dtype=bool), 0
    except (ValueError, TypeError):
        values = np.array(pd.to_numeric(pd.Series(cells), errors="coerce").to_numpy(dtype="float64",
                                                                                    na_value=np.nan))
    present = ~np.isnan(values)
    bad = np.zeros(len(cells), dtype=bool)
    idx = np.flatnonzero(~present & ~empty)
    if not len(idx):
        return values, present, bad, 0
    sub = pd.Series(cells[idx], dtype=object).str.strip()
    low = sub.str.lower()
    is_nan = low.isin(NAN_TOKENS).to_numpy()
    is_null = (low.isin(NULL_TOKENS) | (sub == "")).to_numpy()
    rest_idx = idx[~is_nan & ~is_null]
    rest = sub[~is_nan & ~is_null]
    fixed = pd.to_numeric(rest, errors="coerce")
    tensor = pd.to_numeric(rest.str.extract(_TENSOR, expand=False), errors="coerce")
    unwrapped = int((fixed.isna() & tensor.notna()).sum())
    fixed = fixed.fillna(tensor)
    if decimal_comma:
        comma = rest.str.match(_DECIMAL_COMMA).fillna(False).to_numpy() & fixed.isna().to_numpy()
        fixed[comma] = pd.to_numeric(rest[comma].str.replace(",", ".", regex=False), errors="coerce")
    ok = fixed.notna().to_numpy()
    values[rest_idx] = fixed.to_numpy(dtype="float64", na_value=np.nan)
    present[idx[is_nan]] = True
    present[rest_idx[ok]] = True
    bad[rest_idx[~ok]] = True
    return values, present, bad, unwrapped


def wall_seconds(cells: np.ndarray) -> np.ndarray | None:
    """Seconds since 1970 from epoch numbers (s or ms) or date strings; ``None`` if not a wall clock.

    Numbers below :data:`MIN_WALL_TIME` are elapsed times (a metric), not a clock.
    """
    values, present, bad, _ = to_numbers(cells)
    finite = values[present & np.isfinite(values)]
    if present.sum() >= bad.sum() and len(finite):
        med = float(np.median(finite))
        if med < MIN_WALL_TIME:
            return None
        return np.where(present, values / (1000.0 if med > 1e11 else 1.0), np.nan)
    s = pd.Series(cells, dtype=object).str.strip()
    filled = max(int(s.ne("").sum()), 1)
    parsed = pd.to_datetime(s, errors="coerce", utc=True, format="ISO8601")
    if parsed.notna().sum() < 0.8 * filled:
        sample = s[s.ne("")].head(20)  # other date styles parse slowly: try a sample first
        if pd.to_datetime(sample, errors="coerce", utc=True, format="mixed").notna().sum() < 0.8 * len(sample):
            return None
        parsed = pd.to_datetime(s, errors="coerce", utc=True, format="mixed")
        if parsed.notna().sum() < 0.8 * filled:
            return None
    secs = (parsed - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    return np.array(secs.to_numpy(dtype="float64", na_value=np.nan))


def log_many(skipped: SkipLog, lines: np.ndarray, reason: str, texts: np.ndarray | None = None) -> None:
    """Count many skipped cells under one reason, keeping examples only while there is room."""
    n = len(lines)
    if not n:
        return
    room = min(max(skipped.max_examples - len(skipped.examples), 0), n)
    for i in range(room):
        skipped.add(int(lines[i]), reason, "" if texts is None else str(texts[i]))
    if n > room:
        skipped.add(int(lines[room]), reason, "", n=n - room)


__all__ = ["Table", "Head", "norm_name", "choose_delimiter", "sniff_head", "parse_table", "to_numbers",
           "wall_seconds", "log_many"]
