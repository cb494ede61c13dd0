"""Keras ``History.history`` saved as JSON: one object of metric name -> list of per-epoch values.

``model.fit`` returns a ``History`` whose ``history`` dict users save with
``json.dump(history.history, f)``::

    {"loss": [0.517, 0.476, ...], "accuracy": [0.758, ...],
     "val_loss": [0.49, ...], "val_accuracy": [0.79, ...], "learning_rate": [0.001, ...]}

- value ``i`` of every list is epoch ``i + 1`` (Keras counts epochs from 1 in its progress bar);
- ``val_*`` keys are the validation phase (the name says so); the others are training values,
  except the learning rate (``lr`` / ``learning_rate``), which has no phase;
- ``NaN``, ``Infinity`` and ``null`` entries are kept as NaN/inf (a NaN loss is a finding, not
  noise); an entry that is not a number is counted in the skip log with its key;
- lists of different lengths (a history appended to after a resumed ``fit``) are read as they
  are, and a note says which keys are shorter;
- a file cut off while being written keeps its complete lists; the one it ends in is counted in
  the skip log at its line.

The file is recognised by content: a JSON object whose values are lists of numbers, with
``loss`` or a ``val_`` key among them, whatever the file's name.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np

from ..errors import UnreadableFileError
from .base import ReadResult, Reader, SkipLog, looks_binary, read_text, register
from ._json_common import RowBuilder, loads, number_or_none

_HEAD = re.compile(rb'^\s*\{\s*"(?P<key>[^"]{1,200})"\s*:\s*\[\s*(?:-?\d|NaN|-?Infinity|null|\])')
_LIST_KEY = re.compile(rb'"([^"]{1,200})"\s*:\s*\[')
_NO_PHASE = {"lr", "learning_rate"}


def key_phase(key: str) -> str | None:
    """``val_loss`` -> ``val``; ``lr`` -> ``None``; anything else -> ``train``."""
    if key.lower() in _NO_PHASE:
        return None
    return "val" if key.lower().startswith(("val_", "validation_")) else "train"


@register
class KerasHistoryReader(Reader):
    name = "keras-history"
    description = "Keras History.history saved as JSON: {\"loss\": [...], \"val_loss\": [...], ...} per epoch"

    def sniff(self, head: bytes, path: Path) -> float:
        head = head.removeprefix(b"\xef\xbb\xbf")
        if looks_binary(head) or not _HEAD.match(head):
            return 0.0
        keys = {k.decode("utf-8", "replace").lower() for k in _LIST_KEY.findall(head)}
        if "loss" in keys or any(k.startswith("val_") for k in keys):
            return 0.9
        return 0.4

    def read(self, path: Path) -> ReadResult:
        path = Path(path)
        skipped = SkipLog()
        text = read_text(path, skipped)
        notes = []
        try:
            obj = loads(text)
        except (ValueError, json.JSONDecodeError) as e:
            obj, cut = _complete_lists(text)
            if not obj:
                raise UnreadableFileError(path, f"not a Keras history: the JSON does not parse ({e})") from None
            skipped.add(cut, "the file ends inside this list (cut off while being written)", text[-200:])
            notes.append(f"the file is cut off at line {cut}: the {len(obj)} complete list(s) before it were read")
        if not isinstance(obj, dict):
            raise UnreadableFileError(path, f"not a Keras history: a JSON {type(obj).__name__}, not an object")
        lines = _key_lines(text)
        rows, lengths, others = RowBuilder(), {}, []
        records: dict[int, int] = {}
        for key, values in obj.items():
            if not isinstance(values, list):
                others.append(str(key))
                continue
            lengths[key] = len(values)
            for i, v in enumerate(values):
                x = _value(v)
                if x is None:
                    skipped.add(lines.get(key, 1), f"not a number in '{key}'", repr(v)[:200])
                    continue
                if i not in records:
                    records[i] = rows.record(line=lines.get(key, 1), epoch=float(i + 1))
                rows.add(records[i], str(key), x, key_phase(str(key)))
        if not lengths:
            raise UnreadableFileError(path, "not a Keras history: no key holds a list of per-epoch values")
        if not len(rows):
            raise UnreadableFileError(path, f"no numeric values in {len(lengths)} list(s)")
        longest = max(lengths.values())
        short = sorted(k for k, n in lengths.items() if n < longest)
        if short:
            notes.append(f"lists of different lengths: {', '.join(short)} hold fewer than the {longest} epochs "
                         f"of the longest; their values are placed at epochs 1..n")
        if others:
            notes.append(f"keys that are not per-epoch lists were left out: {', '.join(sorted(others)[:10])}")
        scalars = rows.frame()
        # one line for the whole object: keep the key's line so a value can be found in the file
        scalars["line"] = scalars["line"].astype("float64") if "line" in scalars else np.nan
        return ReadResult(source=str(path), format=self.name, scalars=scalars, skipped=skipped, notes=notes)


def _complete_lists(text: str) -> tuple[dict, int]:
    """The ``"key": [...]`` lists of a history cut off while being written, and the line where it is cut."""
    dec = json.JSONDecoder()
    out: dict = {}
    for m in re.finditer(r'"([^"]{1,200})"\s*:\s*(?=\[)', text):
        try:
            value, _ = dec.raw_decode(text, m.end())
        except ValueError:
            return out, text.count("\n", 0, m.start()) + 1
        out.setdefault(m.group(1), value)
    return out, text.count("\n") + 1


def _value(v) -> float | None:
    """A list entry: a number, NaN for ``null`` (Keras writes NaN losses so), None for anything else."""
    return math.nan if v is None else number_or_none(v)


def _key_lines(text: str) -> dict[str, int]:
    """The 1-based line where each top-level list key is written."""
    out: dict[str, int] = {}
    for m in re.finditer(r'"([^"]{1,200})"\s*:\s*\[', text):
        out.setdefault(m.group(1), text.count("\n", 0, m.start()) + 1)
    return out
