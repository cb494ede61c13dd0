"""A minimal protobuf wire-format decoder for the TensorBoard messages a run reader needs.

Reads Event, Summary, Summary.Value, SummaryMetadata, HistogramProto, TensorProto and the hparams
plugin's session start straight from the wire format of one record's ``data`` (as located by
:func:`._tfrecord.frame`), without TensorFlow or protobuf.
"""
from __future__ import annotations

import struct
from typing import Any, Iterator, NamedTuple

import numpy as np

_F64 = struct.Struct("<d")
_F32 = struct.Struct("<f")


class DecodeError(ValueError):
    """Bytes that are not the protobuf message expected."""


def read_varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """Decode the varint at ``pos``; return it (as an unsigned int) and the position after it."""
    result = shift = 0
    while pos < end:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            break
    raise DecodeError(f"bad varint at byte {pos}")


def fields(buf: bytes, pos: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """Yield ``(field, wire_type, a, b)``: a varint's value in ``a``; for fixed64/fixed32 and
    length-delimited fields the byte span ``[a, b)``."""
    while pos < end:
        key, pos = read_varint(buf, pos, end)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, pos = read_varint(buf, pos, end)
            yield num, wt, v, pos
            continue
        if wt == 2:
            size, pos = read_varint(buf, pos, end)
        elif wt in (1, 5):
            size = 8 if wt == 1 else 4
        else:
            raise DecodeError(f"unsupported wire type {wt} at byte {pos}")
        if pos + size > end or num == 0:
            raise DecodeError(f"field {num} at byte {pos} runs past the end of its message")
        yield num, wt, pos, pos + size
        pos += size


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


class Event(NamedTuple):
    wall_time: float
    step: int
    file_version: str | None
    summary: tuple[int, int] | None
    session_status: int       #: SessionLog status: 1 START, 2 STOP, 3 CHECKPOINT; 0 if none
    other: tuple[str, ...]    #: what else the Event holds (graph, run metadata, ...)


_EVENT_OTHER = {4: "graph", 6: "log message", 8: "run metadata", 9: "meta graph"}


def decode_event(buf: bytes, s: int, e: int) -> Event:
    wall, step, version, summary, status, other = 0.0, 0, None, None, 0, []
    for num, wt, a, b in fields(buf, s, e):
        if num == 1 and wt == 1:
            wall = _F64.unpack_from(buf, a)[0]
        elif num == 2 and wt == 0:
            step = _signed(a)
        elif num == 3 and wt == 2:
            version = buf[a:b].decode("utf-8", "replace")
        elif num == 5 and wt == 2:
            summary = (a, b)
        elif num == 7 and wt == 2:
            status = next((v for n_, w, v, _ in fields(buf, a, b) if n_ == 1 and w == 0), 0)
        elif num in _EVENT_OTHER:
            other.append(_EVENT_OTHER[num])
    return Event(wall, step, version, summary, status, tuple(other))


class Value(NamedTuple):
    tag: str
    kind: str                  #: simple, histo, tensor, image, audio, old_histogram or none
    span: tuple[int, int]      #: the payload's bytes (for ``simple``: the float32)
    plugin: str | None         #: SummaryMetadata.plugin_data.plugin_name, when written
    content: tuple[int, int] | None  #: plugin_data.content


_VALUE_KIND = {(2, 5): "simple", (3, 2): "old_histogram", (4, 2): "image", (5, 2): "histo", (6, 2): "audio",
               (8, 2): "tensor"}


def summary_values(buf: bytes, s: int, e: int) -> Iterator[Value]:
    """The Summary.Value messages of a Summary."""
    for num, wt, a, b in fields(buf, s, e):
        if num != 1 or wt != 2:
            continue
        tag, kind, span, plugin, content = "", "none", (a, a), None, None
        for n2, w2, a2, b2 in fields(buf, a, b):
            if n2 == 1 and w2 == 2:
                tag = buf[a2:b2].decode("utf-8", "replace")
            elif n2 == 7 and w2 == 2 and not tag:
                tag = buf[a2:b2].decode("utf-8", "replace")        # node_name, the pre-tag name
            elif n2 == 9 and w2 == 2:
                for n3, w3, a3, b3 in fields(buf, a2, b2):
                    if n3 == 1 and w3 == 2:
                        for n4, w4, a4, b4 in fields(buf, a3, b3):
                            if n4 == 1 and w4 == 2:
                                plugin = buf[a4:b4].decode("utf-8", "replace")
                            elif n4 == 2 and w4 == 2:
                                content = (a4, b4)
            elif (n2, w2) in _VALUE_KIND:
                kind, span = _VALUE_KIND[n2, w2], (a2, b2)
        yield Value(tag, kind, span, plugin, content)


def _packed(buf: bytes, wt: int, a: int, b: int, fmt: str, out: list) -> None:
    """Append a repeated numeric field's values to ``out``: packed (wire type 2) or one at a time."""
    if wt == 2 and fmt != "varint":
        out.extend(np.frombuffer(buf, fmt, (b - a) // np.dtype(fmt).itemsize, a).tolist())
    elif wt == 2:
        while a < b:
            v, a = read_varint(buf, a, b)
            out.append(v)
    elif wt == 1:
        out.append(_F64.unpack_from(buf, a)[0])
    elif wt == 5:
        out.append(_F32.unpack_from(buf, a)[0])
    else:
        out.append(a)


class Histogram(NamedTuple):
    min: float
    max: float
    num: float
    sum: float
    sum_squares: float
    limits: np.ndarray     #: right edge of each bucket (the last is often DBL_MAX)
    counts: np.ndarray


def decode_histogram(buf: bytes, s: int, e: int) -> Histogram:
    scal = [0.0] * 5
    limits: list[float] = []
    counts: list[float] = []
    for num, wt, a, b in fields(buf, s, e):
        if 1 <= num <= 5 and wt == 1:
            scal[num - 1] = _F64.unpack_from(buf, a)[0]
        elif num in (6, 7):
            _packed(buf, wt, a, b, "<f8", limits if num == 6 else counts)
    if len(limits) != len(counts):
        raise DecodeError(f"histogram has {len(limits)} bucket limits but {len(counts)} counts")
    lo, hi, n_values, total, squares = scal
    return Histogram(lo, hi, n_values, total, squares, np.asarray(limits, dtype=np.float64),
                     np.asarray(counts, dtype=np.float64))


#: TensorFlow DataType -> numpy dtype of its tensor_content, and the TensorProto field of its values.
_DTYPES = {1: ("<f4", 5), 2: ("<f8", 6), 3: ("<i4", 7), 4: ("u1", 7), 5: ("<i2", 7), 6: ("i1", 7),
           9: ("<i8", 10), 10: ("?", 11), 14: ("<u2", 13), 17: ("<u2", 7), 19: ("<f2", 13),
           22: ("<u4", 16), 23: ("<u8", 17)}


def decode_tensor(buf: bytes, s: int, e: int) -> np.ndarray:
    """A numeric TensorProto as a float64 array of its shape (bfloat16 and half included)."""
    dtype, content = 0, None
    shape: list[int] = []
    vals: list[Any] = []             # the values field: ints (varints) or floats, by the data type
    for num, wt, a, b in fields(buf, s, e):
        if num == 1 and wt == 0:
            dtype = a
        elif num == 2 and wt == 2:
            for n2, w2, a2, b2 in fields(buf, a, b):
                if n2 == 2 and w2 == 2:
                    shape.append(next((_signed(v) for n3, w3, v, _ in fields(buf, a2, b2)
                                       if n3 == 1 and w3 == 0), 0))
        elif num == 4 and wt == 2:
            content = (a, b)
        elif dtype in _DTYPES and num == _DTYPES[dtype][1]:
            _packed(buf, wt, a, b, _DTYPES[dtype][0] if num in (5, 6) else "varint", vals)
    if dtype not in _DTYPES:
        raise DecodeError(f"tensor of data type {dtype} is not numeric")
    np_type, _ = _DTYPES[dtype]
    size = int(np.prod(shape)) if shape else 1
    if content is not None:
        raw = np.frombuffer(buf[content[0]:content[1]], dtype=np_type)
    elif dtype in (14, 19):   # half_val holds the 16-bit patterns
        raw = np.asarray(vals, dtype=np.uint16).view(np_type)
    elif np_type in ("<f4", "<f8", "<u8"):
        raw = np.asarray(vals, dtype=np_type)
    else:                     # varints: negative ints are 64-bit two's complement
        raw = np.asarray([_signed(v) for v in vals], dtype=np.int64)
    if dtype == 14:             # bfloat16: the high half of a float32
        raw = (raw.astype(np.uint32) << 16).view(np.float32)
    arr = raw.astype(np.float64)
    if arr.size < size:         # TensorProto repeats the last value to fill the shape
        arr = np.concatenate([arr, np.full(size - arr.size, arr[-1] if arr.size else 0.0)])
    if arr.size != size:
        raise DecodeError(f"tensor has {arr.size} values for shape {shape}")
    return arr.reshape(shape)


def decode_hparams_start(buf: bytes, s: int, e: int) -> dict[str, object] | None:
    """The hparams plugin's ``session_start_info.hparams`` map, or ``None`` if the content is
    another of its messages (experiment, session end)."""
    for num, wt, a, b in fields(buf, s, e):
        if num != 3 or wt != 2:
            continue
        out: dict[str, object] = {}
        for n2, w2, a2, b2 in fields(buf, a, b):
            if n2 != 1 or w2 != 2:
                continue
            key, value = "", None
            for n3, w3, a3, b3 in fields(buf, a2, b2):
                if n3 == 1 and w3 == 2:
                    key = buf[a3:b3].decode("utf-8", "replace")
                elif n3 == 2 and w3 == 2:
                    for n4, w4, a4, b4 in fields(buf, a3, b3):
                        if n4 == 2 and w4 == 1:
                            value = _F64.unpack_from(buf, a4)[0]
                            value = int(value) if value.is_integer() and abs(value) < 2 ** 53 else value
                        elif n4 == 3 and w4 == 2:
                            value = buf[a4:b4].decode("utf-8", "replace")
                        elif n4 == 4 and w4 == 0:
                            value = bool(a4)
            if key:
                out[key] = value
        return out
    return None

