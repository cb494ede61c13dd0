"""Free-form text training logs.

One reader for the many ways a training loop prints: the seed report's
diagnostic blocks::

    --- OPTIMIZER STEP DIAGNOSTICS ---
    encoder.fc.weight:
      weight_norm_before: 12.917
      grad_norm: 0.0435
    ====================================
    EPOCH 1 | BATCH 0/3529 | TRAINING MODE
    raw_loss (full batch loss): 1.1325
    y_pred_for_loss mean/std: 0.7406 / 0.5583

Python ``logging`` lines (``2025-10-26 09:41:51,130 INFO __main__: Batch 10/520 |
loss=15.06``), nanoGPT (``iter 100: loss 4.2345, time 123.45ms``), OLMo
(``[step=1/15000,epoch=0]`` then indented ``optim/total_grad_norm=0.2370``) and
logs in none of these styles but the same grammar (see ``_text_grammar``).

Context (epoch, batch, step, phase) set by a line carries to the lines under it.
A bare ``name:`` line is the subject (``param``) of the indented values under it.
When a file writes a ``--- SECTION ---`` block *before* the first header, every
such block belongs to the header that follows it, as in the seed's log.
Restarted runs appended to one file (a counter going back) become segments.

The file is streamed in chunks (memory-mapped, each chunk copied once) and tokenised on two threads,
each chunk's values written once into the output columns. Engines (``TextLogReader(engine=...)``):

- ``jit``: a numba-compiled single pass over the bytes (``_text_jit``); ``auto`` uses it for logs of
  :data:`JIT_MIN_BYTES` or more when numba is installed (``pip install collapse_nb[fast]``);
- ``numpy``: numpy and pyarrow's RE2 kernels (``_text_fast``), the engine without numba;
- ``python``: the grammar line by line, the reference the other two must equal.

The lines the fast paths do not cover (headers, ``a/b: x / y`` pairs, logging prefixes) are read
by their shape (``_text_shapes``): the grammar once per shape, the numbers of each line from its bytes.

Lines a launcher prefixed with the rank that wrote them (``[rank3]:``, torchrun's ``[default3]:``,
``srun --label``'s ``3: ``, DeepSpeed's ``[Rank 3]``) are read without the prefix, each rank's lines as
a stream of their own, and their rows get a ``rank`` (``_text_ranks``).
"""
from __future__ import annotations

import importlib.util
import mmap
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..config import canonical_key
from ..errors import UnreadableFileError
from . import _text_fast as fast
from . import _text_ranks, _text_shapes
from ._text_counters import counter_totals
from .base import ReadResult, Reader, SkipLog, looks_binary, read_head, register

CHUNK_BYTES = 8 * 1024 * 1024
_PHASE_CODE = {"train": 0, "val": 1, "test": 2}
_TRACEBACK_START = b"Traceback (most recent call last):"
_PHRASES = [
    (re.compile(r"(?i)grad(?:ient)?[\s_]*accumulation\D{0,40}?\b(?:steps?|cycles?|iters?)\s*[=:]\s*(\d+)\b"),
     "gradient_accumulation_steps"),
    (re.compile(r"(?i)\baccumulat\w*\s+(?:steps?|cycles?)\s*(?:[=:]|of)\s*(\d+)\b"), "gradient_accumulation_steps"),
    (re.compile(r"(?i)\baccumulat\w*\s+(?:over|every)\s+(\d+)\s+(?:micro[-_ ]?)?(?:batch|step)"),
     "gradient_accumulation_steps"),
]
#: Config settings that, logged with one constant value during training, are taken as the run's setting.
_CONSTANT_SETTINGS = ("gradient_accumulation_steps", "batch_size", "weight_decay", "clip_grad_norm", "dropout")
_SNIFF = re.compile(rb"(?im)(^|[\s|,\[])(epoch|batch|step|iter|iteration)\b\s*[=:#]?\s*\[?\d|"
                    rb"[A-Za-z_][\w./ ()-]{0,60}\s*[:=]\s*[-+]?\d[\d.,]*(e[-+]?\d+)?\s*($|[\s,|%])")


def iter_chunks(path: Path, chunk_bytes: int | None = None,
                count_lines: bool = True) -> Iterator[tuple[bytes, int | None]]:
    """Yield ``(bytes, first line number)``, each chunk cut before a line that starts unindented.

    The file is memory-mapped, so each chunk is copied once, and the pages already cut into chunks
    are let go (they do not stay in this process's memory). With ``count_lines=False`` the line
    numbers are not worked out (``None``): the reader numbers each chunk's lines itself.
    """
    chunk_bytes = chunk_bytes or CHUNK_BYTES      # read at call time, so the module setting can be changed
    with open(path, "rb") as f:
        try:
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except (ValueError, OSError):             # an empty file, or one that cannot be mapped
            yield from _read_chunks(f, chunk_bytes, count_lines)
            return
        with mm:
            size, pos, line = len(mm), 0, 1
            while pos < size:
                hi = pos + chunk_bytes
                while hi < size:
                    cut = _cut_point(mm, pos, hi)
                    if cut > pos:
                        break
                    hi += chunk_bytes             # one enormous line (or block): look further
                else:
                    cut = size
                chunk = mm[pos:cut]
                _let_go(mm, pos, cut)
                yield chunk, (line if count_lines else None)
                if count_lines:
                    line += chunk.count(b"\n")
                pos = cut


def _let_go(mm: mmap.mmap, start: int, stop: int) -> None:
    """Drop the mapped pages of ``mm[start:stop]`` from this process (the page cache keeps them)."""
    page = mmap.PAGESIZE
    lo, hi = start - start % page, stop - stop % page
    if hi > lo and hasattr(mm, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
        try:
            mm.madvise(mmap.MADV_DONTNEED, lo, hi - lo)
        except OSError:
            pass


def _read_chunks(f, chunk_bytes: int, count_lines: bool) -> Iterator[tuple[bytes, int | None]]:
    line = 1
    rest = b""
    while True:
        data = f.read(chunk_bytes)
        buf = rest + data
        if not data:
            if buf:
                yield buf, (line if count_lines else None)
            return
        cut = _cut_point(buf)
        if cut <= 0:                       # one enormous line (or block): keep reading
            rest = buf
            continue
        chunk, rest = buf[:cut], buf[cut:]
        yield chunk, (line if count_lines else None)
        if count_lines:
            line += chunk.count(b"\n")


def _cut_point(buf, lo: int = 0, hi: int | None = None) -> int:
    """Where to cut ``buf[lo:hi]``: before an unindented line that does not end a traceback (its exception
    line). -1: nowhere."""
    hi = len(buf) if hi is None else hi
    pos = hi
    for _ in range(10_000):
        nl = buf.rfind(b"\n", lo, pos)
        if nl < 0:
            return -1
        nxt = buf[nl + 1:nl + 2] if nl + 1 < hi else b""
        if nxt and nxt not in b" \t\r\n" and not _in_traceback(buf, nl, lo):
            return nl + 1
        pos = nl
    nl = buf.rfind(b"\n", lo, hi)
    return nl + 1 if nl >= 0 else -1


def _in_traceback(buf, end: int, lo: int = 0) -> bool:
    """Whether the lines of ``buf[lo:end]`` before ``end`` are a traceback's frames, still waiting for the
    exception line."""
    for _ in range(1_000):
        nl = buf.rfind(b"\n", lo, end)
        start = nl + 1 if nl >= 0 else lo
        line = buf[start:end]
        if line.strip() and line[:1] not in b" \t":
            return line.rstrip().endswith(_TRACEBACK_START)
        if start == lo:
            return False
        end = start - 1
    return False


def _valid_utf8(buf: bytes, first_line: int, bad: list[int]) -> bytes:
    if buf.isascii():
        return buf
    try:
        buf.decode("utf-8")
        return buf
    except UnicodeDecodeError:
        text = buf.decode("utf-8", errors="replace")
        for i, ln in enumerate(text.split("\n")):
            if "\ufffd" in ln:
                bad.append(first_line + i)
        return text.encode("utf-8")


class _Rows:
    """The value rows of the whole file, in line order: columns that grow (rarely: they are sized from
    the first chunk) and that each chunk's rows are written into once, in their final place."""

    def __init__(self) -> None:
        self.n = 0
        self.line = np.empty(0, np.int64)
        self.key = np.empty(0, np.int32)
        self.param = np.empty(0, np.int32)
        self.value = np.empty(0, np.float64)

    def reserve(self, more: int, hint: int) -> None:
        if self.n + more <= len(self.line):
            return
        cap = max(hint, int((self.n + more) * 1.5) + 1024)
        for name in ("line", "key", "param", "value"):
            old = getattr(self, name)
            new = np.empty(cap, dtype=old.dtype)     # only the part written is ever touched
            new[:self.n] = old[:self.n]
            setattr(self, name, new)


@dataclass
class _Acc:
    """Everything collected from the chunks, in file order (chunks arrive in file order)."""

    size: int = 0
    keys: dict[str, int] = field(default_factory=dict)
    params: dict[str, int] = field(default_factory=dict)
    rows: _Rows = field(default_factory=_Rows)
    ts: list[str] = field(default_factory=list)
    #: rows with a timestamp: their positions, and the index of their timestamp in ``ts``
    ts_rows: list[np.ndarray] = field(default_factory=list)
    ts_index: list[np.ndarray] = field(default_factory=list)
    #: per chunk: the lines that set context or phase (line, epoch, batch, step, phase code)
    events: list[tuple[np.ndarray, ...]] = field(default_factory=list)
    sections: list[np.ndarray] = field(default_factory=list)
    text_values: list[tuple[int, str, str, int]] = field(default_factory=list)
    phrases: dict[str, tuple[object, int]] = field(default_factory=dict)
    skipped: SkipLog = field(default_factory=SkipLog)
    tracebacks: list[tuple[int, str]] = field(default_factory=list)
    bad_utf8: list[int] = field(default_factory=list)
    nul: tuple[int, int] | None = None
    n_lines: int = 0
    #: the first line that sets epoch/batch/step (text values after it are not configuration)
    first_ctx: int | None = None

    def code(self, table: dict[str, int], s: str) -> int:
        c = table.get(s)
        if c is None:
            c = table[s] = len(table)
        return c

    def add(self, ch: fast.Columns) -> None:
        """Take one chunk's columns (its lines already numbered in the file)."""
        self.n_lines += ch.n_lines
        if not all(k in self.keys for k in ch.keys):
            # new keys are numbered in the order the file first uses them, whatever the engine
            for c in ch.key_order():
                self.code(self.keys, ch.keys[c])
        kmap = np.array([self.code(self.keys, k) for k in ch.keys] + [-1], dtype=np.int32)
        pmap = np.array([self.code(self.params, s) for s in ch.subjects] + [-1], dtype=np.int32)
        self._rows(ch, kmap, pmap)
        self.ts.extend(ch.ts_list)
        if len(ch.ev_line):
            self.events.append((ch.ev_line, ch.ev_epoch, ch.ev_batch, ch.ev_step, ch.ev_phase))
            if self.first_ctx is None:
                has = ~(np.isnan(ch.ev_epoch) & np.isnan(ch.ev_batch) & np.isnan(ch.ev_step))
                if has.any():
                    self.first_ctx = int(ch.ev_line[has][0])
        if len(ch.sections):
            self.sections.append(ch.sections)
        limit = self.first_ctx if self.first_ctx is not None else np.iinfo(np.int64).max
        for ln, k, v, pi in ch.text_values:
            if ln < limit:
                self.text_values.append((ln, k, v, int(pmap[pi])))
        shown: dict[str, int] = {}
        for ln, reason, text in ch.skip_examples:
            self.skipped.add(ln, reason, text)
            shown[reason] = shown.get(reason, 0) + 1
        for reason, n in ch.skip_counts.items():
            rest = n - shown.get(reason, 0)
            if rest:
                self.skipped.count += rest
                self.skipped.by_reason[reason] = self.skipped.by_reason.get(reason, 0) + rest
        self.tracebacks.extend(ch.tracebacks)

    def _rows(self, ch: fast.Columns, kmap: np.ndarray, pmap: np.ndarray) -> None:
        """Write the chunk's fast rows and other rows, merged in line order, after the rows so far."""
        rows = self.rows
        nf, ns = len(ch.f_line), len(ch.line)
        if not nf + ns:
            return
        # the first chunk tells how many rows the file will have, roughly (room not written is never touched;
        # bounded, so that a huge file does not ask for more address space than the machine would give)
        rows.reserve(nf + ns, min(int((nf + ns) * 1.15 * self.size / max(ch.n_bytes, 1)) + 1024, 1 << 25))
        a, b = rows.n, rows.n + nf + ns
        line, key, param, value = rows.line[a:b], rows.key[a:b], rows.param[a:b], rows.value[a:b]
        if not ns:
            np.add(ch.f_line, np.int64(ch.first_line), out=line)
            np.take(kmap, ch.f_key, out=key, mode="wrap")         # code -1 takes the trailing -1
            np.take(pmap, ch.f_param, out=param, mode="wrap")
            value[:] = ch.f_value
        else:
            f_abs = ch.f_line.astype(np.int64) + ch.first_line
            fp = np.arange(nf) + np.searchsorted(ch.line, f_abs)
            sp = np.arange(ns) + np.searchsorted(f_abs, ch.line)
            line[fp], line[sp] = f_abs, ch.line
            key[fp], key[sp] = kmap[ch.f_key], kmap[ch.key]
            param[fp], param[sp] = pmap[ch.f_param], pmap[ch.param]
            value[fp], value[sp] = ch.f_value, ch.value
            with_ts = ch.ts >= 0
            if with_ts.any():
                self.ts_rows.append(a + sp[with_ts])
                self.ts_index.append(ch.ts[with_ts].astype(np.int64) + len(self.ts))
        rows.n = b


def _phrases_in(path: Path, acc: _Acc, lines: list[tuple[int, str]]) -> None:
    for ln, text in lines:
        for rx, key in _PHRASES:
            m = rx.search(text)
            if m and key not in acc.phrases:
                acc.phrases[key] = (int(m.group(1)), ln)


@register
class TextLogReader(Reader):
    name = "text-log"
    description = ("free-form text logs: diagnostic blocks, Python logging key=value lines, nanoGPT iter lines, "
                   "OLMo [step=N] blocks, and others written in the same grammar")

    def __init__(self, engine: str = "auto", threads: int = 2):
        self.engine = engine
        self.threads = threads

    def sniff(self, head: bytes, path: Path) -> float:
        if not head.strip() or looks_binary(head):
            return 0.0
        stripped = head.lstrip()
        if stripped[:1] in (b"{", b"["):
            return 0.02          # JSON: the JSON readers know better
        hits = len(_SNIFF.findall(head[:32768]))
        return 0.6 if hits >= 3 else (0.3 if hits else 0.05)

    def read(self, path: Path) -> ReadResult:
        path = Path(path)
        head = read_head(path)
        if not head.strip():
            raise UnreadableFileError(path, "file is empty (or only whitespace)")
        if looks_binary(head):
            raise UnreadableFileError(path, "file holds binary data, not a text log")
        acc = _Acc(size=path.stat().st_size)
        engine = engine_for(self.engine, path)
        tokenize = engine.tokenize
        phrase_lines: list[tuple[int, str]] = []
        srun = _text_ranks.srun_labelled(head)
        ranked: dict[int, _Acc] = {}            # the streams of ranks other than 0 (rank 0's is ``acc``)
        labelled: list[np.ndarray] = []         # lines of rank 0's stream that carried a rank-0 prefix

        def work(buf: bytes) -> fast.Columns | list:
            # lines are numbered within the chunk; _take moves them to their place in the file
            bad: list[int] = []
            nul = None
            if b"\x00" in buf:          # a killed writer pads the file with NUL bytes: they are no text
                nul = (buf.count(b"\n", 0, buf.index(b"\x00")) + 1, buf.count(b"\x00"))
                buf = buf.replace(b"\x00", b"")
            buf = _valid_utf8(buf, 1, bad)
            streams = _text_ranks.split(buf, srun)
            if streams is not None:             # lines with rank prefixes: one tokenised chunk per rank
                parts = [(st, tokenize(st.buf, 1)) for st in streams]
                for _, ch in parts:
                    ch.n_bytes = len(buf)
                parts[0][1].bad_utf8_lines, parts[0][1].nul = bad, nul
                return parts
            ch = tokenize(buf, 1)
            ch.bad_utf8_lines = bad
            ch.nul = nul
            ch.n_bytes = len(buf)
            return ch

        def take(res) -> None:
            if isinstance(res, list):
                self._take_ranked(res, acc, ranked, labelled, phrase_lines)
            else:
                self._take(res, acc, phrase_lines)

        with ThreadPoolExecutor(max_workers=max(1, self.threads)) as pool:
            pending = []
            for buf, _ in iter_chunks(path, count_lines=False):
                pending.append(pool.submit(work, buf))
                if len(pending) > self.threads:
                    take(pending.pop(0).result())
            for fut in pending:
                take(fut.result())
        _phrases_in(path, acc, phrase_lines)
        if not ranked and not labelled:
            return _assemble(path, acc, engine)
        return _assemble_ranked(path, acc, ranked, labelled, engine)

    @staticmethod
    def _take_ranked(parts: list, acc: _Acc, ranked: dict[int, _Acc], labelled: list[np.ndarray],
                     phrase_lines: list[tuple[int, str]]) -> None:
        """Take one chunk's streams: each into its rank's accumulator, every one at the chunk's place in the
        file (``acc``, rank 0's, counts the file's lines)."""
        offset, n_lines = acc.n_lines, parts[0][1].n_lines
        for st, ch in parts:
            target = acc if st.rank == 0 else ranked.setdefault(st.rank, _Acc(size=acc.size))
            target.n_lines = offset
            TextLogReader._take(ch, target, phrase_lines if st.rank == 0 else [])
            if st.rank == 0 and len(st.labelled):
                labelled.append(st.labelled + (offset + 1))
        acc.n_lines = offset + n_lines

    @staticmethod
    def _take(ch: fast.Columns, acc: _Acc, phrase_lines: list[tuple[int, str]]) -> None:
        ch.shift(acc.n_lines)
        acc.add(ch)
        acc.bad_utf8.extend(ch.bad_utf8_lines)
        if ch.nul is not None:
            acc.nul = ch.nul if acc.nul is None else (acc.nul[0], acc.nul[1] + ch.nul[1])
        phrase_lines.extend(ch.phrase_lines)


#: Files at least this big are tokenised by the compiled (numba) engine when ``engine="auto"``; smaller
#: ones by the numpy engine (a first load from numba's cache, or a first compile, costs more than the
#: numpy engine needs for a small file).
JIT_MIN_BYTES = 24 * 1024 * 1024
ENGINES = ("auto", "jit", "numpy", "python")


@dataclass(frozen=True)
class Engine:
    """How one read tokenises its chunks and runs the context state machine: made per read by
    :func:`engine_for`, passed down explicitly (nothing is chosen by what happens to be imported, and the
    shape plans live as long as the read).

    ``name``: ``jit``, ``numpy`` or ``python`` (the specification the other two must equal: the grammar
    line by line, its own context state machine, no shape plans).
    """

    name: str
    tokenize: Callable[[bytes, int], "fast.Columns"]
    context_states: Callable


def engine_for(engine: str, path: Path) -> Engine:
    """The :class:`Engine` for the name given to :class:`TextLogReader` (``auto`` picks by file size)."""
    if engine not in ENGINES:
        raise ValueError(f"unknown text-log engine {engine!r}; one of {', '.join(ENGINES)}")
    if engine == "auto":
        engine = "jit" if jit_available() and path.stat().st_size >= JIT_MIN_BYTES else "numpy"
    if engine == "jit":
        if not jit_available():
            raise ValueError("the 'jit' text-log engine needs numba (pip install collapse_nb[fast])")
        from . import _text_jit
        if _text_jit.AVAILABLE:
            plans = _text_shapes.Plans()
            return Engine("jit", lambda buf, first: _text_jit.tokenize(buf, first, plans),
                          lambda e, b, s, p, r: _text_jit.context_states(e, b, s, p.astype(np.int64), r))
        engine = "numpy"
    if engine == "numpy":
        plans = _text_shapes.Plans()
        return Engine("numpy", lambda buf, first: _text_shapes.tokenize_numpy(buf, first, plans), _py_context_states)
    return Engine("python", lambda buf, first: fast.to_columns(fast.tokenize(buf, first, fast=False), first),
                  _py_context_states)


def _py_context_states(ev_e, ev_b, ev_s, ev_p, ev_reset):
    return fast.context_states(ev_e.tolist(), ev_b.tolist(), ev_s.tolist(), ev_p.tolist(), ev_reset.tolist())


def jit_available() -> bool:
    """Whether numba can be imported (without importing it: that alone takes a while)."""
    try:
        return importlib.util.find_spec("numba") is not None
    except (ImportError, ValueError):
        return False


def _event_arrays(acc: _Acc):
    if not acc.events:
        return (np.empty(0, np.int64), np.empty(0), np.empty(0), np.empty(0), np.empty(0, np.int8))
    return tuple(np.concatenate([e[i] for e in acc.events]) for i in range(5))


def _context_states(engine: Engine, ev_e, ev_b, ev_s, ev_p, ev_reset):
    """Run the context state machine over the header events (the read's ``engine``); one state per event.

    Returns per event the epoch, batch, step, phase code and segment in force after it, and
    whether the event starts a new segment (a counter went back, or a ``reset``).
    """
    if not len(ev_e):
        return np.empty(0), np.empty(0), np.empty(0), np.empty(0, np.int8), np.empty(0, np.int64), \
            np.empty(0, bool)
    return engine.context_states(ev_e, ev_b, ev_s, ev_p, ev_reset)


def _restart_starts(engine: Engine, ev, line: np.ndarray, key: np.ndarray, ctx_lines: np.ndarray) -> list[int]:
    """Lines where appended restarted runs begin.

    The restart shows where a counter goes back, but the new run's opening lines
    (its banner and config summary) come before that. So the new run is taken to
    start at the first line, after the old run's last use of that counter, that
    repeats a key of the file's opening lines (else at the line where the counter
    went back).
    """
    ev_line, ev_e, ev_b, ev_s, ev_p = ev
    *_, back = _context_states(engine, ev_e, ev_b, ev_s, ev_p, np.zeros(len(ev_line), bool))
    back = np.flatnonzero(back)
    if not len(back):
        return []
    first_ctx = int(ctx_lines[0]) if len(ctx_lines) else np.iinfo(np.int64).max
    opening = np.unique(key[:np.searchsorted(line, first_ctx, side="left")])
    has = {"batch": ~np.isnan(ev_b), "step": ~np.isnan(ev_s), "epoch": ~np.isnan(ev_e)}
    # per field, the last event at or before each event that sets it (-1: none)
    last = {k: np.maximum.accumulate(np.where(v, np.arange(len(v)), -1)) for k, v in has.items()}
    starts = []
    for ei in back.tolist():
        ln = int(ev_line[ei])
        fine = next((k for k in ("batch", "step", "epoch") if has[k][ei]), None)
        prev = int(last[fine][ei - 1]) if fine is not None and ei > 0 else -1
        lo = int(ev_line[prev]) if prev >= 0 else 0
        a, b = np.searchsorted(line, lo, side="right"), np.searchsorted(line, ln, side="left")
        window = np.flatnonzero(np.isin(key[a:b], opening))
        starts.append(int(line[a + window[0]]) if len(window) else ln)
    return starts


def _assemble_ranked(path: Path, acc: _Acc, ranked: dict[int, _Acc], labelled: list[np.ndarray],
                     engine: Engine) -> ReadResult:
    """A file whose lines carry rank prefixes: each rank's stream assembled on its own, then one result
    (:func:`._text_ranks.combine`); a stream without a number in it gives no rows."""
    results = []
    error: UnreadableFileError | None = None
    for rank, a in [(0, acc), *sorted(ranked.items())]:
        try:
            results.append((rank, _assemble(path, a, engine)))
        except UnreadableFileError as exc:       # no numeric values in this rank's lines
            error = error or exc
    if not results:
        assert error is not None              # every stream failed, each with its error
        raise error
    lab = np.concatenate(labelled) if labelled else np.empty(0, np.int64)
    return _text_ranks.combine(results, lab)


def _assemble(path: Path, acc: _Acc, engine: Engine) -> ReadResult:
    n = acc.rows.n
    line, key, param, value = acc.rows.line[:n], acc.rows.key[:n], acc.rows.param[:n], acc.rows.value[:n]
    ev = _event_arrays(acc)
    ev_line, ev_e, ev_b, ev_s, ev_p = ev
    has_ctx = ~(np.isnan(ev_e) & np.isnan(ev_b) & np.isnan(ev_s))
    ctx_lines = ev_line[has_ctx]
    restart_lines = _restart_starts(engine, ev, line, key, ctx_lines)
    # a restart that begins at a header line is reset before that header's context is set
    reset = np.zeros(len(ev_line) + len(restart_lines), dtype=bool)
    reset[len(ev_line):] = True
    r = np.asarray(restart_lines, dtype=np.int64)
    nan = np.full(len(r), np.nan)
    all_line = np.concatenate([ev_line, r])
    order = np.lexsort((~reset, all_line))
    ev_line = all_line[order]
    ep, ba, st, ph, seg, _ = _context_states(engine, np.concatenate([ev_e, nan])[order],
                                             np.concatenate([ev_b, nan])[order],
                                             np.concatenate([ev_s, nan])[order],
                                             np.concatenate([ev_p, np.full(len(r), -1, np.int8)])[order],
                                             reset[order])
    n_ev = len(ev_line)
    notes = []
    sections = np.sort(np.concatenate(acc.sections)) if acc.sections else np.empty(0, np.int64)
    # Rows take the state of the last event at or before their line. Work per stretch of lines between
    # two boundaries (events, sections), then spread over the rows: rows are in line order.
    bounds = np.concatenate([ev_line, sections])          # both sorted: no hashing, a merge
    bounds.sort(kind="stable")
    bounds = bounds[np.r_[True, bounds[1:] != bounds[:-1]]] if len(bounds) else bounds
    b_idx = np.searchsorted(ev_line, bounds, side="right") - 1
    if len(sections) and len(ctx_lines) and sections[0] < ctx_lines[0]:
        # blocks written before the header they belong to (the seed's optimizer blocks)
        last_sec = np.searchsorted(sections, bounds, side="right") - 1
        sec_line = np.where(last_sec >= 0, sections[np.maximum(last_sec, 0)], -1)
        ev_at = np.where(b_idx >= 0, ev_line[np.maximum(b_idx, 0)], -1)
        ahead = (sec_line > ev_at) & (b_idx + 1 < n_ev)
        b_idx = np.where(ahead, b_idx + 1, b_idx)
        notes.append("section blocks come before the header they belong to; each was given the next header's "
                     "context")
    # each stretch's header event; n_ev stands for "before any header"
    b_idx = np.concatenate([[n_ev], np.where(b_idx >= 0, b_idx, n_ev)])
    counts = np.diff(np.concatenate([[0], np.searchsorted(line, bounds, side="left"), [len(line)]]))

    n_rows = len(line)

    def spread(per_event: np.ndarray, fill) -> np.ndarray:
        """Each row's value of a per-event array."""
        table = np.append(per_event, fill)[b_idx]
        if len(table) and (table == table[0]).all():
            # the same for every row: zeros cost no memory until written (calloc), a constant little
            if table[0] == 0:
                return np.zeros(n_rows, dtype=table.dtype)
            return np.full(n_rows, table[0], dtype=table.dtype)
        return np.repeat(table, counts)

    def float_ctx(arr: np.ndarray) -> pd.arrays.FloatingArray:
        mask = np.isnan(arr)
        return pd.arrays.FloatingArray(spread(np.where(mask, 0.0, arr), 0.0), spread(mask, True))

    def int_ctx(arr: np.ndarray) -> pd.arrays.IntegerArray:
        mask = np.isnan(arr)
        ints = np.where(mask, 0, np.round(np.nan_to_num(arr))).astype(np.int64)
        return pd.arrays.IntegerArray(spread(ints, 0), spread(mask, True))

    key_names = list(acc.keys)
    param_names = list(acc.params)
    if acc.ts_rows:
        wall = np.full(n_rows, np.nan)
        wall[np.concatenate(acc.ts_rows)] = _wall_times(acc.ts)[np.concatenate(acc.ts_index)]
        wall_time = pd.arrays.FloatingArray(wall, np.isnan(wall))
    else:
        wall_time = pd.arrays.FloatingArray(np.zeros(n_rows), np.ones(n_rows, dtype=bool))
    df = pd.DataFrame({
        "line": pd.arrays.IntegerArray(line, np.zeros(n_rows, dtype=bool)),
        "phase": pd.Categorical.from_codes(spread(ph, -1), categories=list(_PHASE_CODE)),
        "epoch": float_ctx(ep), "batch": int_ctx(ba), "step": int_ctx(st),
        "param": pd.Categorical.from_codes(param, categories=pd.Index(param_names, dtype=object)),
        "raw_name": pd.Categorical.from_codes(key, categories=pd.Index(key_names, dtype=object)),
        "value": value,
        "wall_time": wall_time,
        "segment": pd.arrays.IntegerArray(spread(seg, 0), np.zeros(n_rows, dtype=bool)),
    }, copy=False)
    del line, key, param, value
    if not len(df):
        raise UnreadableFileError(path, f"no numeric values found in {acc.n_lines:,} lines "
                                        f"({acc.skipped.describe()})")
    # rows outside any epoch/batch/step context: the stretches before the first context
    no_ctx = spread(np.isnan(ep) & np.isnan(ba) & np.isnan(st), True)
    config, where = _config(acc, ctx_lines, df, no_ctx, param_names)
    for name, (total, at) in counter_totals(path).items():     # "Epoch 3/10": the plan the counters state
        if name not in config:
            config[name], where[name] = total, at
    if acc.nul is not None:
        notes.append(f"{acc.nul[1]:,} NUL byte(s) ignored (first at line {acc.nul[0]:,}): the padding a writer "
                     f"killed mid-write leaves; the text around them is read")
    for ln in acc.bad_utf8[:1]:
        notes.append(f"{len(acc.bad_utf8)} line(s) hold bytes that are not UTF-8 (first at line {ln}); "
                     "they were replaced and the lines still read")
    for ln, exc in acc.tracebacks:
        notes.append(f"traceback at line {ln}: {exc}")
    for ln in restart_lines:
        notes.append(f"restart: a new run begins at line {ln} (the epoch/batch/step counter goes back after it)")
    res = ReadResult(source=str(path), format=TextLogReader.name, scalars=df, config=config,
                     skipped=acc.skipped, notes=notes, config_where=where, segment_starts=list(restart_lines))
    res.extra = {}
    return res


def _wall_times(ts: Sequence[str | None]) -> np.ndarray:
    """Seconds since 1970 of each timestamp (NaN: none, or not a date); each distinct text parsed once."""
    if not ts or all(t is None for t in ts):
        return np.full(len(ts), np.nan)
    enc = pa.array(ts, type=pa.string()).dictionary_encode()
    uniq = pc.replace_substring(enc.dictionary, ",", ".").to_pylist()
    parsed = pd.to_datetime(pd.Series(uniq, dtype="object"), errors="coerce", format="mixed")
    out = ((parsed - pd.Timestamp("1970-01-01")) / pd.Timedelta(seconds=1)).to_numpy(dtype="float64", na_value=np.nan)
    codes = enc.indices.fill_null(-1).to_numpy(zero_copy_only=False)
    return np.append(out, np.nan)[codes]


def _config(acc: _Acc, ctx_lines: np.ndarray, df: pd.DataFrame, no_ctx: np.ndarray, param_names):
    """Settings the log states: values outside any epoch/step context (a run's opening lines; a later
    restarted run's values win), stated phrases, and settings logged with one constant value."""
    first_ctx = int(ctx_lines[0]) if len(ctx_lines) else np.iinfo(np.int64).max
    config: dict[str, object] = {}
    where: dict[str, str] = {}
    pre = df[no_ctx]
    for ln, k, p, v in zip(pre["line"], pre["raw_name"].astype(str), pre["param"].astype(object), pre["value"]):
        key = f"{p}.{k}" if isinstance(p, str) else k
        config[key], where[key] = (int(v) if float(v).is_integer() else float(v)), f"line {ln}"
    for ln, k, v, p in acc.text_values:
        if ln < first_ctx:
            key = f"{param_names[p]}.{k}" if p >= 0 else k
            if key not in config:
                config[key], where[key] = v, f"line {ln}"
    for key, (v, ln) in acc.phrases.items():
        config[key], where[key] = v, f"line {ln}"
    # a setting logged at every step with one value ("effective_cycle (gradient_accumulation_steps): 1")
    trained = df[~no_ctx]
    if len(trained):
        for raw in trained["raw_name"].cat.categories:
            ck = canonical_key(str(raw)) or canonical_key(re.sub(r".*\((.*)\).*", r"\1", str(raw)))
            if ck in _CONSTANT_SETTINGS and ck not in {canonical_key(k) for k in config}:
                vals = trained.loc[trained["raw_name"] == raw, "value"].dropna().unique()
                if len(vals) == 1:
                    v = vals[0]
                    config[ck] = int(v) if float(v).is_integer() else float(v)
                    where[ck] = f"constant value of {raw!r} logged during training"
    return config, where
