"""Vectorised tokenising of a chunk of a text log.

Most lines of a big diagnostic log are one ``key: number`` (or ``key=number``),
a bare ``param.name:`` subject line, or blank. Those are recognised and cut up
with numpy over the raw bytes and pyarrow's RE2 kernels, never one Python call
per line. Every other line goes to :func:`_text_grammar.parse_line`. Keys the
fast path finds are checked against the grammar once per *distinct* key, so both
paths read every line the same way (tests compare them on whole logs).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import _text_grammar as g

_NUM = r"[-+]?(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|NaN|NAN|inf|Inf|INF|infinity|Infinity)"
_SIMPLE_RE = rf"^[ \t]*[A-Za-z_][^:=|,;\n]*?[ \t]*[:=][ \t]*(?:{_NUM})\s*$"
_SUBJECT_RE = r"^[ \t]*[A-Za-z_][\w.\-/\[\]]*[ \t]*:\s*$"
_SPACE = np.zeros(256, dtype=bool)
_SPACE[[9, 32]] = True
_COLON, _EQUALS, _CR = 58, 61, 13
#: Lines longer than this are not parsed by the Python grammar (counted as skipped).
MAX_LINE = 64 * 1024


@dataclass
class Chunk:
    """What one chunk of lines holds, with absolute 1-based line numbers."""

    n_lines: int = 0
    # fast values
    v_line: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    v_key: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    v_param: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    v_value: np.ndarray = field(default_factory=lambda: np.empty(0, np.float64))
    keys: list[str] = field(default_factory=list)
    subjects: list[str] = field(default_factory=list)
    # slow lines: (line, Parsed, param index or -1)
    parsed: list[tuple[int, g.Parsed, int]] = field(default_factory=list)
    skipped: list[tuple[int, str, str]] = field(default_factory=list)
    tracebacks: list[tuple[int, str]] = field(default_factory=list)
    bad_utf8_lines: list[int] = field(default_factory=list)
    #: slow lines that mention accumulation, for the config phrases ("Gradient accumulation ... steps=3")
    phrase_lines: list[tuple[int, str]] = field(default_factory=list)
    n_blank: int = 0


def _line_bounds(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    nl = np.flatnonzero(a == 10)
    starts = np.empty(len(nl) + 1, dtype=np.int64)
    starts[0] = 0
    starts[1:] = nl + 1
    ends = np.empty(len(nl) + 1, dtype=np.int64)
    ends[:-1] = nl
    ends[-1] = len(a)
    if starts[-1] == len(a):           # the chunk ended with a newline
        starts, ends = starts[:-1], ends[:-1]
    has_cr = (ends > starts) & (a[np.maximum(ends - 1, 0)] == _CR)
    return starts, ends - has_cr


def _skip_spaces(a: np.ndarray, pos: np.ndarray, limit: np.ndarray, step: int) -> np.ndarray:
    """Move each position forward (step=1) or backward (step=-1) over spaces and tabs, up to ``limit``."""
    pos = pos.copy()
    active = np.ones(len(pos), dtype=bool)
    while True:
        probe = pos if step > 0 else pos - 1
        ok = active & ((probe < limit) if step > 0 else (probe >= limit))
        ok[ok] = _SPACE[a[probe[ok]]]
        if not ok.any():
            return pos
        pos[ok] += step
        active = ok


def _gather(a: np.ndarray, start: np.ndarray, stop: np.ndarray) -> pa.LargeStringArray:
    """The byte ranges ``a[start:stop]`` (sorted, non-overlapping) as one Arrow string array."""
    lens = np.maximum(stop - start, 0)
    offs = np.zeros(len(lens) + 1, dtype=np.int64)
    np.cumsum(lens, out=offs[1:])
    mark = np.zeros(len(a) + 1, dtype=np.int8)
    np.add.at(mark, start[lens > 0], 1) if len(start) < 1000 else None
    if len(start) >= 1000:
        nz = lens > 0
        mark[start[nz]] += 1
        mark[stop[nz]] -= 1
    else:
        np.add.at(mark, stop[lens > 0], -1)
    inside = np.cumsum(mark[:-1], dtype=np.int8).view(bool)
    data = a[inside]
    return pa.LargeStringArray.from_buffers(len(lens), pa.py_buffer(offs), pa.py_buffer(data))


def tokenize(buf: bytes, first_line: int, fast: bool = True) -> Chunk:
    """Tokenise ``buf`` (whole lines, valid UTF-8), whose first line is ``first_line`` (1-based)."""
    a = np.frombuffer(buf, dtype=np.uint8)
    out = Chunk()
    if len(a) == 0:
        return out
    starts, ends = _line_bounds(a)
    n = len(starts)
    out.n_lines = n
    indent_end = _skip_spaces(a, starts, ends, 1)
    indent = indent_end - starts
    blank = indent_end >= ends
    last = a[np.maximum(ends - 1, 0)]
    cand_subject = ~blank & (last == _COLON)

    offsets = np.empty(n + 1, dtype=np.int64)
    offsets[:-1] = starts
    offsets[-1] = len(a)
    lines = pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(buf))

    is_subject = np.zeros(n, dtype=bool)
    ci = np.flatnonzero(cand_subject)
    if len(ci):
        is_subject[ci] = pc.match_substring_regex(lines.take(pa.array(ci)), _SUBJECT_RE).to_numpy(
            zero_copy_only=False)
    simple = np.zeros(n, dtype=bool)
    if fast:
        simple = pc.match_substring_regex(lines, _SIMPLE_RE).to_numpy(zero_copy_only=False) & ~blank

    # subjects: a bare "name:" line is the subject of the more-indented lines under it
    pos = np.arange(n)
    last_subj = np.maximum.accumulate(np.where(is_subject, pos, -1))
    subj_indent = np.where(last_subj >= 0, indent[np.maximum(last_subj, 0)], -1)
    breaker = ~blank & ~is_subject & (last_subj >= 0) & (indent <= subj_indent)
    last_break = np.maximum.accumulate(np.where(breaker, pos, -1))
    active = (last_subj >= 0) & (last_break < last_subj)
    si = np.flatnonzero(is_subject)
    subj_codes = np.full(n, -1, dtype=np.int32)
    if len(si):
        stop = _skip_spaces(a, ends[si] - 1, indent_end[si], -1)   # drop the ':' and spaces before it
        names = pc.dictionary_encode(_gather(a, indent_end[si], stop))
        out.subjects = names.dictionary.to_pylist()
        subj_codes[si] = names.indices.to_numpy(zero_copy_only=False)
    param_of_line = np.where(active, subj_codes[np.maximum(last_subj, 0)], -1).astype(np.int32)

    if simple.any():
        _fast_values(a, lines, simple, starts, indent_end, ends, first_line, param_of_line, out)

    slow = np.flatnonzero(~blank & ~is_subject & ~simple)
    out.n_blank = int(blank.sum())
    _slow_lines(buf, slow, starts, ends, first_line, param_of_line, out)
    return out


def _fast_values(a, lines, simple, starts, indent_end, ends, first_line, param_of_line, out: Chunk) -> None:
    fi = np.flatnonzero(simple)
    sub = lines.take(pa.array(fi))
    sep_rel = pc.find_substring_regex(sub, "[:=]").to_numpy(zero_copy_only=False)
    sep = starts[fi] + sep_rel
    key_stop = _skip_spaces(a, sep, indent_end[fi], -1)
    val_start = _skip_spaces(a, sep + 1, ends[fi], 1)
    val_stop = _skip_spaces(a, ends[fi], val_start, -1)
    keys = pc.dictionary_encode(_gather(a, indent_end[fi], key_stop))
    key_list = keys.dictionary.to_pylist()
    key_codes = keys.indices.to_numpy(zero_copy_only=False).astype(np.int32)
    # a key the grammar would read differently ("INFO loss", "Epoch 3") goes to the slow path
    bad = np.array([not _agrees(k) for k in key_list], dtype=bool)
    if bad.any():
        back = bad[key_codes]
        simple[fi[back]] = False
        keep = ~back
        fi, key_codes, val_start, val_stop = fi[keep], key_codes[keep], val_start[keep], val_stop[keep]
    vals = _gather(a, val_start, val_stop)
    if pc.any(pc.match_substring(vals, ",")).as_py():    # thousands separators
        vals = pc.replace_substring(vals, ",", "")
    out.v_value = pc.cast(vals, pa.float64()).to_numpy(zero_copy_only=False)
    out.v_line = fi.astype(np.int64) + first_line
    out.v_key = key_codes
    out.keys = key_list
    out.v_param = param_of_line[fi]


_AGREES: dict[str, bool] = {}
_PARSED: dict[str, g.Parsed] = {}


def _parse_cached(text: str) -> g.Parsed:
    """``parse_line`` with a cache: separators, section titles and notes repeat in every block."""
    p = _PARSED.get(text)
    if p is None:
        p = g.parse_line(text)
        if len(_PARSED) < 50_000 and len(text) < 300:
            _PARSED[text] = p
    return p


def _agrees(key: str) -> bool:
    """Whether the grammar reads ``key: 1`` as exactly the value ``key`` = 1 and nothing else."""
    ok = _AGREES.get(key)
    if ok is None:
        p = g.parse_line(f"{key}: 1")
        ok = (p.kind == "values" and p.values == [(key, 1.0)] and not p.context and p.timestamp is None)
        if len(_AGREES) < 100_000:
            _AGREES[key] = ok
    return ok


def _slow_lines(buf: bytes, idx: np.ndarray, starts, ends, first_line: int, param_of_line, out: Chunk) -> None:
    in_tb = False
    tb_line = 0
    for i in idx.tolist():
        s, e = int(starts[i]), int(ends[i])
        ln = i + first_line
        if e - s > MAX_LINE:
            out.skipped.append((ln, f"line longer than {MAX_LINE // 1024} KiB", f"{e - s:,} bytes"))
            continue
        text = buf[s:e].decode("utf-8", errors="replace")
        if in_tb:
            if text[:1] in (" ", "\t") or not text.strip():
                continue
            in_tb = False
            out.tracebacks.append((tb_line, text.strip()[:300]))
            continue
        if g.is_traceback_start(text):
            in_tb, tb_line = True, ln
            continue
        if "ccumulat" in text:
            out.phrase_lines.append((ln, text))
        p = _parse_cached(text)
        if p.kind == "blank":
            out.n_blank += 1
        elif p.kind == "text" and p.phase is None:
            out.skipped.append((ln, "no numeric value (message text)", text))
        else:
            if p.kind == "text_values" and not p.values:
                out.skipped.append((ln, "non-numeric value", text))
            out.parsed.append((ln, p, int(param_of_line[i])))
    if in_tb:
        out.tracebacks.append((tb_line, "(no exception line: the log ends inside the traceback)"))
