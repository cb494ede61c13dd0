"""Chainer ``LogReport`` output: one pretty-printed JSON array of records (file ``result/log``).

``chainer.training.extensions.LogReport`` rewrites the whole file at every
trigger with ``json.dump(log, f, indent=4)``::

    [
        {
            "main/loss": 0.19,
            "validation/main/loss": 0.09,
            "validation/main/accuracy": 0.97,
            "epoch": 1,
            "iteration": 600,
            "elapsed_time": 4.2
        },
        ...
    ]

- ``iteration`` is the step and ``epoch`` the (whole) epoch the trainer was in;
  ``elapsed_time`` (seconds since training started) stays a value.
- Keys are reporter paths: ``main/loss`` (the main optimizer's target),
  ``gen/loss``, ``dis/loss`` (GAN updaters) are training values (phase
  ``train``); ``validation/main/...`` come from the ``Evaluator`` and the phase
  word in the name says ``val``. Keys without a ``/`` (``elapsed_time``,
  ``lr``) have no phase.
- Records are decoded one by one, so a file cut off in the middle keeps every
  complete record; what cannot be decoded is counted in the skip log with its
  line. Any other JSON array of flat numeric records is read the same way.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

from ..errors import UnreadableFileError
from ..names import PHASE_WORDS
from .base import ReadResult, Reader, SkipLog, looks_binary, read_text, register
from ._json_common import ListNotes, RowBuilder, as_counter, iter_array_records, numeric_items

_ARRAY_OF_OBJECTS = re.compile(rb"^\s*\[\s*\{")
STEP_KEYS = ("iteration", "step", "iter")
EPOCH_KEYS = ("epoch",)


def record_phase(name: str) -> str | None:
    """``validation/main/loss`` -> ``val``; ``main/loss`` -> ``train``; ``elapsed_time`` -> ``None``."""
    parts = name.split("/")
    for part in parts:
        phase = PHASE_WORDS.get(part.lower())
        if phase:
            return phase
    return "train" if len(parts) > 1 else None


def _first(rec: dict, keys: tuple[str, ...]) -> tuple[float, str | None]:
    for k in keys:
        if k in rec:
            return as_counter(rec[k]), k
    return math.nan, None


@register
class ChainerLogReader(Reader):
    name = "chainer-log"
    description = "Chainer LogReport 'log': a pretty-printed JSON array of records (main/loss, iteration...)"

    def sniff(self, head: bytes, path: Path) -> float:
        head = head.removeprefix(b"\xef\xbb\xbf")
        if looks_binary(head) or not _ARRAY_OF_OBJECTS.match(head):
            return 0.0
        indexed = b'"iteration"' in head or b'"epoch"' in head
        if indexed and b'"elapsed_time"' in head:
            return 0.9
        if b'"main/' in head or b'"validation/main/' in head:
            return 0.85
        return 0.5 if indexed or b'"step"' in head else 0.3

    def read(self, path: Path) -> ReadResult:
        path = Path(path)
        skipped = SkipLog()
        text = read_text(path, skipped)
        if not text.lstrip("\ufeff \t\r\n").startswith("["):
            raise UnreadableFileError(path, "not a Chainer log: the file is not a JSON array")
        rows, lists, n_records = RowBuilder(), ListNotes(), 0
        for line, rec in iter_array_records(text, skipped):
            if not isinstance(rec, dict):
                skipped.add(line, "not a JSON object", str(rec)[:200])
                continue
            n_records += 1
            self._add_record(rows, lists, line, rec)
        if not n_records:
            raise UnreadableFileError(path, "not a Chainer log: the JSON array holds no object")
        if not len(rows):
            raise UnreadableFileError(path, f"no numeric values in {n_records} records")
        notes = lists.notes()
        if skipped.count:
            notes.append(f"{skipped.count} record(s) could not be decoded; the others were read")
        return ReadResult(source=str(path), format=self.name, scalars=rows.frame(), skipped=skipped,
                          notes=notes)

    @staticmethod
    def _add_record(rows: RowBuilder, lists: ListNotes, line: int, rec: dict) -> None:
        step, step_key = _first(rec, STEP_KEYS)
        epoch, epoch_key = _first(rec, EPOCH_KEYS)
        used = {step_key, epoch_key}
        body = {k: v for k, v in rec.items() if k not in used}
        rec_id = rows.record(line=line, epoch=epoch, step=step)
        for name, value in numeric_items(body, lists):
            rows.add(rec_id, name, value, record_phase(name))
