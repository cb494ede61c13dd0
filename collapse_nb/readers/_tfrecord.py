"""TFRecord framing for TensorBoard event files (no TensorFlow): CRC-32C, masking, record framing.

A TFRecord file is a sequence of records::

    uint64 length | uint32 masked_crc32c(length) | data[length] | uint32 masked_crc32c(data)

(little-endian). :func:`frame` finds the records, checks both checksums, resynchronises after
a corrupted length and stops cleanly at a record cut off by the end of the file. The record
``data`` is decoded by :mod:`._tfproto` (one record at a time) and :mod:`._tfscalars` (the
common one-scalar records, all at once).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Callable, overload

import numpy as np

_crc32c: Callable[..., int] | None       # the crc32c package's function, None without it
try:
    from crc32c import crc32c as _crc32c
except ImportError:  # pragma: no cover - exercised by monkeypatching _crc32c in the tests
    _crc32c = None

_MASK_DELTA = 0xA282EAD8
_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")


def _make_table() -> np.ndarray:
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ np.uint32(0x82F63B78), table >> 1).astype(np.uint32)
    return table


_TABLE = _make_table()
_TABLE_LIST = _TABLE.tolist()


def crc32c(data: bytes | memoryview) -> int:
    """CRC-32C of ``data``: the ``crc32c`` package, or a pure-Python table when it is missing."""
    if _crc32c is not None:
        return _crc32c(data)
    crc, table = 0xFFFFFFFF, _TABLE_LIST
    for b in bytes(data):
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


@overload
def mask(crc: int) -> int: ...
@overload
def mask(crc: np.ndarray) -> np.ndarray: ...
def mask(crc: int | np.ndarray) -> int | np.ndarray:
    """TFRecord's masked CRC: rotate right by 15 bits and add a constant (mod 2**32)."""
    if isinstance(crc, np.ndarray):
        c = crc.astype(np.uint64)
        return ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF


def crc32c_rows(rows: np.ndarray) -> np.ndarray:
    """CRC-32C of every row of a 2-D uint8 array, vectorised over rows."""
    crc = np.full(rows.shape[0], 0xFFFFFFFF, dtype=np.uint32)
    for j in range(rows.shape[1]):
        crc = _TABLE[(crc ^ rows[:, j]) & 0xFF] ^ (crc >> 8)
    return crc ^ np.uint32(0xFFFFFFFF)


def _at(u: np.ndarray, pos: np.ndarray, width: int = 0) -> np.ndarray:
    """``u[pos]`` (or the ``width`` bytes from each ``pos``). A position too close to the end is
    moved back; only fields that cannot be valid are ever read there."""
    if not width:
        return u[np.minimum(pos, len(u) - 1)]
    if len(u) < width:
        return np.zeros((len(pos), width), dtype=np.uint8)
    return np.lib.stride_tricks.sliding_window_view(u, width)[np.minimum(pos, len(u) - width)]


def _u32_at(u: np.ndarray, pos: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(_at(u, pos, 4)).view("<u4").reshape(-1)


# ------------------------------------------------------------------------------- framing
@dataclass
class Framing:
    """Where the whole, checksum-valid records are, and what was wrong elsewhere."""

    starts: np.ndarray                    #: byte offset of each good record's data
    lengths: np.ndarray                   #: its data length
    numbers: np.ndarray                   #: its 1-based position among the records found
    bad: list[tuple[int, int, str]] = field(default_factory=list)   #: (number, offset, what) of skipped records
    gaps: list[tuple[int, int]] = field(default_factory=list)       #: (offset, bytes) skipped while resynchronising
    truncated: tuple[int, int] | None = None                         #: (offset, bytes) of a cut-off last record
    found: int = 0                        #: records found, good or bad


def _walk(buf: bytes, pos: int, limit: int) -> tuple[list[int], list[int], int]:
    """Follow lengths from ``pos`` without checking them, for at most ``limit`` records or until a
    record would pass the end; return their offsets and lengths, and where the walk stopped."""
    n, unpack = len(buf), _U64.unpack_from
    offs: list[int] = []
    lens: list[int] = []
    while pos + 12 <= n and len(offs) < limit:
        (length,) = unpack(buf, pos)
        end = pos + 16 + length
        if end > n:
            break
        offs.append(pos)
        lens.append(length)
        pos = end
    return offs, lens, pos


def _length_ok(u: np.ndarray, offs: np.ndarray) -> np.ndarray:
    if not len(offs):
        return np.zeros(0, dtype=bool)
    crc = crc32c_rows(_at(u, offs, 8))
    return mask(crc) == _u32_at(u, offs + 8)


def _data_ok(buf: bytes, u: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Check every record's data CRC. Many short records of one length (scalar events) are done
    together with numpy, faster than a call per record; the rest one call each."""
    stored = _u32_at(u, starts + lengths) if len(starts) else np.zeros(0, np.uint32)
    crc = np.zeros(len(starts), dtype=np.uint64)
    sizes, inverse, counts = np.unique(lengths, return_inverse=True, return_counts=True)
    batch = (counts >= 16) & ((sizes <= 96) | (_crc32c is None))
    by_size = np.split(np.argsort(inverse, kind="stable"), np.cumsum(counts)[:-1])
    for size, idx, together in zip(sizes.tolist(), by_size, batch.tolist()):
        if together:
            crc[idx] = crc32c_rows(_at(u, starts[idx], size))
        else:
            view = memoryview(buf)
            crc[idx] = [crc32c(view[s:s + size]) for s in starts[idx].tolist()]
    return mask(crc) == stored


def _resync(buf: bytes, u: np.ndarray, start: int) -> int | None:
    """The next offset >= ``start`` where a record header (length and its CRC) is valid and, if the
    record fits in the file, its data CRC too; ``None`` if there is none."""
    n, chunk = len(buf), 4096
    while start + 12 <= n:
        stop = min(start + chunk, n - 11)
        win = np.lib.stride_tricks.sliding_window_view(u[start:stop + 11], 12)
        cand = np.flatnonzero(mask(crc32c_rows(win[:, :8])) == (
            win[:, 8].astype(np.uint32) | (win[:, 9].astype(np.uint32) << 8) |
            (win[:, 10].astype(np.uint32) << 16) | (win[:, 11].astype(np.uint32) << 24)))
        for c in cand.tolist():
            p = start + c
            (length,) = _U64.unpack_from(buf, p)
            if p + 16 + length > n or mask(crc32c(memoryview(buf)[p + 12:p + 12 + length])) == \
                    _U32.unpack_from(buf, p + 12 + length)[0]:
                return p
        start, chunk = stop, min(chunk * 4, 1 << 22)
    return None


def frame(buf: bytes, jit=None) -> Framing:
    """Split ``buf`` into records; see :class:`Framing`. Never raises on bad data. ``jit``: the
    compiled kernels (:mod:`._tb_fast`) to use instead of the numpy code, the same framing."""
    u = np.frombuffer(buf, dtype=np.uint8)
    n = len(buf)
    offs_all: list[np.ndarray] = []
    lens_all: list[np.ndarray] = []
    nums_all: list[np.ndarray] = []
    out = Framing(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))
    pos = 0
    limit = 1 << 12       # walk a little, check, walk more: garbage is never followed far
    if jit is not None:
        limit = n         # the kernel checks each header as it walks, and stops at the first wrong one
    data_all: list[np.ndarray] = []       # the data checksums, where the kernel checked them as it walked
    while pos < n:
        if jit is None:
            walked_offs, walked_lens, end = _walk(buf, pos, limit)
            o, ln = np.asarray(walked_offs, dtype=np.int64), np.asarray(walked_lens, dtype=np.int64)
            ok = _length_ok(u, o)
        else:
            o, ln, ok, data_ok, end = jit.walk(u, pos, limit)
        k = int(np.argmin(ok)) if len(ok) and not ok.all() else len(o)
        offs_all.append(o[:k])
        lens_all.append(ln[:k])
        if jit is not None:
            data_all.append(data_ok[:k])
        nums_all.append(out.found + 1 + np.arange(k))
        out.found += k
        if k < len(o):
            bad_at = int(o[k])
        elif k == limit:
            pos, limit = end, min(limit * 4, 1 << 20)
            continue
        elif end + 12 <= n and _length_ok(u, np.array([end], dtype=np.int64))[0]:
            out.truncated = (end, n - end)         # a valid header whose record runs past the end
            break
        elif end + 12 > n:
            if end < n:
                out.truncated = (end, n - end)     # not even a whole header left
            break
        else:
            bad_at = end
        out.found += 1
        out.bad.append((out.found, bad_at, "length checksum wrong"))
        nxt = _resync(buf, u, bad_at + 1)
        out.gaps.append((bad_at, (n if nxt is None else nxt) - bad_at))
        if nxt is None:
            break
        pos = nxt
    offs, lens, nums = _cat(offs_all, np.int64), _cat(lens_all, np.int64), _cat(nums_all, np.int64)
    good = _data_ok(buf, u, offs + 12, lens) if jit is None else _cat(data_all, bool)
    for i in np.flatnonzero(~good).tolist():
        out.bad.append((int(nums[i]), int(offs[i]), "data checksum wrong"))
    out.bad.sort()
    if good.all():                   # (no copies of a million records where all are good)
        out.starts, out.lengths, out.numbers = offs + 12, lens, nums
    else:
        out.starts, out.lengths, out.numbers = offs[good] + 12, lens[good], nums[good]
    return out


def _cat(parts: list[np.ndarray], dtype) -> np.ndarray:
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts) if parts else np.zeros(0, dtype)
