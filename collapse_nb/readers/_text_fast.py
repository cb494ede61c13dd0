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
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from . import _text_grammar as g

_NUM = (r"[-+]?(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
        r"|[-+]?(?:nan|NaN|NAN|inf|Inf|INF|infinity|Infinity)")
_SIMPLE_RE = rf"^[ \t]*[A-Za-z_][^:=|,;\n]*?[ \t]*[:=][ \t]*(?:{_NUM})\s*$"
_SUBJECT_RE = r"^[ \t]*[A-Za-z_][\w.\-/\[\]]*[ \t]*:\s*$"
_SPACE = np.zeros(256, dtype=bool)
_SPACE[[9, 11, 12, 13, 32]] = True      # what str.strip() and the regex \s take as space
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
    #: with ``by_shape``: the other lines, not read yet (0-based index, start, end, subject index or -1)
    slow: tuple | None = None


REASON_TEXT = "no numeric value (message text)"
REASON_NON_NUMERIC = "non-numeric value"
_PHASES: dict[str | None, int] = {"train": 0, "val": 1, "test": 2}
_EMPTY_I64 = np.empty(0, np.int64)


@dataclass
class Columns:
    """One chunk, read: everything the reader keeps, as arrays in line order.

    Two sets of value rows, each in line order (no line has both): the fast path's ``f_*``, with
    0-based line indices within the chunk (line ``first_line + f_line``), and the other lines'
    (``line`` ... ``ts``), with line numbers. Codes are local to the chunk: keys index ``keys``,
    params index ``subjects`` (-1: none), ``ts`` indexes ``ts_list`` (-1: none). Events are the lines
    that set context or phase (phase codes: -1 none, 0 train, 1 val, 2 test; NaN where a line does
    not set that field).
    """

    n_lines: int = 0
    n_bytes: int = 0
    first_line: int = 1
    f_line: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    f_key: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    f_param: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    f_value: np.ndarray = field(default_factory=lambda: np.empty(0, np.float64))
    line: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    key: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    param: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    value: np.ndarray = field(default_factory=lambda: np.empty(0, np.float64))
    ts: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    keys: list[str] = field(default_factory=list)
    subjects: list[str] = field(default_factory=list)
    ts_list: list[str] = field(default_factory=list)
    ev_line: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    ev_epoch: np.ndarray = field(default_factory=lambda: np.empty(0, np.float64))
    ev_batch: np.ndarray = field(default_factory=lambda: np.empty(0, np.float64))
    ev_step: np.ndarray = field(default_factory=lambda: np.empty(0, np.float64))
    ev_phase: np.ndarray = field(default_factory=lambda: np.empty(0, np.int8))
    sections: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    #: (line, key, text, subject index or -1), only before the chunk's first epoch/batch/step
    text_values: list[tuple[int, str, str, int]] = field(default_factory=list)
    #: the first few skipped lines (line order), and how many lines were skipped for each reason
    skip_examples: list[tuple[int, str, str]] = field(default_factory=list)
    skip_counts: dict[str, int] = field(default_factory=dict)
    tracebacks: list[tuple[int, str]] = field(default_factory=list)
    bad_utf8_lines: list[int] = field(default_factory=list)
    phrase_lines: list[tuple[int, str]] = field(default_factory=list)
    #: ``(first line holding NUL bytes, how many NUL bytes)`` of the chunk: crash padding, removed before parsing
    nul: tuple[int, int] | None = None

    @property
    def n_rows(self) -> int:
        return len(self.f_line) + len(self.line)

    def shift(self, offset: int) -> None:
        """Move every line number by ``offset`` (a chunk numbered from 1, put in its place in the file)."""
        if not offset:
            return
        self.first_line += offset
        self.line += offset
        self.ev_line += offset
        self.sections += offset
        self.text_values = [(ln + offset, k, v, p) for ln, k, v, p in self.text_values]
        self.skip_examples = [(ln + offset, r, t) for ln, r, t in self.skip_examples]
        self.tracebacks = [(ln + offset, t) for ln, t in self.tracebacks]
        self.phrase_lines = [(ln + offset, t) for ln, t in self.phrase_lines]
        self.bad_utf8_lines = [ln + offset for ln in self.bad_utf8_lines]
        if self.nul is not None:
            self.nul = (self.nul[0] + offset, self.nul[1])

    def key_order(self) -> list[int]:
        """The chunk's key codes in the order its lines first use them."""
        if not len(self.line):
            return pd.unique(self.f_key).tolist()
        if not len(self.f_line):
            return pd.unique(self.key).tolist()
        f_first = pd.Series(np.arange(len(self.f_key))).groupby(self.f_key).first()
        s_first = pd.Series(np.arange(len(self.key))).groupby(self.key).first()
        at: dict[int, int] = {}
        for c, i in f_first.items():
            at[int(c)] = int(self.f_line[i]) + self.first_line
        for c, i in s_first.items():
            ln = int(self.line[i])
            if int(c) not in at or ln < at[int(c)]:
                at[int(c)] = ln
        return sorted(at, key=at.__getitem__)


class SlowOut:
    """Collects what the lines outside the fast path give, per line (``add_parsed``) or in bulk."""

    MAX_EXAMPLES = 20

    def __init__(self, keys: list[str] | None = None):
        self.keys = list(keys or [])
        self._code = {k: i for i, k in enumerate(self.keys)}
        self.ts_list: list[str] = []
        self.rows: list[tuple] = []                 # (line, key, param, value, ts) arrays, in bulk
        self._rl: list[int] = []        # line
        self._rk: list[int] = []        # key code
        self._rp: list[int] = []        # parse index
        self._rv: list[float] = []      # value
        self._rt: list[int] = []        # timestamp index (-1: none)
        self.events: list[tuple] = []               # (line, epoch, batch, step, phase) arrays, in bulk
        self._el: list[int] = []        # line
        self._ee: list[float] = []      # epoch
        self._eb: list[float] = []      # batch
        self._es: list[float] = []      # step
        self._ep: list[int] = []        # phase code
        self.sections: list[np.ndarray] = []       # in bulk
        self._sec: list[int] = []
        self.text_values: list[tuple[int, str, str, int]] = []
        self.skips: list[tuple[int, str, str | None]] = []
        self.skip_bulk: list[tuple[np.ndarray, str]] = []
        self.tracebacks: list[tuple[int, str]] = []
        self.phrase_lines: list[tuple[int, str]] = []
        self.n_blank = 0

    def code(self, k: str) -> int:
        c = self._code.get(k)
        if c is None:
            c = self._code[k] = len(self.keys)
            self.keys.append(k)
        return c

    def add_parsed(self, ln: int, p: g.Parsed, pi: int) -> None:
        """One line the grammar read (kind not blank, not plain text)."""
        ts = -1
        if p.timestamp is not None and p.values:
            ts = len(self.ts_list)
            self.ts_list.append(p.timestamp)
        for k, v in p.values:
            self._rl.append(ln)
            self._rk.append(self.code(k))
            self._rp.append(pi)
            self._rv.append(v)
            self._rt.append(ts)
        if p.context or p.phase:
            ctx = p.context
            self._el.append(ln)
            self._ee.append(ctx.get("epoch", np.nan))
            self._eb.append(ctx.get("batch", np.nan))
            self._es.append(ctx.get("step", np.nan))
            code = _PHASES.get(p.phase, -1)
            # a line with its own values, context and phase word ("validation loss at iteration 100 | lm loss
            # value: 9.08") is about itself: its phase does not carry over to the lines after it
            self._ep.append(code + OWN_PHASE if code >= 0 and p.kind == "values" and p.context else code)
        if p.kind == "section":
            self._sec.append(ln)
        for key, text in p.text_values:
            self.text_values.append((ln, key, text, pi))

    def finish(self, out: Columns, n_lines: int, fast_rows: tuple | None, text_of, first_line: int) -> Columns:
        """Everything into ``out``; ``fast_rows`` = (0-based line, key, param, value) of the fast lines
        (keys already in ``self.keys``); ``text_of(line)`` gives a line's text for skip examples."""
        out.n_lines = n_lines
        out.first_line = first_line
        if fast_rows is not None:
            out.f_line, out.f_key, out.f_param, out.f_value = fast_rows
        rows = self.rows + ([(np.asarray(self._rl, np.int64), np.asarray(self._rk, np.int32),
                              np.asarray(self._rp, np.int32), np.asarray(self._rv, np.float64),
                              np.asarray(self._rt, np.int32))] if self._rl else [])
        out.line, out.key, out.param, out.value, out.ts = _concat_sorted(
            rows, 5, (np.int64, np.int32, np.int32, np.float64, np.int32))
        out.keys, out.ts_list = self.keys, self.ts_list
        evs = self.events + ([(np.asarray(self._el, np.int64), np.asarray(self._ee, np.float64),
                               np.asarray(self._eb, np.float64), np.asarray(self._es, np.float64),
                               np.asarray(self._ep, np.int8))] if self._el else [])
        out.ev_line, out.ev_epoch, out.ev_batch, out.ev_step, out.ev_phase = _concat_sorted(
            evs, 5, (np.int64, np.float64, np.float64, np.float64, np.int8))
        secs = self.sections + ([np.asarray(self._sec, np.int64)] if self._sec else [])
        out.sections = np.sort(np.concatenate(secs)) if secs else _EMPTY_I64
        # text values are configuration only before the first epoch/batch/step: one of this chunk's, or earlier
        has_ctx = ~(np.isnan(out.ev_epoch) & np.isnan(out.ev_batch) & np.isnan(out.ev_step))
        limit = int(out.ev_line[has_ctx][0]) if has_ctx.any() else None
        out.text_values = sorted((t for t in self.text_values if limit is None or t[0] < limit), key=lambda t: t[0])
        out.tracebacks = sorted(self.tracebacks, key=lambda t: t[0])
        out.phrase_lines = sorted(self.phrase_lines, key=lambda t: t[0])
        self._skips_into(out, text_of)
        return out

    def _skips_into(self, out: Columns, text_of) -> None:
        lines = [np.asarray([s[0] for s in self.skips], np.int64)] + [b[0] for b in self.skip_bulk]
        reasons = [s[1] for s in self.skips] + [b[1] for b in self.skip_bulk]
        if not sum(len(x) for x in lines):
            return
        rid = {r: i for i, r in enumerate(dict.fromkeys(reasons))}
        names = list(rid)
        rcode = np.concatenate([np.asarray([rid[s[1]] for s in self.skips], np.int64)] +
                               [np.full(len(b[0]), rid[b[1]], np.int64) for b in self.skip_bulk])
        texts = {s[0]: s[2] for s in self.skips}
        allln = np.concatenate(lines)
        order = np.argsort(allln, kind="stable")
        allln, rcode = allln[order], rcode[order]
        first: dict[int, int] = {}
        for r in np.unique(rcode):
            first[int(r)] = int(np.flatnonzero(rcode == r)[0])
        for r in sorted(first, key=first.__getitem__):         # by first occurrence, as SkipLog would count them
            out.skip_counts[names[r]] = int(np.count_nonzero(rcode == r))
        for ln, r in zip(allln[:self.MAX_EXAMPLES].tolist(), rcode[:self.MAX_EXAMPLES].tolist()):
            t = texts.get(ln)
            out.skip_examples.append((ln, names[r], t if t is not None else text_of(ln)))


def _concat_sorted(parts: list[tuple], n: int, dtypes) -> tuple:
    if not parts:
        return tuple(np.empty(0, dt) for dt in dtypes)
    cols = [np.concatenate([p[i] for p in parts]).astype(dtypes[i], copy=False) if len(parts) > 1
            else np.asarray(parts[0][i], dtypes[i]) for i in range(n)]
    if len(cols[0]) > 1 and np.any(cols[0][1:] < cols[0][:-1]):
        order = np.argsort(cols[0], kind="stable")
        cols = [c[order] for c in cols]
    return tuple(cols)


def to_columns(ch: Chunk, first_line: int) -> Columns:
    """A :class:`Chunk` from :func:`tokenize` (``first_line`` as given to it) as :class:`Columns`."""
    slow = SlowOut(ch.keys)
    for ln, p, pi in ch.parsed:
        slow.add_parsed(ln, p, pi)
    slow.skips = [(ln, r, t) for ln, r, t in ch.skipped]
    out = Columns(subjects=list(ch.subjects), bad_utf8_lines=list(ch.bad_utf8_lines))
    slow.tracebacks = list(ch.tracebacks)
    slow.phrase_lines = list(ch.phrase_lines)
    return slow.finish(out, ch.n_lines, ((ch.v_line - first_line).astype(np.int32), ch.v_key.astype(np.int32),
                                         ch.v_param.astype(np.int32), ch.v_value), None, first_line)


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


def tokenize(buf: bytes, first_line: int, fast: bool = True, by_shape: bool = False) -> Chunk:
    """Tokenise ``buf`` (whole lines, valid UTF-8), whose first line is ``first_line`` (1-based).

    ``fast=False`` leaves every line but blank and subject lines to the grammar (the reference
    engine). ``by_shape``: the other lines are not read here but handed back in ``Chunk.slow``
    (``_text_shapes`` reads them)."""
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
        simple &= ~traceback_lines(a, buf, starts, ends)
    if simple.any():
        _fast_values(a, lines, simple, starts, indent_end, ends, first_line, param_of_line, out)

    slow = np.flatnonzero(~blank & ~is_subject & ~simple)
    out.n_blank = int(blank.sum())
    if by_shape:
        out.slow = (slow.astype(np.int32), starts[slow], ends[slow], param_of_line[slow].astype(np.int32))
        return out
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


NO_EXCEPTION_LINE = "(no exception line: the traceback stops before one)"
_TB = g._TRACEBACK_START.encode()


def traceback_lines(a: np.ndarray, buf: bytes, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """A mask of the (0-based) lines of ``buf`` inside a Python traceback: from its ``Traceback (most recent
    call last):`` line through its indented frames and blank lines to the first unindented line (its
    exception line, or the line a traceback without one stops before). These lines are read by the grammar,
    never by a fast path (a frame's code line ``    lr: 0.001`` is no metric)."""
    n = len(starts)
    mask = np.zeros(n, dtype=bool)
    pos = buf.find(_TB)
    if pos < 0:
        return mask
    first = a[np.minimum(starts, max(len(a) - 1, 0))] if len(a) else np.empty(0, np.uint8)
    unindented = (first != 32) & (first != 9) & (ends > starts)
    heads = []
    while pos >= 0:
        heads.append(pos)
        pos = buf.find(_TB, pos + len(_TB))
    head_lines = np.searchsorted(starts, np.array(heads), side="right") - 1
    ends_at = np.flatnonzero(unindented)
    for h in np.unique(head_lines).tolist():
        k = int(np.searchsorted(ends_at, h, side="right"))
        stop = int(ends_at[k]) if k < len(ends_at) else n - 1
        mask[h:stop + 1] = True
    return mask


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
            if g.is_exception_line(text):
                out.tracebacks.append((tb_line, text.strip()[:300]))
                continue
            out.tracebacks.append((tb_line, NO_EXCEPTION_LINE))    # and this line is read as any other
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



#: Added to a phase code (0 train, 1 val, 2 test) of an event whose phase is its own line's only.
OWN_PHASE = 4


def context_states(ev_e, ev_b, ev_s, ev_p, ev_reset):
    """The context state machine over the header events (phase codes: -1 none, 0 train, 1 val, 2 test).

    Returns, per event, the epoch, batch, step, phase and segment in force after it, and whether it
    starts a new segment (a ``reset``, or a counter that goes back; a step that goes back while the
    epoch moves on is counted within the epoch and is not a restart). Plain Python over lists or arrays;
    ``_text_jit`` compiles this same function with numba.
    """
    n = len(ev_e)
    own_phase = OWN_PHASE
    ep = np.empty(n)
    ba = np.empty(n)
    st = np.empty(n)
    ph = np.empty(n, dtype=np.int8)
    seg = np.empty(n, dtype=np.int64)
    back = np.zeros(n, dtype=np.bool_)
    nan = np.nan
    epoch = nan
    batch = nan
    step = nan
    # the highest batch seen in this epoch, per phase (index phase + 1), for spotting restarts: an
    # evaluation loop counts its batches from 0 again each time it starts, without the run restarting
    last = np.full(4, nan)
    phase = -1
    segment = 0
    for i in range(n):
        e = ev_e[i]
        b = ev_b[i]
        s = ev_s[i]
        p = ev_p[i]
        own = p >= own_phase            # the phase of this line only (see OWN_PHASE)
        if own:
            p = p - own_phase
        if p != -1 and p != phase and p != 0 and not own:
            last[p + 1] = nan
        counted = p if p != -1 else phase
        lb = last[counted + 1]
        # a step that goes back as the epoch moves on counts within the epoch (pix2pix 'iters'): no restart
        moved_on = e == e and epoch == epoch and e > epoch
        restart = ev_reset[i] or (e < epoch) or (s < step and not moved_on) or \
            (b == b and (e == epoch or e != e) and b < lb)
        if restart:
            segment += 1
            back[i] = True
            epoch = nan
            batch = nan
            step = nan
            for q in range(4):
                last[q] = nan
            phase = -1
        if e == e:
            if e != epoch:
                phase = -1 if own else p
                for q in range(4):
                    last[q] = nan
            batch = nan         # an epoch line without a batch is about the whole epoch
            epoch = e
        if b == b:
            batch = b
            cur = last[counted + 1]
            last[counted + 1] = b if cur != cur else max(cur, b)
        if s == s:
            step = s
        if p != -1 and not own:
            phase = p
        ep[i] = epoch
        ba[i] = batch
        st[i] = step
        ph[i] = p if own else phase
        seg[i] = segment
    return ep, ba, st, ph, seg, back
