"""Compiled (numba) kernels of the TensorBoard reader: record framing, CRC-32C, one-scalar decoding.

The same reading as the numpy code they stand in for, one pass over the bytes each:

- :func:`walk`: follow the record lengths from an offset, checking each header's length checksum
  and each record's data checksum (what :func:`._tfrecord._walk`, :func:`._tfrecord._length_ok`
  and :func:`._tfrecord._data_ok` do);
- :func:`fast_scalars`: the one-scalar Event records (:func:`._tfscalars.fast_scalars`: the same
  records taken, the same values), tags numbered in order of first appearance through a hash table
  that compares bytes, so a hash collision can never merge two tags.

numba is optional: :data:`AVAILABLE` says whether it could be imported; ``tb_events`` looks for
numba without importing it and uses the numpy code without it (or for small files). Compiled code
is cached on disk by numba: the first use compiles for a few seconds, later processes load it.
"""
from __future__ import annotations

import numpy as np

from ._tfrecord import _make_table
from ._tfscalars import FastScalars

try:                                   # optional dependency
    import numba
    AVAILABLE = True
except Exception:                      # pragma: no cover - exercised where numba is missing
    numba = None                       # type: ignore[assignment]  # (a module or None: AVAILABLE says which)
    AVAILABLE = False


def njit(f):
    """``numba.njit(cache=True, nogil=True)`` (without the disk cache where numba finds no place for
    it); without numba, the plain Python function (callable, slow: only for tests)."""
    if not AVAILABLE:
        return f
    try:
        return numba.njit(cache=True, nogil=True)(f)
    except RuntimeError:               # no cache locator (a read-only install and no writable cache dir)
        return numba.njit(nogil=True)(f)


def _tables() -> np.ndarray:
    """Slicing-by-8 tables of CRC-32C (row 0 is the byte-at-a-time table)."""
    t = np.zeros((8, 256), dtype=np.int64)
    t[0] = _make_table().astype(np.int64)
    for k in range(1, 8):
        t[k] = (t[k - 1] >> 8) ^ t[0][t[k - 1] & 0xFF]
    return t


_T = _tables()
_MASK_DELTA = 0xA282EAD8
_SCALARS = np.frombuffer(b"\x0a\x07scalars", dtype=np.uint8).copy()


@njit
def _crc(u, s, e, t):
    """CRC-32C of ``u[s:e]`` (as an int in [0, 2**32))."""
    crc = 0xFFFFFFFF
    i = s
    while i + 8 <= e:
        lo = crc ^ (np.int64(u[i]) | (np.int64(u[i + 1]) << 8) | (np.int64(u[i + 2]) << 16) |
                    (np.int64(u[i + 3]) << 24))
        crc = (t[7, lo & 0xFF] ^ t[6, (lo >> 8) & 0xFF] ^ t[5, (lo >> 16) & 0xFF] ^ t[4, lo >> 24] ^
               t[3, u[i + 4]] ^ t[2, u[i + 5]] ^ t[1, u[i + 6]] ^ t[0, u[i + 7]])
        i += 8
    while i < e:
        crc = t[0, (crc ^ np.int64(u[i])) & 0xFF] ^ (crc >> 8)
        i += 1
    return crc ^ 0xFFFFFFFF


@njit
def _masked(crc):
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF


@njit
def _u32(u, p):
    return np.int64(u[p]) | (np.int64(u[p + 1]) << 8) | (np.int64(u[p + 2]) << 16) | (np.int64(u[p + 3]) << 24)


@njit
def _walk_kernel(u, pos, limit, t, fill, off, ln, lok, dok):
    """Follow lengths from ``pos`` for at most ``limit`` records, or until a record would pass the
    end, or up to and including the first record whose length checksum is wrong; returns (records,
    where the walk stopped). With ``fill``, also write each record's offset, length, whether its
    length checksum is right and whether its data checksum is (only checked where the length's is).
    Without, no checksum is checked: the count is an upper bound, to size the arrays to fill."""
    n = len(u)
    k = 0
    while pos + 12 <= n and k < limit:
        length = np.uint64(0)
        for j in range(8):
            length |= np.uint64(u[pos + j]) << np.uint64(8 * j)
        if length > np.uint64(n):
            break
        end = pos + 16 + np.int64(length)
        if end > n:
            break
        ok = True
        if fill:
            ok = _masked(_crc(u, pos, pos + 8, t)) == _u32(u, pos + 8)
            off[k], ln[k], lok[k] = pos, np.int64(length), ok
            dok[k] = ok and _masked(_crc(u, pos + 12, end - 4, t)) == _u32(u, end - 4)
        k += 1
        pos = end
        if not ok:
            break
    return k, pos


def walk(u: np.ndarray, pos: int, limit: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """``(offsets, lengths, length_ok, data_ok, end)`` of the records from ``pos``: see :func:`_walk_kernel`.
    Where the walk stops at a wrong length checksum, that record is the last one (``length_ok`` False)."""
    i0, b0 = np.zeros(0, np.int64), np.zeros(0, np.bool_)
    most, _ = _walk_kernel(u, pos, limit, _T, False, i0, i0, b0, b0)      # count, then fill
    off, ln = np.empty(most, np.int64), np.empty(most, np.int64)
    lok, dok = np.empty(most, np.bool_), np.empty(most, np.bool_)
    k, end = _walk_kernel(u, pos, most, _T, True, off, ln, lok, dok)
    if k < most:
        off, ln, lok, dok = off[:k], ln[:k], lok[:k], dok[:k]
    return off, ln, lok, dok, end


# ------------------------------------------------------------------------------- one-scalar records
@njit
def _varint(u, p, width, e):
    """The varint at ``p`` of at most ``width`` bytes, all before ``e``: (value, position after, ok).
    The value wraps at 64 bits, as the numpy decoder's does."""
    v = np.int64(0)
    for j in range(width):
        if p + j >= e:
            return v, p, False
        b = np.int64(u[p + j])
        v |= (b & 0x7F) << (7 * j)
        if b < 0x80:
            return v, p + j + 1, True
    return v, p, False


@njit
def _hash(u, s, n):
    """A 64-bit hash of ``u[s:s+n]``, 8 bytes a step (equal bytes, equal hashes; the table compares bytes)."""
    h = np.uint64(0xCBF29CE484222325) ^ np.uint64(n)
    i = s
    while i < s + n:
        w = np.uint64(0)
        for j in range(min(8, s + n - i)):
            w |= np.uint64(u[i + j]) << np.uint64(8 * j)
        h = (h ^ w) * np.uint64(0x100000001B3)
        h ^= h >> np.uint64(29)
        i += 8
    return h


@njit
def _scalars_kernel(u, starts, lengths, name, i, k, ntags, slots, tag_s, tag_n, hashes,
                    idx, wall, step, value, code, bare):
    """Decode the one-scalar records (the shapes of :func:`._tfscalars.fast_scalars`) from record
    ``i`` on into row ``k`` on of the output arrays, numbering tags through the hash table ``slots``
    (tag ``c`` is ``u[tag_s[c]:tag_s[c] + tag_n[c]]``). Returns (next record, rows, tags): before the
    end when the table is half full, to be grown (:func:`_rehash`) and the call resumed."""
    scratch = np.zeros(8, np.uint8)
    f64 = scratch.view(np.float64)
    f32 = scratch[:4].view(np.float32)
    cap = len(slots)
    while i < len(starts):
        s = starts[i]
        e = s + lengths[i]
        i += 1
        if lengths[i - 1] < 16 or u[s] != 0x09:
            continue
        p = s + 9
        st = np.int64(0)
        if u[p] == 0x10:
            st, p, ok = _varint(u, p + 1, 10, e)
            if not ok:
                continue
        if p >= e or u[p] != 0x2A:                    # Event.summary
            continue
        ln, p, ok = _varint(u, p + 1, 4, e)
        if not ok or p + ln != e or p >= e or u[p] != 0x0A:     # its one Summary.value
            continue
        ln, p, ok = _varint(u, p + 1, 4, e)
        if not ok or p + ln != e or p >= e or u[p] != 0x0A:     # Value.tag
            continue
        tl, ts, ok = _varint(u, p + 1, 2, e)
        p = ts + tl
        if not ok or p >= e:
            continue
        is_bare = False
        if u[p] == 0x15:                              # simple_value
            if p + 5 != e:
                continue
            for j in range(4):
                scratch[j] = u[p + 1 + j]
            val = np.float64(f32[0])
        elif u[p] == 0x42:                            # a scalar tensor
            ln, q, ok = _varint(u, p + 1, 3, e)
            tend = q + ln
            if not ok or tend > e or q + 1 >= tend or u[q] != 0x08 or (u[q + 1] != 1 and u[q + 1] != 2):
                continue
            dt = u[q + 1]
            w = 4 if dt == 1 else 8
            q += 2
            if q + 1 >= tend:
                continue
            if u[q] == 0x12 and u[q + 1] == 0:        # an empty shape
                q += 2
                if q + 1 >= tend:
                    continue
            key, ln1 = u[q], u[q + 1]
            packed = ((key == 0x2A and dt == 1) or (key == 0x32 and dt == 2) or key == 0x22) and ln1 == w
            unpacked = (key == 0x2D and dt == 1) or (key == 0x31 and dt == 2)
            if not (packed or unpacked):
                continue
            vpos = q + 2 if packed else q + 1
            if vpos + w != tend:
                continue
            for j in range(w):
                scratch[j] = u[vpos + j]
            val = np.float64(f32[0]) if dt == 1 else f64[0]
            if tend < e:                              # metadata naming the scalars plugin
                if u[tend] != 0x4A:
                    continue
                ln, ms, ok = _varint(u, tend + 1, 3, e)
                if not ok or ms + ln != e or ms + 11 > e or u[ms] != 0x0A:
                    continue
                pdl = np.int64(u[ms + 1])
                if pdl >= 0x80 or pdl < 9 or ms + 2 + pdl > e:
                    continue
                for j in range(9):
                    if u[ms + 2 + j] != name[j]:
                        ok = False
                if not ok:
                    continue
            else:
                is_bare = True
        else:
            continue
        for j in range(8):
            scratch[j] = u[s + 1 + j]
        h = _hash(u, ts, tl)
        slot = np.int64(h & np.uint64(cap - 1))
        c = -1
        while slots[slot] >= 0:
            c2 = slots[slot]
            if hashes[c2] == h and tag_n[c2] == tl:
                same = True
                a = tag_s[c2]
                for j in range(tl):
                    if u[a + j] != u[ts + j]:
                        same = False
                        break
                if same:
                    c = c2
                    break
            slot = (slot + 1) & (cap - 1)
        if c < 0:
            c = ntags
            tag_s[c], tag_n[c], hashes[c] = ts, tl, h
            slots[slot] = c
            ntags += 1
        idx[k], wall[k], step[k], value[k], code[k], bare[k] = i - 1, f64[0], st, val, c, is_bare
        k += 1
        if ntags * 2 > cap:
            break
    return i, k, ntags


@njit
def _rehash(slots, hashes, ntags):
    cap = len(slots)
    for c in range(ntags):
        sl = np.int64(hashes[c] & np.uint64(cap - 1))
        while slots[sl] >= 0:
            sl = (sl + 1) & (cap - 1)
        slots[sl] = c


def fast_scalars(buf: bytes, starts: np.ndarray, lengths: np.ndarray) -> FastScalars:
    """:func:`._tfscalars.fast_scalars`, compiled: the same records, values and tags (numbered in
    order of first appearance)."""
    u = np.frombuffer(buf, dtype=np.uint8)
    m = len(starts)
    starts, lengths = np.ascontiguousarray(starts, np.int64), np.ascontiguousarray(lengths, np.int64)
    idx, step, code = np.empty(m, np.int64), np.empty(m, np.int64), np.empty(m, np.int64)
    wall, value, bare = np.empty(m), np.empty(m), np.empty(m, np.bool_)
    cap, i, k, ntags = 64, 0, 0, 0
    slots = np.full(cap, -1, np.int64)
    tag_s, tag_n, hashes = np.empty(cap // 2 + 1, np.int64), np.empty(cap // 2 + 1, np.int64), \
        np.empty(cap // 2 + 1, np.uint64)
    while True:
        i, k, ntags = _scalars_kernel(u, starts, lengths, _SCALARS, i, k, ntags, slots, tag_s, tag_n, hashes,
                                      idx, wall, step, value, code, bare)
        if i >= m:
            break
        cap *= 4                                      # the table is half full: grow it
        slots = np.full(cap, -1, np.int64)
        tag_s, tag_n, hashes = (np.concatenate([a, np.empty(cap // 2 + 1 - len(a), a.dtype)])
                                for a in (tag_s, tag_n, hashes))
        _rehash(slots, hashes, ntags)
    tags = [buf[s:s + n].decode("utf-8", "replace") for s, n in zip(tag_s[:ntags].tolist(), tag_n[:ntags].tolist())]
    return FastScalars(idx[:k], wall[:k], step[:k], value[:k], code[:k], tags, bare[:k])



# ------------------------------------------------------------------------------- segments
@njit
def _steps_back_kernel(code, step, last, seen, out):
    for i in range(len(code)):
        c = code[i]
        out[i] = seen[c] and step[i] < last[c]
        seen[c] = True
        last[c] = step[i]


def steps_back(code: np.ndarray, step: np.ndarray) -> np.ndarray:
    """Whether each row's step is below the step of the previous row of its tag (``code``)."""
    ncodes = int(code.max()) + 1 if len(code) else 0
    out = np.empty(len(code), np.bool_)
    _steps_back_kernel(np.ascontiguousarray(code, np.int64), np.ascontiguousarray(step, np.int64),
                       np.zeros(ncodes, np.int64), np.zeros(ncodes, np.bool_), out)
    return out
