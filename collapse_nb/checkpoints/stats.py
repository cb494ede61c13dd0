"""Per-tensor statistics computed in chunks, and giving a mapped tensor's pages back.

A tensor is read in flat chunks of at most :data:`CHUNK` elements (in row-major order,
whatever its strides), each copied into one reused float64 buffer, so that a tensor of
any size costs ``8 * CHUNK`` bytes of working memory and every sum is accumulated in
float64 whatever the stored dtype (float32/16, bfloat16, float8, integers, bool).

The statistics (:func:`tensor_stats`):

============ ==============================================================
norm         L2 norm
mean, std    population standard deviation (``ddof=0``), merged across chunks with
             Chan's formula (chunk means and centred sums of squares), not ``E[x²]-E[x]²``
abs_max      ``max(|min|, |max|)``
min, max
frac_zero    share of elements exactly 0 (``False`` for bool)
n_nonfinite  NaN and ±inf elements (NaN/inf also show in the other statistics, as in torch)
const_rows   rows along dim 0 (output units) of a >= 2-D floating tensor whose values are all equal (NaN for
             other tensors and for tensors over ``ROW_STATS_MAX`` elements)
zero_rows    ... of those, the rows that are all zero
digest       BLAKE2b (16 bytes, hex) of dtype, shape and the raw bytes in row-major order:
             two tensors with the same digest are the same bytes (hashed in a worker
             thread while torch does the sums; hashlib lets go of the GIL)
============ ==============================================================

Complex tensors are summarised by their magnitude; quantized ones after dequantizing; sparse
and meta tensors (no data to read here) get NaN statistics.

Page release. ``torch.load(mmap=True)`` maps the whole file once (``MAP_PRIVATE``) and
every storage is a slice of that mapping; safetensors' ``safe_open`` does the same. Pages
read stay resident (and count in RSS) until the mapping goes, so reading a 10 GB file
would end with 10 GB resident. After each chunk (and each tensor), :func:`release_range`
tells the kernel ``madvise(MADV_DONTNEED)`` for those pages. For a private file mapping
that was never written to this only drops the page-table entries: the next access reads
the page from the page cache or file again, so values never change (tested), and the
process's resident memory stays near one chunk. The advice is clipped to the file
mappings found in ``/proc/self/maps`` (:func:`file_mappings`), so anonymous memory (which
``MADV_DONTNEED`` would zero) is never touched; elsewhere than Linux nothing is released.
"""
from __future__ import annotations

import ctypes
import hashlib
import math
import mmap
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator, Sequence

import pandas as pd
import torch

#: Elements per chunk (8 Mi: a 64 MiB float64 buffer).
CHUNK = 1 << 23
_MADV_DONTNEED = 4
_PAGE = mmap.PAGESIZE

#: Private file mappings (start, end) whose pages may be dropped after reading.
Ranges = Sequence[tuple[int, int]]

STAT_COLUMNS = ("numel", "norm", "mean", "std", "abs_max", "min", "max", "frac_zero", "n_nonfinite", "digest",
                "const_rows", "zero_rows")


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def iter_chunks(*tensors: torch.Tensor, chunk: int = CHUNK,
                release: Ranges = ()) -> Iterator[tuple[torch.Tensor, ...]]:
    """Flat 1-D chunks of same-shaped tensors, in step, in row-major order.

    The blocking depends only on the shape, so chunks of two tensors with the same shape
    line up whatever their strides; a contiguous tensor's chunks are views (no copy).
    With ``release`` (the file mappings whose pages may be dropped, see :func:`release_pages`),
    the pages under each chunk that is a view are released once the caller has finished with
    it, so a tensor larger than memory costs about one chunk of resident pages.
    """
    for chunks in _blocks(tensors, chunk):
        yield chunks
        if release:
            for c, t in zip(chunks, tensors):
                if c.is_contiguous() and c.numel() and \
                        c.untyped_storage().data_ptr() == t.untyped_storage().data_ptr():
                    release_range(c.data_ptr(), c.numel() * c.element_size(), release)


def _blocks(tensors: tuple[torch.Tensor, ...], chunk: int) -> Iterator[tuple[torch.Tensor, ...]]:
    t0 = tensors[0]
    if t0.numel() == 0:
        return
    if t0.dim() == 0:
        yield tuple(t.reshape(1) for t in tensors)
        return
    n0 = t0.shape[0]
    row = t0.numel() // n0
    if row > chunk and t0.dim() > 1:
        for i in range(n0):
            yield from _blocks(tuple(t[i] for t in tensors), chunk)
        return
    step = max(1, chunk // max(row, 1))
    for i in range(0, n0, step):
        yield tuple(t[i:i + step].reshape(-1) for t in tensors)


def _readable(t: torch.Tensor) -> torch.Tensor | None:
    """The tensor as one whose elements can be read and cast to float64, or None."""
    if t.layout == torch.sparse_coo:
        return _readable(t.coalesce().values())           # the stored values (the rest are zeros)
    if t.layout in (torch.sparse_csr, torch.sparse_csc, torch.sparse_bsr, torch.sparse_bsc):
        return _readable(t.values())
    if t.layout != torch.strided or t.device.type == "meta":
        return None
    if t.is_quantized:
        return t.dequantize()
    if t.is_complex():
        return t.abs()
    return stored_values(t)


def stored_values(t: torch.Tensor) -> torch.Tensor:
    """``t``, or, for a view larger than its storage (``torch.zeros(1).expand(2**34)``: strides of 0), the
    elements its storage holds: statistics are computed on what is stored, never on the expanded view."""
    if t.numel() <= 1 or all(st != 0 for st, n in zip(t.stride(), t.shape) if n > 1):
        return t
    size = t.untyped_storage().nbytes() // max(t.element_size(), 1)
    stored = torch.empty(0, dtype=t.dtype).set_(t.untyped_storage(), 0, (size,), (1,))
    return stored[t.storage_offset():] if t.storage_offset() else stored


def view_note(t: torch.Tensor) -> str | None:
    """Why a tensor's statistics are not over its ``numel`` elements, or None."""
    if t.layout != torch.strided:
        return f"{str(t.layout).removeprefix('torch.')}: statistics of its stored values"
    if t.numel() > 1 and any(st == 0 for st, n in zip(t.stride(), t.shape) if n > 1):
        size = t.untyped_storage().nbytes() // max(t.element_size(), 1)
        return f"a view of {t.numel():,} elements over a storage of {size:,} (stride 0): statistics of the storage"
    return None


_NATIVE_MINMAX = frozenset({torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int8, torch.int16,
                            torch.int32, torch.int64, torch.uint8})
_HASHERS: dict[int, ThreadPoolExecutor] = {}


def _hasher() -> ThreadPoolExecutor:
    """One digest worker thread per process (a forked child makes its own)."""
    pid = os.getpid()
    if pid not in _HASHERS:
        _HASHERS.clear()
        _HASHERS[pid] = ThreadPoolExecutor(max_workers=1, thread_name_prefix="collapse_nb-digest")
    return _HASHERS[pid]


class _Buffers:
    """Reused float64 working buffers (one per operand)."""

    def __init__(self, n: int = 1):
        self.bufs: list[torch.Tensor] = [torch.empty(0, dtype=torch.float64) for _ in range(n)]

    def cast(self, i: int, x: torch.Tensor) -> torch.Tensor:
        if self.bufs[i].numel() < x.numel():
            self.bufs[i] = torch.empty(x.numel(), dtype=torch.float64)
        out = self.bufs[i][: x.numel()]
        out.copy_(x)
        return out


def _raw_bytes(x: torch.Tensor) -> memoryview:
    x = x.reshape(-1)
    if x.numel() and x.stride(0) != 1:       # a lone element can keep a stride other than 1
        x = x.clone(memory_format=torch.contiguous_format)
    return x.view(torch.uint8).numpy().data      # the array's bytes, as memoryview(array) gives them


def tensor_stats(t: torch.Tensor, *, chunk: int = CHUNK, digest: bool = True, release: Ranges = (),
                 buffers: _Buffers | None = None) -> dict:
    """The statistics of :data:`STAT_COLUMNS` for one tensor, reading it chunk by chunk.

    ``release``: the private file mappings whose pages may be dropped (see :func:`release_pages`).
    """
    t = t.detach()                     # an nn.Parameter from a pickled module: no autograd here
    out: dict = {"numel": int(t.numel()), "norm": math.nan, "mean": math.nan, "std": math.nan,
                 "abs_max": math.nan, "min": math.nan, "max": math.nan, "frac_zero": math.nan,
                 "n_nonfinite": 0, "digest": None, "const_rows": math.nan, "zero_rows": math.nan}
    src = _readable(t)
    if src is None:
        return out
    h = hashlib.blake2b(digest_size=16) if digest and not t.is_quantized else None
    stored_only = t.layout != torch.strided or (src is not t and not t.is_complex())   # sparse, or a stride-0 view
    if h is not None:
        h.update(f"{dtype_name(t.dtype)}{tuple(t.shape)}".encode())
        if stored_only:                                   # what is stored, and where it goes
            h.update(f"{t.layout}{t.stride() if t.layout == torch.strided else ''}".encode())
            if t.layout == torch.sparse_coo:
                for (c,) in iter_chunks(t.coalesce().indices(), chunk=chunk):
                    h.update(_raw_bytes(c))
            for (c,) in iter_chunks(src, chunk=chunk):
                h.update(_raw_bytes(c))
        elif src is not t:                                # complex: hash the stored values
            for (c,) in iter_chunks(t, chunk=chunk):
                h.update(_raw_bytes(c))
    if t.numel() == 0:
        out.update(norm=0.0, digest=h.hexdigest() if h is not None else None)
        return out
    bufs = buffers or _Buffers(1)
    n, mean, m2 = 0, 0.0, 0.0                             # over the finite chunks (Chan's merge)
    lo, hi, zeros, nonfinite = math.inf, -math.inf, 0, 0
    has_nan = pos_inf = neg_inf = False
    for (c,) in iter_chunks(src, chunk=chunk, release=release if src is t else ()):
        # hashlib lets go of the GIL: hash this chunk in a worker thread while torch does the sums
        pending = None
        if h is not None and src is t:
            if c.numel() * c.element_size() >= 1 << 20:
                pending = _hasher().submit(h.update, _raw_bytes(c))
            else:
                h.update(_raw_bytes(c))
        x = bufs.cast(0, c)
        k = x.numel()
        # zeros and extremes are exact in the stored dtype (half the bytes to read for float32)
        y = c if c.dtype in _NATIVE_MINMAX else x
        zeros += k - int(torch.count_nonzero(y))
        cmin, cmax = (float(v) for v in torch.aminmax(y))
        if not (math.isfinite(cmin) and math.isfinite(cmax)):
            bad = ~torch.isfinite(x)
            nonfinite += int(bad.sum())
            has_nan |= bool(torch.isnan(x).any())
            pos_inf |= bool((x == math.inf).any())
            neg_inf |= bool((x == -math.inf).any())
            x = x[~bad]
            if not x.numel():
                if pending is not None:
                    pending.result()
                continue
            cmin, cmax = (float(v) for v in torch.aminmax(x))
            k = x.numel()
        lo, hi = min(lo, cmin), max(hi, cmax)
        cmean = float(x.sum()) / k
        x.sub_(cmean)
        cm2 = float(torch.dot(x, x))
        delta, tot = cmean - mean, n + k
        m2 += cm2 + delta * delta * n * k / tot
        mean += delta * k / tot
        n = tot
        if pending is not None:
            pending.result()
    numel = out["numel"]
    if t.layout != torch.strided:                         # a sparse tensor's implicit entries are zeros
        zeros += numel - src.numel()
    elif stored_only:                                     # a stride-0 view: the fraction of its stored values
        numel = src.numel()
    out.update(frac_zero=zeros / max(numel, 1), n_nonfinite=nonfinite, digest=h.hexdigest() if h is not None else None)
    if n:
        out.update(mean=mean, std=math.sqrt(max(m2 / n, 0.0)), norm=math.sqrt(max(m2 + n * mean * mean, 0.0)),
                   min=lo, max=hi)
    if nonfinite:   # as torch gives them: NaN propagates, inf dominates
        lo = -math.inf if neg_inf else lo
        hi = math.inf if pos_inf else hi
        out.update(std=math.nan, norm=math.nan if has_nan else math.inf,
                   mean=math.nan if has_nan or (pos_inf and neg_inf) else (math.inf if pos_inf else -math.inf),
                   min=math.nan if has_nan else lo, max=math.nan if has_nan else hi)
    out["abs_max"] = max(abs(out["min"]), abs(out["max"])) if not math.isnan(out["min"]) else math.nan
    out.update(_row_stats(src, release if src is t else ()))
    return out


#: Tensors with more elements than this get no per-row statistics (a second pass over them).
ROW_STATS_MAX = 32 * 1024 * 1024


def _row_stats(t: torch.Tensor, release: Ranges) -> dict:
    """``const_rows``, ``zero_rows``: output units (rows along dim 0) of a >= 2-D floating tensor whose values are
    all equal / all zero (dead units: a ReLU layer's unit that never fires gets no update); NaN otherwise."""
    if t.dim() < 2 or not t.is_floating_point() or t.shape[0] < 2 or t.numel() // t.shape[0] < 2 \
            or t.numel() > ROW_STATS_MAX:
        return {"const_rows": math.nan, "zero_rows": math.nan}
    x = t.reshape(t.shape[0], -1)
    lo, hi = torch.aminmax(x.float() if x.dtype in (torch.float16, torch.bfloat16) else x, dim=1)
    release_pages(t, release)
    return {"const_rows": float(int((lo == hi).sum())), "zero_rows": float(int(((lo == 0) & (hi == 0)).sum()))}


def params_table(ck, *, chunk: int | None = None) -> pd.DataFrame:
    """One row per model tensor of a :class:`~.layout.Checkpoint` (``PARAM_COLUMNS``).

    Tensors are read one at a time; the pages of a file-backed one are released after it.
    Tensors that are views of the same storage region (tied weights) are read once.
    """
    seen: dict[tuple, dict] = {}           # storage region -> its stats (tied weights are read once)
    rows, bufs = [], _Buffers(1)
    for ref in ck.tensors:
        t = ref.load()
        try:
            ptr = t.untyped_storage().data_ptr() if t.layout == torch.strided and t.device.type != "meta" else 0
            key = (ptr, t.storage_offset(), tuple(t.shape), tuple(t.stride()), t.dtype) if ptr else None
            stats = seen.get(key) if key else None
            if stats is None:
                stats = tensor_stats(t, chunk=chunk or CHUNK, buffers=bufs, release=ck.mapped)
                if key:
                    seen[key] = stats
                release_pages(t, ck.mapped)
            why = view_note(t)
        except (RuntimeError, NotImplementedError, TypeError, ValueError) as exc:
            # one tensor the summariser cannot read (fp4, a DTensor, an exotic layout) never refuses the file:
            # its row keeps what is known, its shape and dtype
            stats = {c: math.nan for c in STAT_COLUMNS}
            stats.update(numel=int(t.numel()), n_nonfinite=0, digest=None)
            why = f"not summarised ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"
        if why:
            ck.notes.append(f"{ref.name}: {why}")
        rows.append({"checkpoint": ck.id, "step": ck.step, "epoch": ck.epoch, "param": ref.name, "state": ref.state,
                     "kind": ref.kind, "shape": tuple(int(d) for d in t.shape), "dtype": dtype_name(t.dtype),
                     **stats})
        del t
    return frame(rows, PARAM_DTYPES)


PARAM_DTYPES = {"checkpoint": "string", "step": "Int64", "epoch": "Float64", "param": "string", "state": "string",
                "kind": "string", "shape": "object", "numel": "int64", "dtype": "string", "norm": "float64",
                "mean": "float64", "std": "float64", "abs_max": "float64", "min": "float64", "max": "float64",
                "frac_zero": "float64", "n_nonfinite": "int64", "digest": "string", "const_rows": "float64",
                "zero_rows": "float64"}


def frame(rows: list[dict], dtypes: dict[str, str]) -> pd.DataFrame:
    """Rows -> a DataFrame with exactly these columns and dtypes (also when there are no rows)."""
    data = {}
    for col, dt in dtypes.items():
        values = [r.get(col) for r in rows]
        if dt == "object":
            s = pd.Series(values, dtype=object)
        elif dt in ("Int64", "Float64", "string", "boolean"):
            s = pd.Series(pd.array([pd.NA if v is None else v for v in values], dtype=dt))
        else:
            s = pd.Series(values, dtype=dt)
        data[col] = s
    return pd.DataFrame(data)


# ---------------------------------------------------------------- page release
def _madvise():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.madvise
    except (OSError, AttributeError):  # pragma: no cover
        return None
    fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


_MADVISE = _madvise()


def file_mappings(path: str | os.PathLike) -> list[tuple[int, int]]:
    """``[(start, end)]`` of this process's *private* memory mappings of ``path`` (Linux; else empty)."""
    try:
        st = os.stat(path)
        real = os.path.realpath(path)
        with open("/proc/self/maps") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        parts = line.split(maxsplit=5)
        if len(parts) < 6 or parts[1][3:4] != "p" or parts[5] != real:
            continue
        if int(parts[4]) != st.st_ino:
            continue
        start, end = (int(x, 16) for x in parts[0].split("-"))
        out.append((start, end))
    return out


def release_range(ptr: int, nbytes: int, ranges: Ranges) -> bool:
    """``madvise(MADV_DONTNEED)`` on the pages covering ``[ptr, ptr + nbytes)``, clipped to ``ranges``.

    Never touches memory outside the given file mappings (anonymous memory would be zeroed).
    """
    if _MADVISE is None or not ptr or nbytes <= 0:
        return False
    start = ptr - ptr % _PAGE
    end = -(-(ptr + nbytes) // _PAGE) * _PAGE
    done = False
    for lo, hi in ranges:
        a, b = max(start, lo), min(end, hi)
        if a < b:
            done = _MADVISE(a, b - a, _MADV_DONTNEED) == 0 or done
    return done


def release_pages(t: torch.Tensor, ranges: Ranges) -> bool:
    """Drop the resident pages of a tensor's storage that lie in the file mappings ``ranges``.

    ``ranges`` must be *private* mappings of checkpoint files that were never written to
    (:func:`file_mappings` right after ``torch.load(mmap=True)`` or ``safe_open``): dropped
    pages are read again from the file when touched, so no value ever changes, and the
    process's resident memory does not grow with the file. Returns whether any advice was taken.
    """
    if not ranges or t.device.type != "cpu" or t.is_sparse or t.is_quantized or t.layout != torch.strided:
        return False
    storage = t.untyped_storage()
    return release_range(storage.data_ptr(), storage.nbytes(), ranges)


__all__ = ["CHUNK", "STAT_COLUMNS", "PARAM_DTYPES", "params_table", "frame", "tensor_stats", "iter_chunks",
           "release_pages", "release_range", "file_mappings", "dtype_name"]
