"""Vectorised numpy decoding of the common fixed-layout one-scalar Event records.

:func:`fast_scalars` decodes every record that is exactly a ``simple_value`` or a scalar tensor of
the ``scalars`` plugin for all records at once, so a million-event file does not cost a million
Python-level decodes; records of any other shape are left to :mod:`._tfproto`.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._tfrecord import _at


class FastScalars(NamedTuple):
    """One-scalar Event records decoded together. Row ``i`` is record ``index[i]``."""

    index: np.ndarray  # type: ignore[assignment]  # a field named like tuple.index, which it shadows
    wall_time: np.ndarray
    step: np.ndarray
    value: np.ndarray
    tag: np.ndarray            #: code into ``tags``
    tags: list[str]
    bare_tensor: np.ndarray    #: a scalar tensor written without plugin metadata


def _varints(u: np.ndarray, pos: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The varints at ``pos`` of at most ``width`` bytes: values (uint64), byte counts, and ok."""
    b = _at(u, pos, width)
    term = b < 0x80
    ok = np.asarray(term.any(axis=1))          # (an array: the stubs allow a scalar)
    nb = term.argmax(axis=1) + 1
    v = (b[:, 0] & 0x7F).astype(np.uint64)
    for j in range(1, width):
        live = nb > j
        if not live.any():
            break
        v |= np.where(live, (b[:, j] & 0x7F).astype(np.uint64) << np.uint64(7 * j), np.uint64(0))
    return v, nb.astype(np.int64), ok


def _floats(u: np.ndarray, pos: np.ndarray, width: int) -> np.ndarray:
    raw = np.ascontiguousarray(_at(u, pos, width))
    with np.errstate(invalid="ignore"):          # a signalling NaN (or bytes read as one) is no error
        return raw.view("<f4" if width == 4 else "<f8").reshape(-1).astype(np.float64)


def _length_field(u: np.ndarray, p: np.ndarray, key: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check a length-delimited field with the one-byte ``key`` at ``p``; its payload's start, end, ok."""
    ln, nb, ok = _varints(u, p + 1, width)
    start = p + 1 + nb
    return start, start + ln.astype(np.int64), ok & (_at(u, p) == key)


def _tag_codes(u: np.ndarray, ts: np.ndarray, tl: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Number the distinct byte strings ``u[ts:ts+tl]``: a code per row and the strings."""
    codes = np.empty(len(ts), dtype=np.int64)
    tags: list[str] = []
    for length in np.unique(tl).tolist():
        rows = np.flatnonzero(tl == length)
        m = _at(u, ts[rows], length) if length else np.zeros((len(rows), 0), np.uint8)
        width = -(-length // 8) * 8 or 8
        words = np.zeros((len(rows), width), dtype=np.uint8)
        words[:, :length] = m
        words = words.view("<u8")
        h = words[:, 0].copy()
        for j in range(1, words.shape[1]):
            h = (h * np.uint64(0x9E3779B97F4A7C15)) ^ words[:, j]
        _, first, inv = np.unique(h, return_index=True, return_inverse=True)
        if words.shape[1] > 1 and not (m == m[first[inv]]).all():     # a hash collision: compare bytes
            _, first, inv = np.unique(np.ascontiguousarray(m).view(f"V{length}").ravel(),
                                      return_index=True, return_inverse=True)
        codes[rows] = inv.ravel() + len(tags)
        tags.extend(bytes(m[i]).decode("utf-8", "replace") for i in first.tolist())
    return codes, tags


def fast_scalars(buf: bytes, starts: np.ndarray, lengths: np.ndarray) -> FastScalars:
    """Decode every record that is exactly ``Event{wall_time, [step], summary{value{tag, x}}}``
    where ``x`` is a ``simple_value``, or a float/double scalar tensor followed by no metadata or
    by metadata naming the ``scalars`` plugin. Records of any other shape are left out."""
    u = np.frombuffer(buf, dtype=np.uint8)
    cand = np.flatnonzero((lengths >= 16) & (_at(u, starts) == 0x09))
    s, e = starts[cand], starts[cand] + lengths[cand]
    wall = _floats(u, s + 1, 8)
    p = s + 9
    has_step = _at(u, p) == 0x10
    sv, sn, ok = _varints(u, p + 1, 10)
    step = np.where(has_step, sv.view(np.int64), 0)
    ok |= ~has_step
    p = np.where(has_step, p + 1 + sn, p)
    for field_key in (0x2A, 0x0A):           # Event.summary, then its one Summary.value
        p, end, fok = _length_field(u, p, field_key, 4)
        ok &= fok & (end == e)
    ts, p, fok = _length_field(u, p, 0x0A, 2)    # Value.tag
    ok &= fok & (p < e)
    kind = _at(u, p)
    simple = ok & (kind == 0x15) & (p + 5 == e)
    value = np.full(len(s), np.nan)
    value[simple] = _floats(u, p[simple] + 1, 4)
    tensor = np.flatnonzero(ok & (kind == 0x42))
    good_tensor, bare = np.zeros(len(s), bool), np.zeros(len(s), bool)
    if len(tensor):
        q, tend, tok = _length_field(u, p[tensor], 0x42, 3)
        te = e[tensor]
        dt = _at(u, q + 1)
        tok &= (tend <= te) & (_at(u, q) == 0x08) & ((dt == 1) | (dt == 2))
        q = q + 2
        empty_shape = (_at(u, q) == 0x12) & (_at(u, q + 1) == 0)
        q = np.where(empty_shape, q + 2, q)
        key, ln, w = _at(u, q), _at(u, q + 1), np.where(dt == 1, 4, 8)
        packed = (((key == 0x2A) & (dt == 1)) | ((key == 0x32) & (dt == 2)) | (key == 0x22)) & (ln == w)
        unpacked = ((key == 0x2D) & (dt == 1)) | ((key == 0x31) & (dt == 2))
        vpos = np.where(packed, q + 2, q + 1)
        tok &= (packed | unpacked) & (vpos + w == tend)
        val = np.where(dt == 1, _floats(u, vpos, 4), _floats(u, vpos, 8))
        has_meta = tend < te
        ms, me, mok = _length_field(u, tend, 0x4A, 3)
        pd_key, pd_len, name = _at(u, ms), _at(u, ms + 1), _at(u, ms + 2, 9)
        mok &= (me == te) & (pd_key == 0x0A) & (pd_len < 0x80) & (name == np.frombuffer(
            b"\x0a\x07scalars", np.uint8)).all(axis=1)
        mok &= (ms + 11 <= me) & (pd_len >= 9) & (ms + 2 + pd_len <= me)     # the name inside the metadata
        tok &= ~has_meta | mok
        good_tensor[tensor] = tok
        bare[tensor] = tok & ~has_meta
        value[tensor] = np.where(tok, val, np.nan)
    rows = np.flatnonzero(simple | good_tensor)
    codes, tags = _tag_codes(u, ts[rows], (p - ts)[rows])
    return FastScalars(cand[rows], wall[rows], step[rows], value[rows], codes, tags, bare[rows])
