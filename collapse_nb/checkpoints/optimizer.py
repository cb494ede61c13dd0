"""The optimizer-state table: one row per parameter per optimizer per checkpoint.

Reads ``optimizer.state_dict()``s (``{"state": {id: {...}}, "param_groups": [...]}``), as
saved on their own (Hugging Face ``optimizer.pt``), under ``optimizer`` / ``optimizer_state_dict``
/ ..., or as Lightning's ``optimizer_states`` list.

Columns: ``checkpoint, step, optimizer`` (index in the checkpoint), ``group, param_index``
(the optimizer's id of the parameter), ``param`` (see below), ``shape, numel, lr, betas,
eps, weight_decay, momentum`` (from the parameter's group), ``adam_step`` (``state["step"]``),
``exp_avg_norm`` (‖m‖), ``exp_avg_sq_mean`` (mean of v), ``effective_step_norm`` and
``effective_lr_mean``, ``momentum_buffer_norm`` (SGD).

The *effective* step is Adam's update without weight decay, with bias correction at step t:
``update = lr * m_hat / (sqrt(v_hat) + eps)``, ``m_hat = m / (1 - beta1^t)``,
``v_hat = v / (1 - beta2^t)`` (``max_exp_avg_sq`` for ``v`` when ``amsgrad``), exactly as
``torch.optim.Adam``/``AdamW`` compute it. ``effective_step_norm`` is ‖update‖ and
``effective_lr_mean`` the mean of ``lr / (sqrt(v_hat) + eps)``: the per-element step size
Adam is really taking. Both are NaN without ``betas`` or before the first step. Other
optimizers that keep ``exp_avg``/``exp_avg_sq`` (NAdam, RAdam, ...) get the same (Adam) formula.

**Names.** A parameter gets its name only when it can be verified: the optimizer stored
``param_names`` (torch >= 2.5 with named parameters), or the shapes of the group's state
tensors (``exp_avg``, ``momentum_buffer``, ...), in order, fit the model's parameters (in
``state_dict`` order, buffers and tied copies left out) so that *every* in-order match puts
this parameter on the same name: the earliest and the latest match agree on it. A
parameter without state (frozen, never stepped) can be placed that way between verified
neighbours. Otherwise (two same-shaped candidates, shapes that do not fit) ``param`` is NA.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd
import torch

from .layout import Checkpoint, TensorRef, strip_prefixes
from .stats import CHUNK, Ranges, _Buffers, frame, iter_chunks, release_pages

COLUMNS = ("checkpoint", "step", "optimizer", "group", "param_index", "param", "shape", "numel", "lr", "betas",
           "eps", "weight_decay", "momentum", "adam_step", "exp_avg_norm", "exp_avg_sq_mean",
           "effective_step_norm", "effective_lr_mean", "momentum_buffer_norm")
_SHAPE_KEYS = ("exp_avg", "momentum_buffer", "exp_avg_sq", "square_avg", "sum", "acc_delta", "ax", "prev")


def _float(v: Any) -> float:
    if isinstance(v, torch.Tensor) and v.numel() == 1:
        return float(v.reshape(()).item())
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    return math.nan


def _state_shape(st: Mapping) -> tuple[int, ...] | None:
    for k in _SHAPE_KEYS:
        v = st.get(k)
        if isinstance(v, torch.Tensor) and v.dim() > 0:
            return tuple(v.shape)
    return None


def _embed(shapes: list[tuple | None], cands: list[tuple], reverse: bool) -> list[int] | None:
    """Greedy in-order embedding of ``shapes`` (None = any) into ``cands``; earliest or latest."""
    n, m = len(shapes), len(cands)
    order = range(n - 1, -1, -1) if reverse else range(n)
    out = [0] * n
    j = m - 1 if reverse else 0
    for i in order:
        while 0 <= j < m and shapes[i] is not None and cands[j] != shapes[i]:
            j += -1 if reverse else 1
        if not 0 <= j < m:
            return None
        out[i] = j
        j += -1 if reverse else 1
    return out


def map_names(opt: Mapping, params: list[tuple[str, tuple]]) -> dict[int, str]:
    """Verified ``{param id: name}`` for one optimizer state dict (see module doc)."""
    state = opt.get("state") or {}
    groups = opt.get("param_groups") or []
    mapping: dict[int, str] = {}
    cands = [s for _, s in params]
    used: dict[str, int] = {}
    for g in groups:
        ids = list(g.get("params") or [])
        names = g.get("param_names")
        if isinstance(names, (list, tuple)) and len(names) == len(ids):
            mapping.update(zip(ids, strip_prefixes([str(n) for n in names])[0]))
            continue
        shapes = [_state_shape(state.get(i) or {}) for i in ids]
        if not ids or all(s is None for s in shapes):
            continue
        first, last = _embed(shapes, cands, False), _embed(shapes, cands, True)
        if first is None or last is None:
            continue
        for i, j, k in zip(ids, first, last):
            if j == k:             # every in-order match puts this parameter here
                mapping[i] = params[j][0]
                used[params[j][0]] = used.get(params[j][0], 0) + 1
    clash = {n for n, c in used.items() if c > 1}
    return {i: n for i, n in mapping.items() if n not in clash}


def model_params(refs: list[TensorRef]) -> list[tuple[str, tuple]]:
    """The primary group's parameters in order, for matching (buffers and shared storages left out)."""
    if not refs:
        return []
    primary = refs[0].state
    out, seen = [], set()
    for r in refs:
        if r.state != primary or r.kind == "buffer":
            continue
        t = r.load()
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), tuple(t.stride()))
        if key[0] and key in seen:
            continue
        seen.add(key)
        out.append((r.name, r.shape))
    return out


def _adam(st: Mapping, g: Mapping, bufs: _Buffers, chunk: int, release: Ranges) -> dict[str, float]:
    m, v = st.get("exp_avg"), st.get("exp_avg_sq")
    out = {"exp_avg_norm": math.nan, "exp_avg_sq_mean": math.nan, "effective_step_norm": math.nan,
           "effective_lr_mean": math.nan}
    if not (isinstance(m, torch.Tensor) and isinstance(v, torch.Tensor)) or m.shape != v.shape or not m.numel():
        return out
    raw_max = st.get("max_exp_avg_sq") if g.get("amsgrad") else None
    m, v = m.detach(), v.detach()
    same = not (isinstance(raw_max, torch.Tensor) and raw_max.shape == v.shape)   # v is the denominator's
    vmax = v if same or not isinstance(raw_max, torch.Tensor) else raw_max.detach()
    t, lr, eps = _float(st.get("step")), _float(g.get("lr")), _float(g.get("eps"))
    betas = g.get("betas")
    b1, b2 = (_float(betas[0]), _float(betas[1])) if isinstance(betas, (tuple, list)) and len(betas) == 2 \
        else (math.nan, math.nan)
    effective = t > 0 and all(math.isfinite(x) for x in (lr, eps, b1, b2))
    bc1, bc2 = (1 - b1 ** t, 1 - b2 ** t) if effective else (math.nan, math.nan)
    m_sq = v_sum = upd_sq = lr_sum = 0.0
    for cm, cv, cx in iter_chunks(m, v, vmax, chunk=chunk, release=release):
        xm, xv = bufs.cast(0, cm), bufs.cast(1, cv)
        m_sq += float(torch.dot(xm, xm))
        v_sum += float(xv.sum())
        if effective:
            den = xv if same else bufs.cast(2, cx)
            den.div_(bc2).sqrt_().add_(eps).reciprocal_().mul_(lr)     # lr / (sqrt(v_hat) + eps)
            lr_sum += float(den.sum())
            xm.mul_(den).div_(bc1)                                      # lr * m_hat / (sqrt(v_hat) + eps)
            upd_sq += float(torch.dot(xm, xm))
    n = m.numel()
    out.update(exp_avg_norm=math.sqrt(m_sq), exp_avg_sq_mean=v_sum / n)
    if effective:
        out.update(effective_step_norm=math.sqrt(upd_sq), effective_lr_mean=lr_sum / n)
    return out


def _norm(x: Any, bufs: _Buffers, chunk: int, release: Ranges) -> float:
    if not isinstance(x, torch.Tensor):
        return math.nan
    x, total = x.detach(), 0.0
    for (c,) in iter_chunks(x, chunk=chunk, release=release):
        b = bufs.cast(0, c)
        total += float(torch.dot(b, b))
    return math.sqrt(total)


def optimizer_rows(ck: Checkpoint, *, chunk: int = 1 << 23) -> list[dict[str, Any]]:
    """Rows of the optimizer table (:data:`COLUMNS`) for every optimizer state in ``ck``."""
    rows: list[dict[str, Any]] = []
    params = model_params(ck.tensors) if ck.optimizers else []
    bufs = _Buffers(3)
    for k, opt in enumerate(ck.optimizers):
        names = map_names(opt, params)
        state = opt.get("state") or {}
        for gi, g in enumerate(opt.get("param_groups") or []):
            betas = g.get("betas")
            for pid in g.get("params") or []:
                st = state.get(pid) or {}
                shape = _state_shape(st)
                named = isinstance(pid, str)          # FSDP-style states are keyed by parameter name
                row = {"checkpoint": ck.id, "step": ck.step, "optimizer": k, "group": gi,
                       "param_index": None if named else int(pid), "param": pid if named else names.get(pid),
                       "shape": shape,
                       "numel": math.prod(shape) if shape is not None else None,
                       "lr": _float(g.get("lr")),
                       "betas": tuple(_float(b) for b in betas) if isinstance(betas, (tuple, list)) else None,
                       "eps": _float(g.get("eps")), "weight_decay": _float(g.get("weight_decay")),
                       "momentum": _float(g.get("momentum")), "adam_step": _float(st.get("step"))}
                row.update(_adam(st, g, bufs, chunk, ck.mapped))
                row["momentum_buffer_norm"] = _norm(st.get("momentum_buffer"), bufs, chunk, ck.mapped)
                for x in st.values():
                    if isinstance(x, torch.Tensor):
                        release_pages(x, ck.mapped)
                rows.append(row)
    return rows


OPTIMIZER_DTYPES = {"checkpoint": "string", "step": "Int64", "optimizer": "int64", "group": "int64",
                    "param_index": "Int64", "param": "string", "shape": "object", "numel": "Int64",
                    "lr": "float64", "betas": "object", "eps": "float64", "weight_decay": "float64",
                    "momentum": "float64", "adam_step": "float64", "exp_avg_norm": "float64",
                    "exp_avg_sq_mean": "float64", "effective_step_norm": "float64", "effective_lr_mean": "float64",
                    "momentum_buffer_norm": "float64"}


def optimizer_table(ck: Checkpoint, *, chunk: int | None = None) -> pd.DataFrame:
    """The optimizer table (:data:`COLUMNS`) of one checkpoint; empty (with the columns) without optimizer state."""
    return frame(optimizer_rows(ck, chunk=chunk or CHUNK), OPTIMIZER_DTYPES)


__all__ = ["COLUMNS", "OPTIMIZER_DTYPES", "optimizer_table", "optimizer_rows", "map_names", "model_params"]
