"""Reading the lines outside the fast path by their *shape*: the line with each digit replaced by ``0``.

The grammar's regular expressions only ever look at whether a character is a digit, never at which
digit it is, so every line of one shape is read the same way, except for the text of its numbers
(and of the strings that hold digits, as timestamps do). The grammar runs on one line of each shape,
and on a few copies of it with other digits, to find where each number and each digit-bearing string
comes from (:func:`build_plan`); the other lines of that shape are then read from the bytes at those
offsets (:func:`slow_lines`). A shape whose reading cannot be explained that way is read line by line
by the grammar, as are lines that are not ASCII, very long lines, traceback lines and lines that
mention accumulation, and shapes met only once.

Both tokenisers use this: the compiled one (``_text_jit``) with numba kernels for grouping lines by
shape and reading numbers, the numpy one with the plain Python versions here.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np

from . import _text_fast as fast
from . import _text_grammar as g

#: Shapes (templates) longer than this are read line by line.
MAX_TEMPLATE_LEN = 400
#: How many line shapes are remembered (with what the grammar made of them).
MAX_PLANS = 20_000
_TB = b"Traceback (most recent call last):"
_ACC = b"ccumulat"

_PHASE_CODE: dict[str | None, int] = {"train": 0, "val": 1, "test": 2}
_ZERO = bytes.maketrans(b"0123456789", b"0000000000")
_NUMCH = set("0123456789+-.,eE")


def _same_float(x: float, y: float) -> bool:
    if x != x:
        return y != y
    return x == y and math.copysign(1.0, x) == math.copysign(1.0, y)


def _num_candidates(line: str) -> list[tuple[int, int]]:
    """Spans of ``line`` made of number characters that hold a digit, short ones first."""
    out = []
    i, n = 0, len(line)
    while i < n:
        if line[i] in _NUMCH:
            j = i
            while j < n and line[j] in _NUMCH:
                j += 1
            if j - i <= 64 and any(ch.isdigit() for ch in line[i:j]):
                for s in range(i, j):
                    for e in range(s + 1, j + 1):
                        out.append((s, e))
            i = j
        else:
            i += 1
    return out


def _to_number(s: str) -> float | None:
    try:
        return g.to_number(s)
    except ValueError:
        return None


def _str_atom(vals: list[str], lines: list[str]):
    """A string that every line of a shape gives: the same text, or the text at fixed offsets."""
    v0 = vals[0]
    if all(v == v0 for v in vals):
        return v0 if not any(ch.isdigit() for ch in v0) or all(ln == lines[0] for ln in lines) else \
            _str_span(vals, lines)
    return _str_span(vals, lines)


def _str_span(vals: list[str], lines: list[str]):
    n = len(vals[0])
    if any(len(v) != n for v in vals):
        return None
    found = [o for o in range(len(lines[0]) - n + 1)
             if all(ln[o:o + n] == v for ln, v in zip(lines, vals))]
    return (found[0], found[0] + n) if len(found) == 1 else None


def _num_atom(vals: list[float], lines: list[str], cands: list[tuple[int, int]]):
    """A number every line of a shape gives: a constant, or the number at fixed offsets."""
    hits = []
    for s, e in cands:
        x = _to_number(lines[0][s:e])
        if x is None or not _same_float(x, vals[0]):
            continue
        if all((y := _to_number(ln[s:e])) is not None and _same_float(y, v) for ln, v in zip(lines[1:], vals[1:])):
            hits.append((s, e))
    constant = all(_same_float(v, vals[0]) for v in vals)
    if not hits:
        return float(vals[0]) if constant else None
    if constant and any(w in lines[0].lower() for w in ("nan", "inf")):
        return None                         # a nan/inf word or a number that overflows: cannot tell
    # Several overlapping spans may fit (a '+' or a trailing '.' or ',' that float() ignores): they read
    # alike. Two spans that do not overlap are two different numbers in the line that happened to take
    # the same values in every variant (an id's digits beside the epoch): the plan cannot tell which the
    # grammar reads, so there is none, and the lines of this shape are read exactly.
    first = min(hits, key=lambda se: (se[1] - se[0], se[0]))
    if any(e <= first[0] or s >= first[1] for s, e in hits):
        return None
    return first


@dataclass
class Plan:
    """What the grammar makes of every line of one shape. Atoms: a constant, or ``(start, end)`` offsets."""

    kind: str
    phase: int
    values: list            # [(key atom, number atom)]
    context: list           # [(field index: 0 epoch 1 batch 2 step, number atom)]
    timestamp: str | tuple[int, int] | None      # None, or a string atom
    text_values: list       # [(string atom, string atom)]

    def apply_one(self, line: str) -> g.Parsed:
        """The plan read back on one line, as a Parsed (used to check a plan)."""
        def s(atom):
            return line[atom[0]:atom[1]] if isinstance(atom, tuple) else atom

        def f(atom):
            return g.to_number(line[atom[0]:atom[1]]) if isinstance(atom, tuple) else atom
        fields = ("epoch", "batch", "step")
        return g.Parsed(values=[(s(k), f(v)) for k, v in self.values],
                        context={fields[i]: f(v) for i, v in self.context},
                        phase=[None, "train", "val", "test"][self.phase + 1],
                        text_values=[(s(k), s(v)) for k, v in self.text_values],
                        timestamp=None if self.timestamp is None else s(self.timestamp), kind=self.kind)


def _same_parsed(p: g.Parsed, q: g.Parsed) -> bool:
    return (p.kind == q.kind and p.phase == q.phase and p.timestamp == q.timestamp and p.text_values == q.text_values
            and len(p.values) == len(q.values) and all(k1 == k2 and _same_float(v1, v2) for (k1, v1), (k2, v2)
                                                       in zip(p.values, q.values))
            and p.context.keys() == q.context.keys()
            and all(_same_float(p.context[k], q.context[k]) for k in p.context))


def build_plan(rep: str) -> Plan | None:
    """The plan for the shape of ``rep`` (an ASCII line), or None when the grammar's reading of it
    cannot be carried to other lines of the shape by offsets."""
    p0 = g.parse_line(rep)
    if p0.kind in ("subject", "traceback") or (p0.phase is not None and p0.phase not in _PHASE_CODE):
        return None
    digits = [i for i, ch in enumerate(rep) if ch.isdigit()]
    rng = random.Random(len(rep) * 1_000_003 + len(digits))
    lines = [rep]
    for _ in range(3 if digits else 0):
        chars = list(rep)
        for i in digits:
            chars[i] = rng.choice([c for c in "123456789" if c != rep[i]])
        lines.append("".join(chars))
    parsed = [p0] + [g.parse_line(x) for x in lines[1:]]
    for p in parsed[1:]:
        if (p.kind != p0.kind or p.phase != p0.phase or len(p.values) != len(p0.values)
                or list(p.context) != list(p0.context) or (p.timestamp is None) != (p0.timestamp is None)
                or len(p.text_values) != len(p0.text_values)):
            return None
    cands = _num_candidates(rep)
    values = []
    for j in range(len(p0.values)):
        k = _str_atom([p.values[j][0] for p in parsed], lines)
        v = _num_atom([p.values[j][1] for p in parsed], lines, cands)
        if k is None or v is None:
            return None
        values.append((k, v))
    context = []
    for i, fld in enumerate(("epoch", "batch", "step")):
        if fld in p0.context:
            v = _num_atom([p.context[fld] for p in parsed], lines, cands)
            if v is None:
                return None
            context.append((i, v))
    ts = None
    if p0.timestamp is not None:
        stamps = [p.timestamp for p in parsed if p.timestamp is not None]
        ts = _str_atom(stamps, lines) if len(stamps) == len(parsed) else None   # (a shape: all have one)
        if ts is None:
            return None
    tvs = []
    for j in range(len(p0.text_values)):
        k = _str_atom([p.text_values[j][0] for p in parsed], lines)
        v = _str_atom([p.text_values[j][1] for p in parsed], lines)
        if k is None or v is None:
            return None
        tvs.append((k, v))
    # the order of context fields must be the grammar's: Parsed.context is a dict
    plan = Plan(kind=p0.kind, phase=_PHASE_CODE.get(p0.phase, -1), values=values,
                context=sorted(context, key=lambda iv: list(p0.context).index(("epoch", "batch", "step")[iv[0]])),
                timestamp=ts, text_values=tvs)
    if not all(_same_parsed(plan.apply_one(ln), p) for ln, p in zip(lines, parsed)):
        return None
    return plan


class Plans:
    """The plans of the shapes met in one file (one read): a plan per shape met twice or more, none for a
    shape met once. Made per read by the engine, never kept between reads (a process-wide cache let what one
    file taught change how another was read)."""

    def __init__(self, limit: int = MAX_PLANS) -> None:
        self.plans: dict[bytes, Plan | None] = {}
        self.seen: set[bytes] = set()
        self.limit = limit

    def plan_for(self, shape: bytes, rep: str, count: int) -> Plan | None:
        """The plan of a shape; a shape met once (in one chunk, never before) is not worth one."""
        try:
            return self.plans[shape]
        except KeyError:
            pass
        if count < 2 and shape not in self.seen:
            if len(self.seen) < 4 * self.limit:
                self.seen.add(shape)
            return None
        plan = build_plan(rep)
        if len(self.plans) < self.limit:
            self.plans[shape] = plan
        return plan


# ------------------------------------------------------------------------------------------------ plain kernels

def shapes_py(buf: bytes, a: np.ndarray, starts: np.ndarray, ends: np.ndarray, max_len: int):
    """``_text_jit.shapes`` in plain Python: (code, flag, first, count); see there."""
    m = len(starts)
    code = np.full(m, -1, dtype=np.int32)
    flag = np.zeros(m, dtype=np.int8)
    seen: dict[bytes, int] = {}
    first: list[int] = []
    count: list[int] = []
    for k, (s, e) in enumerate(zip(starts.tolist(), ends.tolist())):
        b = buf[s:e]
        if _TB in b:
            flag[k] = 2
        elif _ACC in b:
            flag[k] = 1
        elif e - s <= max_len and b.isascii() and b"\0" not in b:
            shape = b.translate(_ZERO)
            c = seen.get(shape)
            if c is None:
                c = seen[shape] = len(first)
                first.append(k)
                count.append(0)
            count[c] += 1
            code[k] = c
    return code, flag, np.array(first, dtype=np.int64), np.array(count, dtype=np.int64)


def numbers_py(buf: bytes, a: np.ndarray, s: np.ndarray, o1: int, o2: int) -> np.ndarray:
    """The numbers at offsets ``o1:o2`` of the lines starting at ``s``, as the grammar reads them."""
    return np.array([g.to_number(buf[b + o1:b + o2].decode("ascii")) for b in s.tolist()], dtype=np.float64)


PY_KERNELS = (shapes_py, numbers_py)


# ------------------------------------------------------------------------------------------------ a chunk's lines

def _exact(buf: bytes, k: int, sl_line, sl_s, sl_e, sl_param, first_line: int, slow: fast.SlowOut, in_tb: bool,
           tb_line: int) -> tuple[bool, int]:
    """The ``k``-th slow line, exactly as ``_text_fast._slow_lines`` reads it; returns the traceback state."""
    s, e = int(sl_s[k]), int(sl_e[k])
    ln = int(sl_line[k]) + first_line
    if e - s > fast.MAX_LINE:
        slow.skips.append((ln, f"line longer than {fast.MAX_LINE // 1024} KiB", f"{e - s:,} bytes"))
        return in_tb, tb_line
    text = buf[s:e].decode("utf-8", errors="replace")
    if in_tb:
        if text[:1] in (" ", "\t") or not text.strip():
            return True, tb_line
        if g.is_exception_line(text):
            slow.tracebacks.append((tb_line, text.strip()[:300]))
            return False, tb_line
        slow.tracebacks.append((tb_line, fast.NO_EXCEPTION_LINE))     # this line is read as any other
        in_tb = False
    if g.is_traceback_start(text):
        return True, ln
    if "ccumulat" in text:
        slow.phrase_lines.append((ln, text))
    p = fast._parse_cached(text)
    if p.kind == "blank":
        slow.n_blank += 1
    elif p.kind == "text" and p.phase is None:
        slow.skips.append((ln, fast.REASON_TEXT, text))
    else:
        if p.kind == "text_values" and not p.values:
            slow.skips.append((ln, fast.REASON_NON_NUMERIC, text))
        slow.add_parsed(ln, p, int(sl_param[k]))
    return in_tb, tb_line


def slow_lines(buf: bytes, a: np.ndarray, sl_line, sl_s, sl_e, sl_param, first_line: int,
               slow: fast.SlowOut, kernels=PY_KERNELS, plans: Plans | None = None) -> None:
    """Read the slow lines (0-based ``sl_line``, bytes ``sl_s:sl_e``, under subjects ``sl_param``) into ``slow``:
    by shape where a plan reads them, else line by line. ``kernels``: (shapes, numbers), see PY_KERNELS;
    ``plans``: the read's :class:`Plans` (a fresh one when not given)."""
    plans = plans if plans is not None else Plans()
    shapes_fn, numbers_fn = kernels
    m = len(sl_line)
    if not m:
        return
    code, flag, first, count = shapes_fn(buf, a, sl_s, sl_e, MAX_TEMPLATE_LEN)
    done = np.zeros(m, dtype=bool)
    args = (sl_line, sl_s, sl_e, sl_param, first_line, slow)
    # tracebacks: from a traceback header to its exception line, line by line, as the reference does
    nxt = 0
    for t in np.flatnonzero(flag == 2).tolist():
        if t < nxt:
            continue
        in_tb, tb_line = False, 0
        k = t
        while k < m:
            in_tb, tb_line = _exact(buf, k, *args, in_tb, tb_line)
            k += 1
            if not in_tb:
                break
        if in_tb:
            slow.tracebacks.append((tb_line, "(no exception line: the log ends inside the traceback)"))
        done[t:k] = True
        nxt = k
    found = []
    for f, c in zip(first.tolist(), count.tolist()):
        rep = buf[int(sl_s[f]):int(sl_e[f])]
        found.append(plans.plan_for(rep.translate(_ZERO), rep.decode("ascii"), c))
    has_plan = np.array([p is not None for p in found] + [False], dtype=bool)
    templ = has_plan[code] & ~done            # code -1 indexes the trailing False
    for k in np.flatnonzero(~templ & ~done).tolist():
        _exact(buf, k, *args, False, 0)
    pos = np.flatnonzero(templ)
    if not len(pos):
        return
    codes = code[pos]
    order = np.argsort(codes, kind="stable")
    pos, codes = pos[order], codes[order]
    cut = np.flatnonzero(np.diff(codes)) + 1
    for grp in np.split(pos, cut):
        plan = found[int(code[grp[0]])]
        assert plan is not None                   # templ: only lines whose shape has a plan
        _apply(plan, buf, a, sl_line[grp], sl_s[grp], sl_param[grp], first_line, slow,
               numbers_fn)


def _strings(buf: bytes, a: np.ndarray, s: np.ndarray, o1: int, o2: int) -> list[str]:
    """The text at offsets ``o1:o2`` of each line starting at ``s`` (ASCII lines)."""
    w = o2 - o1
    if w <= 0:
        return [""] * len(s)
    block = np.ascontiguousarray(a[(s + o1)[:, None] + np.arange(w)])
    # decode each distinct text once (the rows of ``block``, not the S-dtype values, which drop NULs)
    _, first, inv = np.unique(block.view(f"V{w}").ravel(), return_index=True, return_inverse=True)
    texts = [block[i].tobytes().decode("ascii") for i in first.tolist()]
    return [texts[j] for j in inv.reshape(-1).tolist()]


def _apply(plan: Plan, buf: bytes, a: np.ndarray, lines: np.ndarray, s: np.ndarray, pi: np.ndarray,
           first_line: int, slow: fast.SlowOut, numbers=numbers_py) -> None:
    """Every line of one shape (0-based ``lines`` starting at ``s``, under subjects ``pi``), read through
    the shape's plan."""
    n = len(lines)
    ln = lines.astype(np.int64) + first_line
    if plan.kind == "blank":
        slow.n_blank += n
        return
    if plan.kind == "text" and plan.phase == -1:
        slow.skip_bulk.append((ln, fast.REASON_TEXT))
        return
    if plan.kind == "text_values" and not plan.values:
        slow.skip_bulk.append((ln, fast.REASON_NON_NUMERIC))
    pi = pi.astype(np.int32)
    ts = np.full(n, -1, dtype=np.int32)
    if plan.timestamp is not None and plan.values:
        t = plan.timestamp
        texts = [t] * n if not isinstance(t, tuple) else _strings(buf, a, s, *t)
        ts = np.arange(len(slow.ts_list), len(slow.ts_list) + n, dtype=np.int32)
        slow.ts_list.extend(texts)
    for k_atom, v_atom in plan.values:
        if isinstance(k_atom, tuple):
            keys = np.array([slow.code(k) for k in _strings(buf, a, s, *k_atom)], dtype=np.int32)
        else:
            keys = np.full(n, slow.code(k_atom), dtype=np.int32)
        vals = numbers(buf, a, s, *v_atom) if isinstance(v_atom, tuple) else np.full(n, v_atom)
        slow.rows.append((ln, keys, pi, vals, ts))
    if plan.context or plan.phase != -1:
        ctx = [np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)]
        for fi, v_atom in plan.context:
            ctx[fi] = numbers(buf, a, s, *v_atom) if isinstance(v_atom, tuple) else np.full(n, v_atom)
        own = plan.phase >= 0 and plan.kind == "values" and bool(plan.values) and bool(plan.context)
        code = plan.phase + fast.OWN_PHASE if own else plan.phase
        slow.events.append((ln, ctx[0], ctx[1], ctx[2], np.full(n, code, dtype=np.int8)))
    if plan.kind == "section":
        slow.sections.append(ln)
    if plan.text_values:
        cols = []
        for k_atom, v_atom in plan.text_values:
            ks = _strings(buf, a, s, *k_atom) if isinstance(k_atom, tuple) else [k_atom] * n
            vs = _strings(buf, a, s, *v_atom) if isinstance(v_atom, tuple) else [v_atom] * n
            cols.append((ks, vs))
        pil = pi.tolist()
        for r, x in enumerate(ln.tolist()):
            for ks, vs in cols:
                slow.text_values.append((x, ks[r], vs[r], pil[r]))


def tokenize_numpy(buf: bytes, first_line: int, plans: Plans | None = None) -> fast.Columns:
    """The numpy/pyarrow tokeniser (``_text_fast.tokenize``), its other lines read by shape (``plans``: the
    read's shape plans)."""
    ch = fast.tokenize(buf, first_line, fast=True, by_shape=True)
    out = fast.Columns(subjects=list(ch.subjects))
    slow = fast.SlowOut(ch.keys)
    assert ch.slow is not None                # by_shape=True: the lines off the fast path are returned
    idx, sl_s, sl_e, sl_param = ch.slow
    slow_lines(buf, np.frombuffer(buf, dtype=np.uint8), idx, sl_s, sl_e, sl_param, first_line, slow, plans=plans)

    def text_of(ln: int) -> str:
        k = int(np.searchsorted(idx, ln - first_line))
        return buf[int(sl_s[k]):int(sl_e[k])].decode("utf-8", errors="replace")
    return slow.finish(out, ch.n_lines, ((ch.v_line - first_line).astype(np.int32), ch.v_key.astype(np.int32),
                                         ch.v_param.astype(np.int32), ch.v_value), text_of, first_line)
