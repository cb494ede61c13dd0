"""Generic JSON lines: one JSON object per line, each a logging step.

Example (``log.jsonl``)::

    {"iter": 0, "train/loss": 11.05, "val/loss": 11.07, "lr": 0.0}
    {"iter": 100, "train/loss": 4.99, "val/loss": 5.43, "lr": 0.00012}

What becomes what:

- index keys are not values: the step is the first of ``step``, ``global_step``,
  ``_step``, ``iteration``, ``iter``, ``trainer/global_step`` (the others present
  are consumed too); ``epoch`` (fractional allowed); ``batch`` / ``batch_idx``;
  ``_timestamp`` / ``timestamp`` / ``wall_time`` / ``walltime`` (seconds or
  milliseconds since 1970) become ``wall_time``;
- a text ``phase`` / ``mode`` / ``split`` key (``"val"``, ``"eval"``...) sets the
  phase of the row's values;
- numbers are values; nested dicts become ``a/b`` names; numeric lists of at most
  16 values become ``name/0``, ``name/1``... (longer ones are skipped, with a
  note); ``"nan"`` / ``"inf"`` strings and Python's ``NaN`` / ``Infinity``
  literals are kept; other text and booleans are not values;
- a line holding ``config`` / ``args`` / ``hparams`` / ``env_info`` (or with no
  number at all and no index key) is configuration, not scalars;
- lines that are not JSON objects (garbage, a truncated last line, lines over
  16 MiB) are counted in the skip log with their line numbers.

Raw names pass through unchanged (``val/loss`` is canonicalised centrally).
Restarts (the step going back) are detected centrally from ``step``.

The flavours below (:mod:`.detectron2_json`, :mod:`.mmengine_json`,
:mod:`.detr_log`) subclass :class:`JsonlReader` and change only how a row's
index and phase are found and how the content is sniffed.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ..config import flatten
from ..errors import UnreadableFileError
from ..names import PHASE_WORDS
from .base import SNIFF_BYTES, ReadResult, Reader, SkipLog, looks_binary, read_head, register
from ._json_common import (MAX_LINE_BYTES, ListNotes, RowBuilder, TooDeepError, as_counter, as_float, decode_line,
                           is_number, iter_lines, loads, numeric_items)

Record = tuple[int, dict]


@dataclass
class Context:
    """Where one JSON object sits in the run, and which of its keys said so."""

    step: float = math.nan
    epoch: float = math.nan
    batch: float = math.nan
    wall_time: float = math.nan
    phase: str | None = None
    used: set[str] = field(default_factory=set)


def head_records(head: bytes, limit: int = 50) -> tuple[list[dict], int]:
    """The JSON objects on the complete lines of a file's head, and how many lines were tried."""
    lines = head.removeprefix(b"\xef\xbb\xbf").split(b"\n")
    if len(head) >= SNIFF_BYTES and not head.endswith(b"\n"):
        lines = lines[:-1]  # the last line is cut off by the sniff window
    out, tried = [], 0
    for raw in lines:
        if not raw.strip():
            continue
        tried += 1
        try:
            obj = loads(raw.decode("utf-8", errors="replace"))
        except ValueError:
            obj = None
        if isinstance(obj, dict):
            out.append(obj)
        if tried >= limit:
            break
    return out, tried


def first_line_is_object_prefix(head: bytes) -> bool:
    """True when the head is the start of one very long JSON-object line (no newline yet)."""
    return b"\n" not in head.rstrip(b"\n") and head.lstrip().startswith(b'{"')


def to_wall_time(value: Any) -> float:
    """Seconds since 1970 from a timestamp in seconds or milliseconds; NaN if it is not one."""
    v = as_float(value)
    if 1e8 < v < 1e10:
        return v
    if 1e11 < v < 1e13:
        return v / 1000.0
    return math.nan


@register
class JsonlReader(Reader):
    name = "jsonl"
    description = "JSON lines: one JSON object per line with step/iter/epoch index keys and numeric metrics"

    STEP_KEYS: ClassVar[tuple[str, ...]] = ("step", "global_step", "_step", "iteration", "iter",
                                            "trainer/global_step")
    EPOCH_KEYS: ClassVar[tuple[str, ...]] = ("epoch",)
    BATCH_KEYS: ClassVar[tuple[str, ...]] = ("batch", "batch_idx")
    PHASE_KEYS: ClassVar[tuple[str, ...]] = ("phase", "mode", "split")
    TIME_KEYS: ClassVar[tuple[str, ...]] = ("_timestamp", "timestamp", "wall_time", "walltime")
    CONFIG_RECORD_KEYS: ClassVar[frozenset[str]] = frozenset(
        {"config", "args", "hparams", "hyperparameters", "env_info", "cfg"})
    #: Keys whose value goes to the config instead of the scalars (e.g. DETR's ``n_parameters``).
    CONFIG_KEYS: ClassVar[frozenset[str]] = frozenset()

    # ---------------------------------------------------------------- sniffing
    def sniff(self, head: bytes, path: Path) -> float:
        if looks_binary(head):
            return 0.0
        records, tried = head_records(head)
        if not records:
            return self.score_long_line(head) if first_line_is_object_prefix(head) else 0.0
        share = len(records) / tried
        if share < 0.3:  # mostly text with a few JSON objects in it: not JSON lines
            return 0.0
        return self.score(records) * (1.0 if share >= 0.8 else 0.8)  # tracebacks etc. mixed in

    def score(self, records: list[dict]) -> float:
        """Confidence that these (already parsed) head objects are this flavour."""
        if not any(is_number(v) for r in records for v in r.values()):
            return 0.1
        indexed = any(k in r for r in records for k in self.STEP_KEYS + self.EPOCH_KEYS)
        if indexed:
            return 0.6
        # one object without a step or epoch is more likely a config or a results file than a log
        return 0.5 if len(records) > 1 else 0.3

    def score_long_line(self, head: bytes) -> float:
        """Confidence when even the first line is longer than the sniff window."""
        return 0.25

    # ---------------------------------------------------------------- reading
    def read(self, path: Path) -> ReadResult:
        path = Path(path)
        skipped = SkipLog()
        records = self.parse_lines(path, skipped)
        # a fresh copy per file: flavours keep per-file facts (set in ``prepare``) on the instance
        return copy.copy(self).build(path, records, skipped)

    def parse_lines(self, path: Path, skipped: SkipLog) -> list[Record]:
        """Every line that is a JSON object, with its line number; the rest goes to ``skipped``."""
        head = read_head(path)
        if not head.strip():
            raise UnreadableFileError(path, "file is empty")
        if looks_binary(head):
            raise UnreadableFileError(path, "file holds binary data, not JSON lines")
        records: list[Record] = []
        nonblank = 0
        for ln, data, ended in iter_lines(path):
            if data is None:
                nonblank += 1
                skipped.add(ln, f"line longer than {MAX_LINE_BYTES // (1024 * 1024)} MiB (not parsed)")
                continue
            text = decode_line(data, ln, skipped)
            if ln == 1:
                text = text.removeprefix("\ufeff")
            if not text.strip():
                continue
            nonblank += 1
            try:
                obj = loads(text)
            except ValueError as exc:
                why = ("nested too deeply for the JSON parser" if isinstance(exc, TooDeepError) else
                       "not valid JSON" + ("" if ended else " (truncated last line)"))
                skipped.add(ln, why, text.strip())
                continue
            if not isinstance(obj, dict):
                skipped.add(ln, "not a JSON object", text.strip())
                continue
            records.append((ln, obj))
        if not records:
            if not nonblank:
                raise UnreadableFileError(path, "file is empty")
            first = f" (line {skipped.examples[0][0]}: {skipped.examples[0][1]})" if skipped.examples else ""
            raise UnreadableFileError(path, f"not JSON lines: none of {nonblank} lines is a JSON object{first}")
        return records

    def build(self, path: Path, records: list[Record], skipped: SkipLog) -> ReadResult:
        """Records -> raw scalars, config and notes."""
        self.prepare(records)
        rows, lists = RowBuilder(), ListNotes()
        config: dict[str, Any] = {}
        for ln, rec in records:
            if self.is_config_record(rec) or not self.add_record(rows, lists, config, ln, rec):
                for k, v in flatten(rec).items():  # a header / metadata line: configuration
                    config.setdefault(k, v)
        if not len(rows):
            raise UnreadableFileError(path, f"no numeric values in {len(records)} JSON objects")
        return ReadResult(source=str(path), format=self.name, scalars=rows.frame(), config=config,
                          skipped=skipped, notes=self.notes() + lists.notes())

    def add_record(self, rows: RowBuilder, lists: ListNotes, config: dict, line: int, rec: dict) -> bool:
        """Add one object's values; False when it held neither a number nor an index key."""
        ctx = self.context(rec)
        drop = ctx.used
        if self.CONFIG_KEYS:
            for k in self.CONFIG_KEYS & rec.keys():
                config.setdefault(k, rec[k])
            drop = drop | self.CONFIG_KEYS
        body = {k: v for k, v in rec.items() if k not in drop}
        rec_id = rows.record(line=line, epoch=ctx.epoch, batch=ctx.batch, step=ctx.step, wall_time=ctx.wall_time)
        before = len(rows)
        key_phase, phase = self.key_phase, ctx.phase
        for name, value in numeric_items(body, lists):
            rows.add(rec_id, name, value, key_phase(name, phase))
        return len(rows) > before or bool(ctx.used)

    # ---------------------------------------------------------------- hooks for the flavours
    def prepare(self, records: list[Record]) -> None:
        """Look at the whole file once before the rows are built (flavours that need it)."""

    def notes(self) -> list[str]:
        """Notes about the format to hand back with every file read (flavours override)."""
        return []

    def is_config_record(self, rec: dict) -> bool:
        return bool(self.CONFIG_RECORD_KEYS & rec.keys())

    def context(self, rec: dict) -> Context:
        """The row's step, epoch, batch, wall time and phase, from its index keys."""
        ctx = Context()
        ctx.step = self._first(rec, self.STEP_KEYS, ctx)
        ctx.epoch = self._first(rec, self.EPOCH_KEYS, ctx)
        ctx.batch = self._first(rec, self.BATCH_KEYS, ctx)
        for k in self.TIME_KEYS:
            if k in rec:
                wt = to_wall_time(rec[k])
                if not math.isnan(wt):
                    ctx.used.add(k)
                    if math.isnan(ctx.wall_time):
                        ctx.wall_time = wt
        ctx.phase = self.phase_of(rec, ctx)
        return ctx

    def phase_of(self, rec: dict, ctx: Context) -> str | None:
        """The phase a text ``phase``/``mode``/``split`` key names, if any (the key is consumed)."""
        for k in self.PHASE_KEYS:
            v = rec.get(k)
            if isinstance(v, str):
                ctx.used.add(k)
                phase = PHASE_WORDS.get(v.strip().lower())
                if phase:
                    return phase
        return None

    def key_phase(self, name: str, row_phase: str | None) -> str | None:
        """The context phase of one value of a row (flavours refine this per key)."""
        return row_phase

    @staticmethod
    def _first(rec: dict, keys: tuple[str, ...], ctx: Context) -> float:
        """The first of ``keys`` present, as a float; every one of them present is consumed."""
        found = math.nan
        for k in keys:
            if k in rec:
                ctx.used.add(k)
                if math.isnan(found):
                    found = as_counter(rec[k])
        return found
