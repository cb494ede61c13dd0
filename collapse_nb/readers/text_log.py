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

The file is streamed in chunks; big logs are tokenised with numpy/pyarrow
(``_text_fast``) on two threads.
"""
from __future__ import annotations

import math
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from ..config import canonical_key
from ..errors import UnreadableFileError
from . import _text_fast as fast
from ._text_grammar import parse_line
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


def iter_chunks(path: Path, chunk_bytes: int | None = None) -> Iterator[tuple[bytes, int]]:
    """Yield ``(bytes, first line number)``, each chunk cut before a line that starts unindented."""
    chunk_bytes = chunk_bytes or CHUNK_BYTES      # read at call time, so the module setting can be changed
    line = 1
    with open(path, "rb") as f:
        rest = b""
        while True:
            data = f.read(chunk_bytes)
            buf = rest + data
            if not data:
                if buf:
                    yield buf, line
                return
            cut = _cut_point(buf)
            if cut <= 0:                       # one enormous line (or block): keep reading
                rest = buf
                continue
            chunk, rest = buf[:cut], buf[cut:]
            yield chunk, line
            line += chunk.count(b"\n")


def _cut_point(buf: bytes) -> int:
    """Where to cut: before an unindented line that does not end a traceback (its exception line)."""
    pos = len(buf)
    for _ in range(10_000):
        nl = buf.rfind(b"\n", 0, pos)
        if nl < 0:
            return -1
        nxt = buf[nl + 1:nl + 2]
        if nxt and nxt not in b" \t\r\n" and not _in_traceback(buf, nl):
            return nl + 1
        pos = nl
    return buf.rfind(b"\n") + 1


def _in_traceback(buf: bytes, end: int) -> bool:
    """Whether the lines before ``end`` are a traceback's frames, still waiting for the exception line."""
    for _ in range(1_000):
        start = buf.rfind(b"\n", 0, end) + 1
        line = buf[start:end]
        if line.strip() and line[:1] not in b" \t":
            return line.rstrip().endswith(_TRACEBACK_START)
        if start == 0:
            return False
        end = start - 1
    return False


def _valid_utf8(buf: bytes, first_line: int, bad: list[int]) -> bytes:
    try:
        buf.decode("utf-8")
        return buf
    except UnicodeDecodeError:
        text = buf.decode("utf-8", errors="replace")
        for i, ln in enumerate(text.split("\n")):
            if "\ufffd" in ln:
                bad.append(first_line + i)
        return text.encode("utf-8")


@dataclass
class _Acc:
    """Everything collected from the chunks, in file order."""

    keys: dict[str, int] = field(default_factory=dict)
    params: dict[str, int] = field(default_factory=dict)
    #: per chunk, in line order: (line, key code, param code, value, index into ``ts`` or -1)
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)
    ts: list[str] = field(default_factory=list)
    events: list[tuple[int, dict, str | None]] = field(default_factory=list)
    sections: list[int] = field(default_factory=list)
    text_values: list[tuple[int, str, str, int]] = field(default_factory=list)
    phrases: dict[str, tuple[object, int]] = field(default_factory=dict)
    skipped: SkipLog = field(default_factory=SkipLog)
    tracebacks: list[tuple[int, str]] = field(default_factory=list)
    bad_utf8: list[int] = field(default_factory=list)
    n_lines: int = 0

    def code(self, table: dict[str, int], s: str) -> int:
        c = table.get(s)
        if c is None:
            c = table[s] = len(table)
        return c

    def add(self, ch: fast.Chunk) -> None:
        """Take one chunk's values, merged into line order (chunks arrive in file order)."""
        self.n_lines += ch.n_lines
        kmap = np.array([self.code(self.keys, k) for k in ch.keys] + [-1], dtype=np.int32)
        pmap = np.array([self.code(self.params, s) for s in ch.subjects] + [-1], dtype=np.int32)
        s_line, s_key, s_param, s_value, s_ts = [], [], [], [], []
        subjects = ch.subjects
        for ln, p, pi in ch.parsed:
            param = self.code(self.params, subjects[pi]) if pi >= 0 else -1
            ts = -1
            if p.timestamp is not None and p.values:
                ts = len(self.ts)
                self.ts.append(p.timestamp)
            for k, v in p.values:
                s_line.append(ln)
                s_key.append(self.code(self.keys, k))
                s_param.append(param)
                s_value.append(v)
                s_ts.append(ts)
            if p.context or p.phase:
                self.events.append((ln, p.context, p.phase))
            if p.kind == "section":
                self.sections.append(ln)
            for k, v in p.text_values:
                self.text_values.append((ln, k, v, param))
        line = np.concatenate([ch.v_line, np.asarray(s_line, dtype=np.int64)])
        if len(line):
            order = np.argsort(line, kind="stable") if s_line and len(ch.v_line) else slice(None)
            n_fast = len(ch.v_line)
            self.parts.append((
                line[order],
                np.concatenate([kmap[ch.v_key], np.asarray(s_key, dtype=np.int32)])[order],
                np.concatenate([pmap[ch.v_param], np.asarray(s_param, dtype=np.int32)])[order],
                np.concatenate([ch.v_value, np.asarray(s_value, dtype=np.float64)])[order],
                np.concatenate([np.full(n_fast, -1, dtype=np.int32), np.asarray(s_ts, dtype=np.int32)])[order],
            ))
        for ln, reason, text in ch.skipped:
            self.skipped.add(ln, reason, text)
        self.tracebacks.extend(ch.tracebacks)


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
        acc = _Acc()
        use_fast = self.engine != "python"
        phrase_lines: list[tuple[int, str]] = []

        def work(item: tuple[bytes, int]) -> fast.Chunk:
            buf, first = item
            bad: list[int] = []
            buf = _valid_utf8(buf, first, bad)
            ch = fast.tokenize(buf, first, fast=use_fast)
            ch.bad_utf8_lines = bad
            return ch

        with ThreadPoolExecutor(max_workers=max(1, self.threads)) as pool:
            pending = []
            for item in iter_chunks(path):
                pending.append(pool.submit(work, item))
                if len(pending) > self.threads:
                    self._take(pending.pop(0).result(), acc, phrase_lines)
            for fut in pending:
                self._take(fut.result(), acc, phrase_lines)
        _phrases_in(path, acc, phrase_lines)
        return _assemble(path, acc)

    @staticmethod
    def _take(ch: fast.Chunk, acc: _Acc, phrase_lines: list[tuple[int, str]]) -> None:
        acc.add(ch)
        acc.bad_utf8.extend(ch.bad_utf8_lines)
        phrase_lines.extend(ch.phrase_lines)


def _context_states(events: list[tuple[int, dict, str | None]]):
    """Run the context state machine over the header events; one state per event."""
    n = len(events)
    ev_line = np.empty(n, dtype=np.int64)
    ep, ba, st = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    ph: list[str | None] = [None] * n
    seg = np.zeros(n, dtype=np.int64)
    epoch = batch = step = math.nan
    # the highest batch seen in this epoch, per phase, for spotting restarts: an evaluation loop
    # counts its batches from 0 again each time it starts, without the run having restarted
    last_batch: dict[str | None, float] = {}
    phase: str | None = None
    segment = 0
    restarts = []
    for i, (ln, ctx, p) in enumerate(events):
        e, b, s = ctx.get("epoch", math.nan), ctx.get("batch", math.nan), ctx.get("step", math.nan)
        if p is not None and p != phase and p != "train":
            last_batch.pop(p, None)
        counted = p if p is not None else phase
        back = "reset" in ctx or (e < epoch) or (s < step) or (
            not math.isnan(b) and (e == epoch or math.isnan(e)) and b < last_batch.get(counted, math.nan))
        if back:
            segment += 1
            restarts.append(i)
            epoch = batch = step = math.nan
            last_batch = {}
            phase = None
        if not math.isnan(e):
            if e != epoch:
                phase = p
                last_batch = {}
            batch = math.nan          # an epoch line without a batch is about the whole epoch
            epoch = e
        if not math.isnan(b):
            batch = b
            last_batch[counted] = max(last_batch.get(counted, b), b)
        if not math.isnan(s):
            step = s
        if p is not None:
            phase = p
        ev_line[i], ep[i], ba[i], st[i], ph[i], seg[i] = ln, epoch, batch, step, phase, segment
    return ev_line, ep, ba, st, ph, seg, restarts


def _restart_starts(events, line: np.ndarray, key: np.ndarray, ctx_lines: np.ndarray) -> list[int]:
    """Lines where appended restarted runs begin.

    The restart shows where a counter goes back, but the new run's opening lines
    (its banner and config summary) come before that. So the new run is taken to
    start at the first line, after the old run's last use of that counter, that
    repeats a key of the file's opening lines (else at the line where the counter
    went back).
    """
    _, _, _, _, _, _, back = _context_states(events)
    if not back:
        return []
    first_ctx = int(ctx_lines[0]) if len(ctx_lines) else np.iinfo(np.int64).max
    opening = np.unique(key[line < first_ctx])
    starts = []
    for ei in back:
        ln, ctx, _ = events[ei]
        fine = next((k for k in ("batch", "step", "epoch") if k in ctx), None)
        lo = next((events[j][0] for j in range(ei - 1, -1, -1) if fine in events[j][1]), 0)
        window = np.flatnonzero((line > lo) & (line < ln) & np.isin(key, opening))
        starts.append(int(line[window[0]]) if len(window) else int(ln))
    return starts


def _assemble(path: Path, acc: _Acc) -> ReadResult:
    parts, acc.parts = acc.parts, []

    def column(i: int, dtype) -> np.ndarray:
        return np.concatenate([p[i] for p in parts]) if parts else np.empty(0, dtype=dtype)

    line, key, param, value, ts_idx = (column(0, np.int64), column(1, np.int32), column(2, np.int32),
                                       column(3, np.float64), column(4, np.int32))
    del parts

    acc.events.sort(key=lambda e: e[0])
    ctx_lines = np.asarray([e[0] for e in acc.events if e[1]], dtype=np.int64)
    restart_lines = _restart_starts(acc.events, line, key, ctx_lines)
    # a restart that begins at a header line is reset before that header's context is set
    events = sorted(acc.events + [(ln, {"reset": 1.0}, None) for ln in restart_lines],
                    key=lambda e: (e[0], "reset" not in e[1]))
    ev_line, ep, ba, st, ph, seg, _ = _context_states(events)
    idx = np.searchsorted(ev_line, line, side="right") - 1
    notes = []
    sections = np.asarray(sorted(acc.sections), dtype=np.int64)
    if len(sections) and len(ctx_lines) and sections[0] < ctx_lines[0]:
        # blocks written before the header they belong to (the seed's optimizer blocks)
        last_sec = np.searchsorted(sections, line, side="right") - 1
        sec_line = np.where(last_sec >= 0, sections[np.maximum(last_sec, 0)], -1)
        ev_at = np.where(idx >= 0, ev_line[np.maximum(idx, 0)], -1)
        ahead = (sec_line > ev_at) & (idx + 1 < len(ev_line))
        idx = np.where(ahead, idx + 1, idx)
        notes.append("section blocks come before the header they belong to; each was given the next header's "
                     "context")
    # each row's header event; len(events) stands for "before any header"
    ev_idx = np.where(idx >= 0, idx, len(ev_line))
    del idx

    def float_ctx(arr: np.ndarray) -> pd.arrays.FloatingArray:
        vals = np.append(arr, np.nan)[ev_idx]
        return pd.arrays.FloatingArray(vals, np.isnan(vals))

    def int_ctx(arr: np.ndarray) -> pd.arrays.IntegerArray:
        per_event = np.append(arr, np.nan)
        mask = np.isnan(per_event)
        ints = np.where(mask, 0, np.round(np.nan_to_num(per_event))).astype(np.int64)
        return pd.arrays.IntegerArray(ints[ev_idx], mask[ev_idx])

    phase_of_event = np.array([_PHASE_CODE.get(p, -1) for p in ph] + [-1], dtype=np.int8)
    key_names = list(acc.keys)
    param_names = list(acc.params)
    wall = np.append(_wall_times(acc.ts), np.nan)[ts_idx] if len(line) else np.array([])
    df = pd.DataFrame({
        "line": line,
        "phase": pd.Categorical.from_codes(phase_of_event[ev_idx], categories=list(_PHASE_CODE)),
        "epoch": float_ctx(ep), "batch": int_ctx(ba), "step": int_ctx(st),
        "param": pd.Categorical.from_codes(param, categories=pd.Index(param_names, dtype=object)),
        "raw_name": pd.Categorical.from_codes(key, categories=pd.Index(key_names, dtype=object)),
        "value": value,
        "wall_time": pd.arrays.FloatingArray(wall, np.isnan(wall)),
        "segment": np.append(seg, 0)[ev_idx].astype(np.int64),
    }, copy=False)
    del ev_idx, line, key, param, value, wall, ts_idx
    if not len(df):
        raise UnreadableFileError(path, f"no numeric values found in {acc.n_lines:,} lines "
                                        f"({acc.skipped.describe()})")
    no_ctx = df["epoch"].isna().to_numpy() & df["batch"].isna().to_numpy() & df["step"].isna().to_numpy()
    config, where = _config(acc, ctx_lines, df, no_ctx, param_names)
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


def _wall_times(ts: list[str | None]) -> np.ndarray:
    if not ts or all(t is None for t in ts):
        return np.full(len(ts), np.nan)
    s = pd.Series(ts, dtype="object").str.replace(",", ".", regex=False)
    parsed = pd.to_datetime(s, errors="coerce", format="mixed")
    out = (parsed - pd.Timestamp("1970-01-01")) / pd.Timedelta(seconds=1)
    return out.to_numpy(dtype="float64", na_value=np.nan)


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
