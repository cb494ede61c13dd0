"""Weights & Biases run folders (``wandb/run-<date>-<id>/``, offline or synced), read without wandb.

::

    run-20240603_160321-ldm4qyxq/run-ldm4qyxq.wandb     the run's records (history, config, summary, exit)
    run-20240603_160321-ldm4qyxq/files/config.yaml      {key: {desc: ..., value: ...}}
    run-20240603_160321-ldm4qyxq/files/wandb-summary.json   the last value of each key (not a curve point)
    run-20240603_160321-ldm4qyxq/files/output.log       the console (read as a text log)
    run-20240603_160321-ldm4qyxq/logs/debug*.log        wandb's own logs (not the run's: not read)

The ``.wandb`` file is a LevelDB-style log (the ``:W&B`` header, 32 KiB blocks, records with a CRC-32,
a length and a FULL/FIRST/MIDDLE/LAST type) of protobuf ``Record`` messages (``wandb_internal.proto``).
This module decodes the few messages it needs with a small protobuf wire-format reader (no wandb,
no protobuf package; wandb 0.31 no longer ships a reader for these files):

- ``history`` (field 2): one row per logged key at the record's step: the trainer's own
  ``train/global_step`` / ``global_step`` when logged, else wandb's ``_step``; a logged ``epoch`` is the
  row's epoch; ``_timestamp`` is the wall time; other keys starting with ``_`` are bookkeeping; values
  that are not numbers (media, histograms, tables) are counted in the notes;
- ``config`` (5) and ``run`` (17: run id, name, project, and its config) into the configuration;
- ``exit`` (18): the exit code. A file with no exit record belongs to a run that did not finish
  (killed, crashed without cleanup, or still running): said in the notes and as
  ``wandb.exit_code = None``;
- ``summary`` (3): last values, never curve points (not read as rows).

A record with a bad checksum is skipped and counted; a file cut mid-record keeps every whole record.
"""
from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from ..errors import UnreadableFileError
from ._json_common import number_or_none
from .base import ReadResult, Reader, SkipLog, empty_scalars, register

MAGIC = b":W&B\xe1\xbe"
#: History keys that are the row's position, not metrics: the trainer's step (HF, Lightning), its epoch.
_STEP_KEYS = ("train/global_step", "trainer/global_step", "global_step")
_EPOCH_KEYS = ("epoch", "train/epoch", "trainer/epoch")
HEADER = 7
BLOCK = 32768
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


# ---------------------------------------------------------------- the record log

def records(data: bytes, skipped: SkipLog) -> Iterator[tuple[int, bytes]]:
    """``(offset, payload)`` of each whole record of a ``.wandb`` file's bytes."""
    pos, start, n = HEADER, 0, len(data)
    parts: list[bytes] = []
    while pos + 7 <= n:
        room = BLOCK - pos % BLOCK
        if room < 7:                                   # the block's tail is padding
            pos += room
            continue
        crc = int.from_bytes(data[pos:pos + 4], "little")
        length = int.from_bytes(data[pos + 4:pos + 6], "little")
        kind = data[pos + 6]
        body = data[pos + 7:pos + 7 + length]
        if kind == 0 and length == 0:                  # zero padding at the end of a block
            pos += room
            continue
        if len(body) < length:
            skipped.add(pos, "record cut off at the end of the file")
            return
        if zlib.crc32(body, zlib.crc32(bytes([kind]))) & 0xFFFFFFFF != crc:
            skipped.add(pos, "bad checksum")
            parts = []
            pos += 7 + length
            continue
        pos += 7 + length
        if kind == FULL:
            yield pos - 7 - length, body
        elif kind == FIRST:
            parts, start = [body], pos - 7 - length
        elif kind == MIDDLE and parts:
            parts.append(body)
        elif kind == LAST and parts:
            parts.append(body)
            yield start, b"".join(parts)
            parts = []
        else:
            skipped.add(pos, f"record of unknown type {kind}")


# ---------------------------------------------------------------- protobuf wire format

def _varint(b: bytes, i: int) -> tuple[int, int]:
    out = shift = 0
    while True:
        if i >= len(b):
            raise ValueError("varint runs past the end")
        c = b[i]
        out |= (c & 0x7F) << shift
        i += 1
        if c < 0x80:
            return out, i
        shift += 7
        if shift > 70:
            raise ValueError("varint too long")


def fields(b: bytes) -> Iterator[tuple[int, int, Any]]:
    """``(field number, wire type, value)`` of one message: varints as int, length-delimited as bytes (the wire
    type says which, so the value is typed ``Any``)."""
    i, n = 0, len(b)
    v: int | bytes
    while i < n:
        key, i = _varint(b, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(b, i)
        elif wt == 2:
            ln, i = _varint(b, i)
            if i + ln > n:
                raise ValueError("field runs past the end")
            v, i = b[i:i + ln], i + ln
        elif wt == 1:
            v, i = b[i:i + 8], i + 8
        elif wt == 5:
            v, i = b[i:i + 4], i + 4
        else:
            raise ValueError(f"wire type {wt}")
        yield num, wt, v


def _items(msg: bytes, repeated_field: int) -> Iterator[tuple[str, object]]:
    """``(key, decoded value_json)`` of HistoryItem / ConfigItem / SummaryItem entries (key 1, nested 2, json 16)."""
    for num, wt, v in fields(msg):
        if num != repeated_field or wt != 2:
            continue
        key, nested, raw = "", [], None
        for n2, w2, v2 in fields(v):
            if n2 == 1 and w2 == 2:
                key = v2.decode("utf-8", "replace")
            elif n2 == 2 and w2 == 2:
                nested.append(v2.decode("utf-8", "replace"))
            elif n2 == 16 and w2 == 2:
                raw = v2
        name = "/".join(nested) if nested else key
        try:
            value = json.loads(raw) if raw is not None else None
        except (ValueError, RecursionError):
            value = None
        yield name, value


def _number(v: object) -> float | None:
    """A history value as a float (``"nan"``/``"inf"`` text included), None for text, media, tables."""
    return number_or_none(v, numeric_text=False)


# ---------------------------------------------------------------- readers

@register
class WandbRecordsReader(Reader):
    name = "wandb"
    description = "Weights & Biases run records: run-<id>.wandb (history, config, exit), read without wandb"

    def sniff(self, head: bytes, path: Path) -> float:
        return 0.99 if head.startswith(MAGIC) else 0.0

    def read(self, path: Path) -> ReadResult:
        path = Path(path)
        data = path.read_bytes()
        if not data.startswith(MAGIC):
            raise UnreadableFileError(path, "not a W&B .wandb file (no ':W&B' header)")
        skipped = SkipLog()
        names, values, steps, walls, lines, epochs = [], [], [], [], [], []
        config: dict = {}
        notes: list[str] = []
        not_numbers: dict[str, int] = {}
        exit_code, n_history = None, 0
        for offset, rec in records(data, skipped):
            try:
                for num, wt, v in fields(rec):
                    if wt != 2:
                        continue
                    if num == 2:                               # history
                        n_history += 1
                        row = dict(_items(v, 1))
                        step = _number(row.get("_step"))
                        for n2, w2, v2 in fields(v):
                            if n2 == 2 and w2 == 2:
                                for n3, w3, v3 in fields(v2):
                                    if n3 == 1 and w3 == 0:
                                        step = float(v3)
                        wall = _number(row.get("_timestamp"))
                        for key in _STEP_KEYS:              # the trainer's own step beats wandb's log counter
                            if (x := _number(row.get(key))) is not None:
                                step = x
                                break
                        epoch = next((x for key in _EPOCH_KEYS if (x := _number(row.get(key))) is not None),
                                     None)
                        for key, val in row.items():
                            if key.startswith("_") or key in _EPOCH_KEYS or key in _STEP_KEYS:
                                continue
                            x = _number(val)
                            if x is None:
                                not_numbers[key] = not_numbers.get(key, 0) + 1
                                continue
                            names.append(key)
                            values.append(x)
                            steps.append(step if step is not None else np.nan)
                            epochs.append(epoch if epoch is not None else np.nan)
                            walls.append(wall if wall is not None else np.nan)
                            lines.append(offset)
                    elif num == 5:                             # config
                        for key, val in _items(v, 1):
                            if key != "_wandb":
                                config[key] = val
                    elif num == 17:                            # run (its config too: field 4)
                        for n2, w2, v2 in fields(v):
                            if n2 == 4 and w2 == 2:
                                for key, val in _items(v2, 1):
                                    if key != "_wandb":
                                        config.setdefault(key, val)
                            elif w2 == 2 and n2 in (1, 3, 8):
                                config[{1: "wandb.run_id", 3: "wandb.project", 8: "wandb.run_name"}[n2]] = \
                                    v2.decode("utf-8", "replace")
                    elif num == 18:                            # exit
                        exit_code = 0
                        for n2, w2, v2 in fields(v):
                            if n2 == 1 and w2 == 0:
                                exit_code = v2 - (1 << 64) if v2 >= 1 << 63 else v2
            except ValueError as exc:
                skipped.add(offset, f"record not decodable ({exc})")
        config["wandb.exit_code"] = exit_code
        if exit_code is None:
            notes.append("no exit record: the run did not finish (killed, crashed without cleanup, or still running)")
        elif exit_code != 0:
            notes.append(f"the run exited with code {exit_code}")
        if not_numbers:
            notes.append("values that are not numbers (media, histograms, tables) not kept: "
                         + ", ".join(f"{k} ({n})" for k, n in sorted(not_numbers.items())[:10]))
        if not names:
            raise UnreadableFileError(path, f"no numeric history in {n_history} history record(s)"
                                            + (f" ({skipped.describe()})" if skipped.count else ""))
        df = pd.DataFrame({"raw_name": names, "value": np.array(values, dtype="float64"),
                           "step": np.array(steps, dtype="float64"), "wall_time": np.array(walls, dtype="float64"),
                           "line": np.array(lines, dtype="int64")})
        if not np.isnan(np.array(epochs, dtype="float64")).all():
            df["epoch"] = np.array(epochs, dtype="float64")
        notes.append(f"{n_history} history record(s); 'line' is the record's byte offset in the file")
        return ReadResult(source=str(path), format=self.name, scalars=df, config=config, skipped=skipped, notes=notes)


def _in_wandb_run(path: Path) -> bool:
    """A file of a W&B run folder: under ``files/`` or ``logs/`` of a folder holding a ``.wandb`` file or
    ``files/wandb-metadata.json``."""
    run = path.parent.parent
    return path.parent.name in ("files", "logs") and (
        any(run.glob("*.wandb")) or (run / "files" / "wandb-metadata.json").is_file())


@register
class WandbConfigReader(Reader):
    name = "wandb-config"
    description = "W&B run files/config.yaml ({key: {desc, value}}) and files/wandb-summary.json (last values)"
    is_config = True

    def sniff(self, head: bytes, path: Path) -> float:
        path = Path(path)
        if path.name not in ("config.yaml", "wandb-summary.json") or not _in_wandb_run(path):
            return 0.0
        return 0.97

    def read(self, path: Path) -> ReadResult:
        from .config_file import load_yaml

        path = Path(path)
        text = path.read_bytes().decode("utf-8", "replace")
        if path.name == "wandb-summary.json":
            try:
                doc = json.loads(text)
            except (ValueError, RecursionError) as exc:
                raise UnreadableFileError(path, f"not JSON ({exc})") from None
            summary = {f"wandb.summary.{k}": v for k, v in (doc.items() if isinstance(doc, dict) else [])
                       if isinstance(v, (int, float, str, bool)) or v is None}
            return ReadResult(source=str(path), format=self.name, scalars=empty_scalars(), config=summary,
                              notes=["W&B's summary: the last value of each key, not a point on a curve"])
        doc, _, _ = load_yaml(text)
        if not isinstance(doc, dict):
            raise UnreadableFileError(path, "a W&B config.yaml that is not a mapping")
        config = {}
        for k, v in doc.items():
            if str(k) == "_wandb" or str(k) == "wandb_version":
                continue
            config[str(k)] = v.get("value") if isinstance(v, dict) and "value" in v else v
        return ReadResult(source=str(path), format=self.name, scalars=empty_scalars(), config=config)


@register
class WandbDebugLogReader(Reader):
    name = "wandb-debug-log"
    description = "W&B's own logs/debug*.log: wandb's internals, not the run's output (never read as metrics)"

    def sniff(self, head: bytes, path: Path) -> float:
        path = Path(path)
        return 0.97 if path.parent.name == "logs" and path.name.startswith("debug") and _in_wandb_run(path) else 0.0

    def read(self, path: Path) -> ReadResult:
        text = Path(path).read_bytes()[-64 * 1024:].decode("utf-8", "replace")
        last = next((ln for ln in reversed(text.splitlines()) if ln.strip()), "")
        raise UnreadableFileError(path, "W&B's own debug log (wandb's internals, not the run's output): not read"
                                  + (f"; it ends: {last.strip()[:200]}" if last else ""))
