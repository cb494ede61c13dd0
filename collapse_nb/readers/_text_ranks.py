"""Rank prefixes in one text log: the processes of a distributed run writing into one file.

A launcher that merges the output of several processes into one stream marks each line with the
process that wrote it. These prefixes are read, at the start of a line only:

- ``[rank3]:`` (PyTorch's per-rank prefix on c10d warnings and tracebacks: ``[rank3]:[W102 ...]``,
  ``[rank0]: Traceback ...``), and ``[RANK 3]`` / ``[Rank 3]`` / ``[rank 3]`` with or without the colon;
- ``[default3]:`` (``torchrun --tee``: the role name, ``default``, and the local rank);
- DeepSpeed's ``log_dist``: ``[2025-01-02 15:46:44,637] [INFO] [logging.py:128:log_dist] [Rank 0] msg``
  (the ``[Rank N] `` after the logging prefix is taken out, the logging prefix kept);
- ``3: `` (``srun --label``), only in a file whose head is labelled so on nearly every line (at least
  :data:`SRUN_MIN_LINES` lines and :data:`SRUN_SHARE` of them), as srun labels every line of every task:
  elsewhere ``3: 0.25`` is a value.

The prefix is removed before the line is parsed (one space after ``[rank3]:`` with it, so a traceback's
indentation stays). Each rank's lines are parsed as a stream of their own, with their own epoch/step
context and restarts (:func:`split`), the other ranks' lines blanked so that line numbers stay the
file's; lines with no prefix are parsed with rank 0's (the launcher's lines and what only rank 0
prints: ``print_rank_0``, DeepSpeed's ``log_dist`` at its default ``ranks=[0]``). Every row then gets
its own line's rank, NA on a line without a prefix (:func:`combine`).

A chunk without any ``[rank``, ``[Rank``, ``[RANK`` or ``[default`` costs one search (:data:`_QUICK`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pandas.api.types import union_categoricals

from .base import ReadResult, SkipLog

_QUICK = re.compile(rb"\[(?:rank|RANK|Rank|default)")
#: at a line start (after the ``\n`` before it): the rank in group 1, 2 or 4; group 3 is a logging prefix kept
_PREFIX = (rb"\[(?:rank|RANK|Rank)[ _]?(\d{1,5})\]:? ?|\[default(\d{1,5})\]:|"
           rb"(\[[^\]\n]{1,40}\] \[[A-Z]{3,8}\] \[[^\]\n]{1,120}\] )\[Rank (\d{1,5})\] ")
_LINE = re.compile(rb"\n(?:" + _PREFIX + rb")")
_LINE_SRUN = re.compile(rb"\n(?:" + _PREFIX + rb"| {0,6}(\d{1,5}): )")
_SRUN_HEAD = re.compile(rb"^ {0,6}(\d{1,5}): ")
SRUN_MIN_LINES = 4
SRUN_SHARE = 0.9


def srun_labelled(head: bytes) -> bool:
    """Whether the file's head is ``srun --label`` output: nearly every line ``<task>: ...``, and the labels
    repeat (a column of ``1: 0.5``, ``2: 0.4`` numbering its lines is no task label)."""
    lines = [ln for ln in head.split(b"\n")[:-1] if ln.strip()][:200]
    if len(lines) < SRUN_MIN_LINES:
        return False
    labels = [m.group(1) for m in map(_SRUN_HEAD.match, lines) if m]
    return len(labels) >= SRUN_SHARE * len(lines) and len(set(labels)) <= max(1, len(labels) // 2)


@dataclass
class Stream:
    """One rank's lines of a chunk: ``buf`` holds them (prefixes removed, other lines blank); ``labelled``:
    the 0-based lines of the chunk that carried this rank's prefix (rank 0's stream also holds unprefixed ones)."""

    rank: int
    buf: bytes
    labelled: np.ndarray


def split(buf: bytes, srun: bool = False) -> list[Stream] | None:
    """The chunk's streams, one per rank (rank 0's first, with the unprefixed lines), or ``None`` when no line
    of it carries a rank prefix."""
    if not srun and _QUICK.search(buf) is None:
        return None
    text = b"\n" + buf
    pieces, lines, ranks = [], [], []
    pos = line = 0
    for m in (_LINE_SRUN if srun else _LINE).finditer(text):
        start = m.start()                           # the "\n" that ends the line before the prefixed one
        line += text.count(b"\n", pos, start)
        lines.append(line)
        pieces.append(text[pos:start + 1])
        if m.group(3):
            pieces.append(m.group(3))
        pos = m.end()
        ranks.append(int(next(g for g in (m.group(1), m.group(2), m.group(4), m.group(5) if srun else None) if g)))
        line += 1                                   # that "\n", inside the match
    if not lines:
        return None
    pieces.append(text[pos:])
    stripped = b"".join(pieces)[1:]
    at, rank = np.asarray(lines, dtype=np.int64), np.asarray(ranks, dtype=np.int64)
    others = sorted(set(rank[rank != 0].tolist()))
    if not others:
        return [Stream(0, stripped, at)]
    rows = stripped.split(b"\n")
    stream = np.zeros(len(rows), dtype=np.int64)
    stream[at] = rank
    out = []
    for r in [0] + others:
        mine = np.flatnonzero(stream == r)
        if not len(mine):
            continue
        blank = [b""] * len(rows)
        for i in mine.tolist():
            blank[i] = rows[i]
        out.append(Stream(r, b"\n".join(blank), at[rank == r]))
    return out


def combine(results: list[tuple[int, ReadResult]], labelled0: np.ndarray) -> ReadResult:
    """One file's result from its streams' (rank, result), rank 0's first: rows with their rank (NA for rank 0's
    stream lines without a prefix, ``labelled0`` the 1-based lines that had ``[rank0]``), rank 0's configuration
    first, skips merged, a restart at the earliest line any rank's restart begins."""
    frames = []
    for rank, res in results:
        df = res.scalars
        if rank == 0:
            mask = ~np.isin(df["line"].to_numpy(dtype=np.int64), labelled0)
            col = pd.arrays.IntegerArray(np.zeros(len(df), dtype=np.int64), mask)
        else:
            col = pd.arrays.IntegerArray(np.full(len(df), rank, dtype=np.int64), np.zeros(len(df), dtype=bool))
        frames.append(df.assign(rank=col))
    scalars = _concat(frames)
    first = results[0][1]
    config, where, skipped = dict(first.config), dict(first.config_where), SkipLog()
    starts: list[int] = []
    notes: list[str] = []
    for _, res in results:
        for k, v in res.config.items():
            if k not in config:
                config[k] = v
                if k in res.config_where:
                    where[k] = res.config_where[k]
        skipped.merge(res.skipped)
        for i, ln in enumerate(res.segment_starts):
            if i < len(starts):
                starts[i] = min(starts[i], ln)
            else:
                starts.append(ln)
        notes.extend(n for n in res.notes if not n.startswith("restart: ") and n not in notes)
    ranks = sorted({r for r, _ in results} | ({0} if len(labelled0) else set()))
    notes.append(f"lines prefixed by rank ({', '.join(map(str, ranks))}): each rank's lines were read as a stream "
                 f"of their own (its own epoch/step context and restarts); lines without a prefix with rank 0's")
    notes.extend(f"restart: a new run begins at line {ln} (the epoch/batch/step counter goes back after it)"
                 for ln in starts)
    return ReadResult(source=first.source, format=first.format, scalars=scalars, config=config, skipped=skipped,
                      notes=notes, config_where=where, segment_starts=starts)


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Streams' raw tables one after the other (each in line order), categorical columns as one categorical."""
    if len(frames) == 1:
        return frames[0]
    out = {}
    for c in frames[0].columns:
        parts = [f[c] for f in frames]
        if isinstance(parts[0].dtype, pd.CategoricalDtype):
            out[c] = union_categoricals([pd.Categorical(p.array, categories=pd.Index(
                [str(x) for x in p.cat.categories], dtype=object)) for p in parts], ignore_order=True)
        else:
            out[c] = pd.concat(parts, ignore_index=True).array
    return pd.DataFrame(out, copy=False)
