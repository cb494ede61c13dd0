"""Compiled tokenising of a chunk of a text log (numba).

The same reading as :mod:`_text_fast` (and, through it, as :func:`_text_grammar.parse_line`),
done in one pass over the bytes by a numba-compiled loop (:func:`scan`):

- line bounds, indentation, blank lines;
- bare ``name:`` subject lines (dictionary-encoded names) and the subject each line is under;
- ``key: number`` / ``key=number`` lines: the key dictionary-encoded through a hash table that
  compares bytes (so a hash collision can never merge two keys), the number checked against the
  grammar's number syntax and converted exactly (see :func:`parse_number`).

Every other line is read by its shape (:mod:`_text_shapes`), with compiled kernels for grouping
the lines by shape (:func:`shapes`) and reading their numbers.

numba is optional: :data:`AVAILABLE` says whether it could be imported (``text_log`` looks for
numba without importing it, and uses the numpy/pyarrow tokeniser without it). Compiled code is
cached on disk by numba: the first use compiles for a few seconds, later processes load it.
"""
from __future__ import annotations

import numpy as np

from . import _text_fast as fast
from . import _text_grammar as g
from . import _text_shapes as sh

try:                                   # optional dependency
    import numba
    AVAILABLE = True
except Exception:                      # pragma: no cover - exercised where numba is missing
    numba = None                       # type: ignore[assignment]  # (a module or None: AVAILABLE says which)
    AVAILABLE = False


def njit(*args, **kwargs):
    """``numba.njit``, caching compiled code on disk where numba finds a place for it (else compiling
    once per process); without numba, the plain Python function (importable, callable, slow)."""
    if args and callable(args[0]):
        return njit(**kwargs)(args[0])

    def wrap(f):
        if not AVAILABLE:
            return f
        try:
            return numba.njit(**kwargs)(f)
        except RuntimeError:           # no cache locator (a read-only install and no writable cache dir)
            return numba.njit(**{k: v for k, v in kwargs.items() if k != "cache"})(f)
    return wrap


_JIT = dict(cache=True, nogil=True)


_P10 = np.array([10.0 ** k for k in range(23)], dtype=np.float64)        # exact: 10**22 < 2**53 * 2**22
_I10 = np.array([10 ** k for k in range(19)], dtype=np.uint64)
_TWO53 = 2 ** 53

# byte classes
_NAMECH = np.zeros(256, dtype=np.bool_)              # RE2 [\w.\-/\[\]] (ASCII \w)
for _c in b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-/[]":
    _NAMECH[_c] = True
_FIRST = np.zeros(256, dtype=np.bool_)               # [A-Za-z_]
for _c in b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_":
    _FIRST[_c] = True
_KEYSTOP = np.zeros(256, dtype=np.bool_)             # what ends a simple key: [:=|,;\n]
for _c in b":=|,;\n":
    _KEYSTOP[_c] = True
_RE2WS = np.zeros(256, dtype=np.bool_)               # RE2 \s: [\t\n\f\r ]
for _c in b"\t\n\f\r ":
    _RE2WS[_c] = True
_SPECIALS = [b"nan", b"NaN", b"NAN", b"inf", b"Inf", b"INF", b"infinity", b"Infinity"]
_SPECIAL_TAB = np.zeros((len(_SPECIALS), 8), dtype=np.uint8)
_SPECIAL_LEN = np.array([len(s) for s in _SPECIALS], dtype=np.int64)
for _i, _s in enumerate(_SPECIALS):
    _SPECIAL_TAB[_i, :len(_s)] = np.frombuffer(_s, dtype=np.uint8)
_TB = np.frombuffer(b"Traceback (most recent call last):", dtype=np.uint8).copy()
_ACC = np.frombuffer(b"ccumulat", dtype=np.uint8).copy()


# ------------------------------------------------------------------------------------------------ numbers

@njit(**_JIT)
def parse_number(a, s, e):
    """Read ``a[s:e]`` as one number of the grammar's syntax (``_text_grammar.NUM``), whole.

    Returns ``(status, value)``: status -1 when the bytes are not such a number; 0 when ``value``
    is exactly ``float(text.replace(",", ""))``; 1 when it is a number whose value must be found
    by ``float()`` (nan/inf words, more than 19 significant digits, or a mantissa or power of ten
    outside Clinger's fast path).

    The fast path: a mantissa ``w < 2**53`` and a power of ten ``10**k`` with ``|k| <= 22`` are both
    exact doubles, so one IEEE multiplication or division gives the correctly rounded result.
    """
    i = s
    neg = False
    if i < e and (a[i] == 43 or a[i] == 45):
        neg = a[i] == 45
        i += 1
    if i >= e:
        return -1, 0.0
    c = a[i]
    if c == 110 or c == 78 or c == 105 or c == 73:            # n N i I: nan / inf words
        ln = e - i
        for k in range(_SPECIAL_TAB.shape[0]):
            if _SPECIAL_LEN[k] == ln:
                ok = True
                for j in range(ln):
                    if a[i + j] != _SPECIAL_TAB[k, j]:
                        ok = False
                        break
                if ok:
                    return 1, 0.0
        return -1, 0.0
    w = np.uint64(0)
    nsig = 0
    dexp = 0
    trunc = False
    nint = 0
    group = 0
    commas = False
    while i < e:
        c = a[i]
        if 48 <= c <= 57:
            d = c - 48
            if nsig == 0 and d == 0:
                pass
            elif nsig < 19:
                w = w * np.uint64(10) + np.uint64(d)
                nsig += 1
            else:
                dexp += 1
                if d != 0:
                    trunc = True
            nint += 1
            group += 1
        elif c == 44:                                          # ',' thousands separator: \d{1,3}(,\d{3})+
            if commas:
                if group != 3:
                    return -1, 0.0
            elif group < 1 or group > 3:
                return -1, 0.0
            commas = True
            group = 0
        else:
            break
        i += 1
    if commas and group != 3:
        return -1, 0.0
    nfrac = 0
    if i < e and a[i] == 46:                                   # '.'
        i += 1
        while i < e and 48 <= a[i] <= 57:
            d = a[i] - 48
            if nsig == 0 and d == 0:
                dexp -= 1
            elif nsig < 19:
                w = w * np.uint64(10) + np.uint64(d)
                nsig += 1
                dexp -= 1
            elif d != 0:
                trunc = True
            nfrac += 1
            i += 1
    if nint == 0 and nfrac == 0:
        return -1, 0.0
    if i < e and (a[i] == 101 or a[i] == 69):                  # exponent
        i += 1
        eneg = False
        if i < e and (a[i] == 43 or a[i] == 45):
            eneg = a[i] == 45
            i += 1
        nexp = 0
        ev = 0
        while i < e and 48 <= a[i] <= 57:
            if ev < 100_000_000:
                ev = ev * 10 + (a[i] - 48)
            nexp += 1
            i += 1
        if nexp == 0:
            return -1, 0.0
        dexp += -ev if eneg else ev
    if i != e:
        return -1, 0.0
    if w == 0:
        if trunc:
            return 1, 0.0
        return 0, (-0.0 if neg else 0.0)
    if trunc:
        return 1, 0.0
    while w % np.uint64(10) == 0:
        w = w // np.uint64(10)
        dexp += 1
    if w > np.uint64(_TWO53):
        return 1, 0.0
    if 0 <= dexp <= 22:
        v = float(w) * _P10[dexp]
    elif -22 <= dexp < 0:
        v = float(w) / _P10[-dexp]
    elif 22 < dexp <= 22 + 15:
        m = _I10[dexp - 22]
        if w > np.uint64(_TWO53) // m:
            return 1, 0.0
        v = float(w * m) * _P10[22]
    else:
        return 1, 0.0
    return 0, (-v if neg else v)


@njit(**_JIT)
def parse_spans(a, s, e):
    """:func:`parse_number` over many spans: ``(status, value)`` arrays."""
    n = len(s)
    st = np.empty(n, dtype=np.int8)
    val = np.empty(n, dtype=np.float64)
    for k in range(n):
        r, v = parse_number(a, s[k], e[k])
        st[k] = r
        val[k] = v
    return st, val


# ------------------------------------------------------------------------------------------------ interning

@njit(**_JIT)
def _hash(a, s, e, zero_digits):
    h = np.uint64(14695981039346656037)
    for i in range(s, e):
        c = a[i]
        if zero_digits and 48 <= c <= 57:
            c = 48
        h = (h ^ np.uint64(c)) * np.uint64(1099511628211)
    return h


@njit(**_JIT)
def _same(a, s1, e1, s2, e2, zero_digits):
    if e1 - s1 != e2 - s2:
        return False
    for k in range(e1 - s1):
        c1 = a[s1 + k]
        c2 = a[s2 + k]
        if c1 != c2:
            if not (zero_digits and 48 <= c1 <= 57 and 48 <= c2 <= 57):
                return False
    return True


@njit(**_JIT)
def _lookup(a, s, e, tab, thash, rep_s, rep_e, n, zero_digits):
    """The code of the bytes ``a[s:e]``; new codes are appended to ``rep_s``/``rep_e``. Returns (code, n)."""
    h = _hash(a, s, e, zero_digits)
    mask = np.uint64(len(tab) - 1)
    j = h & mask
    while True:
        code = tab[j]
        if code < 0:
            break
        if thash[j] == h and _same(a, rep_s[code], rep_e[code], s, e, zero_digits):
            return code, n
        j = (j + np.uint64(1)) & mask
    tab[j] = n
    thash[j] = h
    rep_s[n] = s
    rep_e[n] = e
    return n, n + 1


# ------------------------------------------------------------------------------------------------ the scan

@njit(**_JIT)
def scan(a, cap):
    """One pass over a chunk (whole lines). See the module docstring.

    ``cap``: the size of the key and subject hash tables (a power of two); if either would fill past
    one half, the scan stops and says so (``overflow``), to be run again with bigger tables (growing
    them inside the loop would make numba keep reference counts on every pass).

    Returns ``(n_lines, overflow, rows, fallback, slow, keys, subjects)``:

    - rows, one per ``key: number`` line: line index (0-based), key code, subject code (-1: none), value;
    - fallback: the rows whose number :func:`parse_number` leaves to ``float()``: row, text start, end;
    - slow, one per other non-blank, non-subject line: line index, start, end (without the newline
      and one ``\\r``), subject code;
    - keys and subjects: the first occurrence (start, end) of each code.

    Arrays are sized for the worst case and only the part used is touched (and returned).
    """
    size = len(a)
    nl = 0
    for i in range(size):
        if a[i] == 10:
            nl += 1
    n = nl if (size == 0 or a[size - 1] == 10) else nl + 1
    r_line = np.empty(n, dtype=np.int32)
    r_key = np.empty(n, dtype=np.int32)
    r_param = np.empty(n, dtype=np.int32)
    r_value = np.empty(n, dtype=np.float64)
    f_row = np.empty(n, dtype=np.int32)
    f_s = np.empty(n, dtype=np.int64)
    f_e = np.empty(n, dtype=np.int64)
    sl_line = np.empty(n, dtype=np.int32)
    sl_s = np.empty(n, dtype=np.int64)
    sl_e = np.empty(n, dtype=np.int64)
    sl_param = np.empty(n, dtype=np.int32)
    half = cap // 2
    k_tab = np.full(cap, -1, dtype=np.int32)
    k_hash = np.zeros(cap, dtype=np.uint64)
    k_s = np.empty(half + 1, dtype=np.int64)
    k_e = np.empty(half + 1, dtype=np.int64)
    k_next = np.full(half + 2, -1, dtype=np.int32)   # the key that followed each key last time
    s_tab = np.full(cap, -1, dtype=np.int32)
    s_hash = np.zeros(cap, dtype=np.uint64)
    s_s = np.empty(half + 1, dtype=np.int64)
    s_e = np.empty(half + 1, dtype=np.int64)
    s_next = np.full(half + 2, -1, dtype=np.int32)
    nk = 0
    ns = 0
    k_prev = half + 1                                # ("no key yet")
    s_prev = half + 1
    nrows = 0
    nfb = 0
    nslow = 0
    overflow = False
    cur = -1
    cur_ind = -1
    active = False
    pos = 0
    for i in range(n):
        ie = pos
        while ie < size and (a[ie] == 32 or a[ie] == 9):
            ie += 1
        first_ok = ie < size and _FIRST[a[ie]]
        # one pass over the line: to the first of ":=|,;\n" (where a simple key ends), then to the newline
        stop = ie
        if first_ok:
            stop = ie + 1
            while stop < size and not _KEYSTOP[a[stop]]:
                stop += 1
        j = stop
        while j < size and a[j] != 10:
            j += 1
        end = j                                   # the newline (or the end of the chunk)
        full = j + 1 if j < size else size        # the line as the regexes see it, newline included
        e = end - 1 if (end > pos and a[end - 1] == 13) else end
        if ie >= e:                               # blank
            pos = full
            continue
        ind = ie - pos
        subject = False
        ne = ie
        if first_ok and a[e - 1] == 58:          # "name:" (RE2 ^[ \t]*[A-Za-z_][\w.\-/\[\]]*[ \t]*:\s*$)
            k = ie + 1
            while k < e and _NAMECH[a[k]]:
                k += 1
            ne = k
            while k < e and (a[k] == 32 or a[k] == 9):
                k += 1
            subject = k == e - 1
        if subject:
            code = s_next[s_prev]                 # names come round in the same order, block after block
            if code < 0 or not _same(a, s_s[code], s_e[code], ie, ne, False):
                if ns >= half:
                    overflow = True
                    break
                code, ns = _lookup(a, ie, ne, s_tab, s_hash, s_s, s_e, ns, False)
                s_next[s_prev] = code
            s_prev = code
            cur = code
            cur_ind = ind
            active = True
            pos = full
            continue
        if active and ind <= cur_ind:
            active = False
        p = cur if active else -1
        simple = False
        if first_ok:                              # RE2 ^[ \t]*[A-Za-z_][^:=|,;\n]*?[ \t]*[:=][ \t]*NUM\s*$
            if stop < end and (a[stop] == 58 or a[stop] == 61):
                sep = stop
                v0 = sep + 1
                while v0 < full and (a[v0] == 32 or a[v0] == 9):
                    v0 += 1
                vt = full
                while vt > v0 and _RE2WS[a[vt - 1]]:
                    vt -= 1
                if vt > v0:
                    st, val = parse_number(a, v0, vt)
                    if st >= 0:
                        simple = True
                        ks = sep
                        while ks > ie and (a[ks - 1] == 32 or a[ks - 1] == 9):
                            ks -= 1
                        code = k_next[k_prev]    # keys come round in the same order, block after block
                        if code < 0 or not _same(a, k_s[code], k_e[code], ie, ks, False):
                            if nk >= half:
                                overflow = True
                                break
                            code, nk = _lookup(a, ie, ks, k_tab, k_hash, k_s, k_e, nk, False)
                            k_next[k_prev] = code
                        k_prev = code
                        r_line[nrows] = i
                        r_key[nrows] = code
                        r_param[nrows] = p
                        r_value[nrows] = val
                        if st != 0:
                            f_row[nfb] = nrows
                            f_s[nfb] = v0
                            f_e[nfb] = vt
                            nfb += 1
                        nrows += 1
        if not simple:
            sl_line[nslow] = i
            sl_s[nslow] = pos
            sl_e[nslow] = e
            sl_param[nslow] = p
            nslow += 1
        pos = full
    return (n, overflow, (r_line[:nrows], r_key[:nrows], r_param[:nrows], r_value[:nrows]),
            (f_row[:nfb], f_s[:nfb], f_e[:nfb]), (sl_line[:nslow], sl_s[:nslow], sl_e[:nslow], sl_param[:nslow]),
            (k_s[:nk], k_e[:nk]), (s_s[:ns], s_e[:ns]))


@njit(**_JIT)
def line_bounds(a, lines):
    """Start and end (without the newline and one ``\\r``) of the 0-based ``lines`` (sorted)."""
    m = len(lines)
    starts = np.empty(m, dtype=np.int64)
    ends = np.empty(m, dtype=np.int64)
    size = len(a)
    pos = 0
    i = 0
    for k in range(m):
        while i < lines[k]:
            while pos < size and a[pos] != 10:
                pos += 1
            pos += 1
            i += 1
        j = pos
        while j < size and a[j] != 10:
            j += 1
        starts[k] = pos
        ends[k] = j - 1 if (j > pos and a[j - 1] == 13) else j
    return starts, ends


@njit(**_JIT)
def _contains(a, s, e, pat):
    m = len(pat)
    for i in range(s, e - m + 1):
        if a[i] == pat[0]:
            ok = True
            for k in range(1, m):
                if a[i + k] != pat[k]:
                    ok = False
                    break
            if ok:
                return True
    return False


@njit(**_JIT)
def shapes(a, starts, ends, max_len):
    """Group the lines ``a[starts[k]:ends[k]]`` by shape (digits as ``0``).

    Returns ``code`` per line (-1: read line by line: not ASCII (or NUL), longer than ``max_len``, or
    holding a traceback header or "ccumulat"), ``flag`` (2: a traceback header, 1: "ccumulat"), and
    the first line (an index into ``starts``) and number of lines of each shape.
    """
    m = len(starts)
    code = np.full(m, -1, dtype=np.int32)
    flag = np.zeros(m, dtype=np.int8)
    cap = 1024
    while cap < 2 * m + 2:                # at most one shape a line: the table never fills past half
        cap *= 2
    tab = np.full(cap, -1, dtype=np.int32)
    thash = np.zeros(cap, dtype=np.uint64)
    rep_s = np.empty(m, dtype=np.int64)
    rep_e = np.empty(m, dtype=np.int64)
    count = np.zeros(m, dtype=np.int64)
    first = np.empty(m, dtype=np.int64)
    nxt = np.full(m + 1, -1, dtype=np.int32)   # the shape that followed each shape last time
    prev = m
    n = 0
    for k in range(m):
        s = starts[k]
        e = ends[k]
        if _contains(a, s, e, _TB):
            flag[k] = 2
            continue
        if _contains(a, s, e, _ACC):
            flag[k] = 1
            continue
        if e - s > max_len:
            continue
        ascii_ = True
        for j in range(s, e):
            if a[j] >= 128 or a[j] == 0:
                ascii_ = False
                break
        if not ascii_:
            continue
        c = nxt[prev]                         # shapes come round in the same order, block after block
        if c < 0 or not _same(a, rep_s[c], rep_e[c], s, e, True):
            c, n2 = _lookup(a, s, e, tab, thash, rep_s, rep_e, n, True)
            if n2 > n:
                first[c] = k
            n = n2
            nxt[prev] = c
        prev = c
        code[k] = c
        count[c] += 1
    return code, flag, first[:n].copy(), count[:n].copy()


context_states = njit(**_JIT)(fast.context_states)


# ------------------------------------------------------------------------------------------------ a chunk

def _numbers(buf: bytes, a: np.ndarray, s: np.ndarray, o1: int, o2: int) -> np.ndarray:
    st, val = parse_spans(a, s + o1, s + o2)
    for k in np.flatnonzero(st != 0).tolist():
        b = int(s[k])
        val[k] = g.to_number(buf[b + o1:b + o2].decode("ascii"))
    return val



def _shapes(buf: bytes, a: np.ndarray, starts: np.ndarray, ends: np.ndarray, max_len: int):
    return shapes(a, starts, ends, max_len)


KERNELS = (_shapes, _numbers)


def tokenize(buf: bytes, first_line: int, plans: "sh.Plans | None" = None) -> fast.Columns:
    """Tokenise ``buf`` (whole lines, valid UTF-8) whose first line is ``first_line``; as
    ``_text_fast.to_columns(_text_fast.tokenize(buf, first_line))`` gives it, only faster."""
    a = np.frombuffer(buf, dtype=np.uint8)
    out = fast.Columns()
    if len(a) == 0:
        return out
    cap = 4096
    while True:
        n, overflow, rows, fb, sl, kspan, sspan = scan(a, cap)
        if not overflow:
            break
        cap *= 16                                 # many distinct keys or subjects: bigger tables
    r_line, r_key, r_param, r_value = rows
    sl_line, sl_s, sl_e, sl_param = sl
    out.subjects = [buf[s:e].decode("utf-8") for s, e in zip(sspan[0].tolist(), sspan[1].tolist())]
    keys = [buf[s:e].decode("utf-8") for s, e in zip(kspan[0].tolist(), kspan[1].tolist())]
    for k, s, e in zip(*(x.tolist() for x in fb)):       # numbers the exact fast path leaves to float()
        r_value[k] = g.to_number(buf[s:e].decode("utf-8"))
    good = np.array([fast._agrees(k) for k in keys], dtype=bool)
    in_tb = np.zeros(len(r_line), dtype=bool)
    if fast._TB in buf:                           # lines inside a traceback are the grammar's (a frame's code line)
        nl = np.flatnonzero(a == 10)
        starts = np.concatenate([[0], nl + 1])[:len(nl) + (1 if len(a) and a[-1] != 10 else 0)]
        ends = np.concatenate([nl, [len(a)]])[:len(starts)]
        mask = fast.traceback_lines(a, buf, starts, ends)
        in_tb = mask[np.minimum(r_line, len(mask) - 1)] if len(mask) else in_tb
    if not good.all() or in_tb.any():
        # a key the grammar reads otherwise ("INFO loss", "Epoch 3"), or a line inside a traceback: its lines
        # are read by the grammar
        back = ~good[r_key] | in_tb
        moved = r_line[back]
        ms, me = line_bounds(a, moved)
        order = np.argsort(np.concatenate([sl_line, moved]), kind="stable")
        sl_line = np.concatenate([sl_line, moved])[order]
        sl_s = np.concatenate([sl_s, ms])[order]
        sl_e = np.concatenate([sl_e, me])[order]
        sl_param = np.concatenate([sl_param, r_param[back]])[order]
        keep = ~back
        r_line, r_key, r_param, r_value = r_line[keep], r_key[keep], r_param[keep], r_value[keep]
        r_key = (np.cumsum(good) - 1).astype(np.int32)[r_key]
        keys = [k for k, ok in zip(keys, good) if ok]
    slow = fast.SlowOut(keys)
    sh.slow_lines(buf, a, sl_line, sl_s, sl_e, sl_param, first_line, slow, KERNELS, plans)

    def text_of(ln: int) -> str:
        k = int(np.searchsorted(sl_line, ln - first_line))
        return buf[int(sl_s[k]):int(sl_e[k])].decode("utf-8", errors="replace")
    return slow.finish(out, n, (r_line, r_key, r_param, r_value), text_of, first_line)




def warm_up() -> None:
    """Compile (or load from numba's cache) every kernel the reader uses, so that a first big log does
    not pay for compiling: ``python -m collapse_nb.readers._text_jit``."""
    log = (b"CELESTIAL RUN\nloss: 1.5\n--- OPTIMIZER STEP DIAGNOSTICS ---\nenc.w:\n  grad_norm: 0.25\n"
           b"EPOCH 1 | BATCH 0/9 | TRAINING MODE\nEPOCH 1 | BATCH 1/9 | TRAINING MODE\n"
           b"y mean/std: 0.5 / 0.25\ny mean/std: 0.5 / 0.125\nINFO loss: 3\n")
    tokenize(log, 1)
    line_bounds(np.frombuffer(log, dtype=np.uint8), np.array([1], dtype=np.int32))
    nan = np.array([np.nan])
    context_states(np.array([1.0]), nan, nan, np.array([0]), np.array([False]))


if __name__ == "__main__":
    if not AVAILABLE:
        raise SystemExit("numba is not installed: the text-log reader uses its numpy engine")
    warm_up()
    print("text-log kernels compiled and cached")
