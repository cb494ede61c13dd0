"""``diff``: what changed in each parameter between consecutive checkpoints.

>>> import collapse_nb as cnb
>>> d = cnb.diff("runs/exp1/checkpoints/")            # doctest: +SKIP
>>> d[~d["changed"]]                                  # frozen (or dead) parameters  # doctest: +SKIP

One row per parameter per pair of consecutive checkpoints:

=================== ===================================================================
column              meaning
=================== ===================================================================
param, state        the tensor's name (prefixes stripped) and where in the checkpoint it
                    was (``state_dict``, ``model``, ``ema``...; matched on name alone when
                    both checkpoints have a single group)
checkpoint_from/_to the two checkpoints (paths; an index for a sharded set)
step_from/_to,      their step and epoch (see :mod:`collapse_nb.checkpoints.layout`)
epoch_from/_to
shape, dtype, numel of the ``to`` tensor (``from`` when it is missing in ``to``)
update_norm         ``||w_to - w_from||`` (float64)
weight_norm         ``||w_from||``
update_ratio        ``update_norm / weight_norm``
max_abs_change      ``max |w_to - w_from|``
changed             False when the bytes are identical or the change is within tolerance;
                    NA when the two cannot be compared (missing, shape changed)
unchanged_reason    ``identical`` (same bytes) or ``below tolerance``; NA when changed
issue              ``missing in checkpoint_to``, ``missing in checkpoint_from``,
                    ``shape (a) -> (b)``, ``dtype float32 -> float16`` (still compared)
=================== ===================================================================

**Tolerance**: a parameter whose bytes differ is unchanged ("below tolerance") when
``max_abs_change <= atol + rtol * max|w_from|``. Defaults ``atol=0.0``, ``rtol=1e-6``: a
change smaller than about eight float32 rounding steps of the tensor's largest weight.
``atol=0, rtol=0`` counts any difference in value as a change.

**Inputs**: a directory (every checkpoint in it, recursively; a sharded set through its
index; files without model tensors, such as ``optimizer.pt``, are skipped and listed), a list
of paths (files or directories), or a :class:`~collapse_nb.run.Run` (its files read as
``torch-checkpoint`` or ``safetensors``).

**Order**: by step when every checkpoint has one (its own ``global_step``/``step``/...,
else a ``trainer_state.json`` beside it, else its name: ``epoch=3-step=1200``,
``checkpoint-500``), else by epoch, else by the numbers in the file names (natural sort,
``7k`` = 7000), else as given. ``df.attrs["order_by"]`` says which; ``df.attrs`` also holds
``checkpoints`` (in order, with step and epoch), ``skipped``, ``atol`` and ``rtol``.

**Memory**: two checkpoints are open at a time (memory-mapped), and each pair of tensors is
compared chunk by chunk; pages are released after each tensor.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from .errors import CollapseNBError, MissingPathError, NothingReadableError
from .run import Run

CHECKPOINT_FORMATS = ("torch-checkpoint", "safetensors")
COLUMNS = {"param": "string", "state": "string", "checkpoint_from": "string", "checkpoint_to": "string",
           "step_from": "Int64", "step_to": "Int64", "epoch_from": "Float64", "epoch_to": "Float64",
           "shape": "object", "dtype": "string", "numel": "Int64", "update_norm": "float64",
           "weight_norm": "float64", "update_ratio": "float64", "max_abs_change": "float64", "changed": "boolean",
           "unchanged_reason": "string", "issue": "string"}


def _check_tolerance(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def _candidates(directory: Path) -> list[Path]:
    from .checkpoints import kind_of, sharded_index_for
    out = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__")
        for f in sorted(files):
            p = Path(root) / f
            if f.startswith(".") or p.stat().st_size == 0:
                continue
            try:
                kind = kind_of(p)
            except OSError:
                continue
            if kind is not None and (kind == "index" or sharded_index_for(p) is None):
                out.append(p)
    return out


def _resolve(what: Any) -> list[tuple[Path, bool]]:
    """Checkpoint paths to compare, each with whether it was named explicitly (errors raise) or found."""
    if isinstance(what, Run):
        paths = [Path(f["source"]) for f in what.meta.get("files", []) if f.get("format") in CHECKPOINT_FORMATS]
        if not paths:
            raise NothingReadableError("the run holds no checkpoint files (formats "
                                       f"{', '.join(CHECKPOINT_FORMATS)}); pass the checkpoint paths instead")
        return [(p, False) for p in dict.fromkeys(paths)]
    if isinstance(what, (str, os.PathLike)):
        items = [Path(what)]
    elif isinstance(what, Iterable):
        items = [Path(p) for p in what]
    else:
        raise TypeError("run_or_checkpoints must be a Run, a directory, or a list of checkpoint paths, "
                        f"got {type(what).__name__}")
    out: dict[Path, bool] = {}
    for p in items:
        if not p.exists():
            raise MissingPathError(p)
        for q, explicit in ([(c, False) for c in _candidates(p)] if p.is_dir() else [(p, True)]):
            out[q] = out.get(q, False) or explicit
    return list(out.items())


def _keyed(ck) -> dict[tuple[str, str], Any]:
    single = len({r.state for r in ck.tensors}) <= 1
    return {("" if single else r.state, r.name): r for r in ck.tensors}


def _compare(a, b, chunk: int, bufs, release=()) -> dict[str, float | bool]:
    """Update and weight statistics of one tensor pair, chunk by chunk (identical chunks skip the maths)."""
    import torch

    from .checkpoints.stats import iter_chunks
    a, b = a.detach(), b.detach()
    if a.is_complex():
        a = torch.view_as_real(a)
    if b.is_complex():
        b = torch.view_as_real(b)
    same_dtype = a.dtype == b.dtype
    identical = same_dtype
    upd_sq = w_sq = 0.0
    max_change = w_max = 0.0
    for ca, cb in iter_chunks(a, b, chunk=chunk, release=release):
        chunk_same = same_dtype and torch.equal(_bits(ca), _bits(cb))
        identical = identical and chunk_same
        xa = bufs.cast(0, ca)
        w_sq += float(torch.dot(xa, xa))
        lo, hi = (float(v) for v in torch.aminmax(xa))
        w_max = max(w_max, abs(lo), abs(hi)) if not (math.isnan(lo) or math.isnan(w_max)) else math.nan
        if chunk_same:
            continue
        xb = bufs.cast(1, cb).sub_(xa)
        upd_sq += float(torch.dot(xb, xb))
        lo, hi = (float(v) for v in torch.aminmax(xb))
        max_change = max(max_change, abs(lo), abs(hi)) if not (math.isnan(lo) or math.isnan(max_change)) \
            else math.nan
    return {"identical": identical, "update_norm": math.sqrt(upd_sq), "weight_norm": math.sqrt(w_sq),
            "max_abs_change": max_change, "w_max": w_max}


def _bits(x):
    """A flat chunk's raw bits as integers (so NaN == NaN and -0.0 != 0.0): byte identity."""
    import torch
    x = x.reshape(-1)
    if x.numel() and x.stride(0) != 1:
        x = x.clone(memory_format=torch.contiguous_format)
    return x.view({1: torch.uint8, 2: torch.int16, 4: torch.int32}.get(x.element_size(), torch.int64))


def _ratio(u: float, w: float) -> float:
    if w == 0:
        return math.nan if u == 0 or math.isnan(u) else math.inf
    return u / w


def _pair_rows(a, b, atol: float, rtol: float, chunk: int, bufs) -> list[dict[str, Any]]:
    from .checkpoints.stats import dtype_name, release_pages
    ka, kb = _keyed(a), _keyed(b)
    rows = []
    for key in list(ka) + [k for k in kb if k not in ka]:
        ra, rb = ka.get(key), kb.get(key)
        ref = rb or ra
        assert ref is not None          # the key is in one of them
        row: dict[str, Any] = {"param": ref.name, "state": ref.state, "checkpoint_from": a.id, "checkpoint_to": b.id,
                               "step_from": a.step, "step_to": b.step, "epoch_from": a.epoch, "epoch_to": b.epoch,
                               "shape": ref.shape, "dtype": dtype_name(ref.dtype), "numel": math.prod(ref.shape)}
        if ra is None or rb is None:
            row["issue"] = "missing in checkpoint_from" if ra is None else "missing in checkpoint_to"
        elif ra.shape != rb.shape:
            row["issue"] = f"shape {ra.shape} -> {rb.shape}"
        else:
            if ra.dtype != rb.dtype:
                row["issue"] = f"dtype {dtype_name(ra.dtype)} -> {dtype_name(rb.dtype)}"
            ta, tb = ra.load(), rb.load()
            ranges = a.mapped + b.mapped
            try:
                c = _compare(ta, tb, chunk, bufs, ranges)
            except (RuntimeError, TypeError, ValueError) as exc:     # sparse, meta, quantized...
                row["issue"] = f"not compared ({type(exc).__name__}: {str(exc)[:200]})"
                rows.append(row)
                continue
            finally:
                release_pages(ta, ranges)
                release_pages(tb, ranges)
            tol = atol + rtol * c["w_max"]
            below = c["max_abs_change"] <= tol
            row.update(update_norm=c["update_norm"], weight_norm=c["weight_norm"],
                       update_ratio=_ratio(c["update_norm"], c["weight_norm"]), max_abs_change=c["max_abs_change"],
                       changed=not (c["identical"] or below),
                       unchanged_reason="identical" if c["identical"] else ("below tolerance" if below else None))
        rows.append(row)
    return rows


def diff(run_or_checkpoints: Any, *, atol: float = 0.0, rtol: float = 1e-6, chunk: int | None = None) -> pd.DataFrame:
    """Per-parameter change between consecutive checkpoints (see the module documentation).

    Parameters
    ----------
    run_or_checkpoints
        A directory of checkpoints, a list of checkpoint paths (files or directories), or a
        :class:`~collapse_nb.run.Run` whose files include checkpoints.
    atol, rtol
        Tolerance: unchanged when ``max_abs_change <= atol + rtol * max|w_from|``
        (defaults 0.0 and 1e-6).
    chunk
        Elements per chunk (default 8 Mi).

    Raises
    ------
    MissingPathError
        A path does not exist.
    NothingReadableError
        Fewer than two checkpoints with model tensors.
    UnreadableFileError
        A checkpoint named explicitly cannot be read (in a directory it is skipped and listed
        in ``df.attrs["skipped"]``).
    """
    atol, rtol = _check_tolerance("atol", atol), _check_tolerance("rtol", rtol)
    if chunk is not None and (not isinstance(chunk, int) or isinstance(chunk, bool) or chunk < 1):
        raise ValueError(f"chunk must be a positive integer, got {chunk!r}")
    paths = _resolve(run_or_checkpoints)
    from .checkpoints import open_checkpoint
    from .checkpoints.layout import Checkpoint, order_checkpoints
    from .checkpoints.stats import CHUNK, _Buffers, frame
    found, skipped = [], []
    for p, explicit in paths:
        try:
            with open_checkpoint(p) as ck:
                if ck.tensors:
                    found.append(Checkpoint(ck.path, ck.format, step=ck.step, epoch=ck.epoch,
                                            progress_from=ck.progress_from))
                else:
                    skipped.append({"path": str(p), "reason": "no model tensors"})
        except CollapseNBError as exc:
            if explicit:
                raise
            skipped.append({"path": str(p), "reason": str(exc)})
    if len(found) < 2:
        detail = "; ".join(f"{s['path']}: {s['reason']}" for s in skipped[:5])
        raise NothingReadableError(f"diff needs at least two checkpoints with model tensors, found {len(found)}"
                                   + (f" (skipped: {detail})" if detail else ""))
    ordered, basis = order_checkpoints(found)
    rows: list[dict[str, Any]] = []
    bufs = _Buffers(2)
    prev = open_checkpoint(ordered[0].path)
    try:
        for info in ordered[1:]:
            cur = open_checkpoint(info.path)
            rows.extend(_pair_rows(prev, cur, atol, rtol, chunk or CHUNK, bufs))
            prev.close()
            prev = cur
    finally:
        prev.close()
    df = frame(rows, COLUMNS)
    df.attrs.update(order_by=basis, atol=atol, rtol=rtol, skipped=skipped,
                    checkpoints=[{"checkpoint": str(c.path), "step": c.step, "epoch": c.epoch,
                                  "progress_from": c.progress_from} for c in ordered])
    return df


__all__ = ["diff"]
