"""Time order of a run's rows, their segments, and how a row's place is named.

- **time order** (:func:`order`): rows by segment, then ``step`` when every row has one (unless
  the step restarts with each epoch, as pix2pix's ``iters``: then epoch, then step), else by
  ``epoch`` then ``batch`` (an epoch-level row, without a batch, after that epoch's batches),
  then the file line;
- **one segment** (:func:`main_segment`): a file with restarts holds several runs; the segment
  with the most rows is read (ties: the later one) so a crashed first attempt and its restart are
  not one curve;
- **where** (:func:`where`): a row is named ``step 1200``, ``epoch 3 batch 150`` or ``epoch 3``.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from ..wording import fmt


def _num(s: pd.Series) -> np.ndarray:
    return pd.to_numeric(s, errors="coerce").to_numpy(dtype="float64", na_value=np.nan) if len(s) else \
        np.array([], dtype="float64")


def order(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` in time order (see the module docstring), index reset."""
    if df.empty:
        return df.reset_index(drop=True)
    keys: dict[str, np.ndarray] = {}
    keys["seg"] = _num(df["segment"]) if "segment" in df else np.zeros(len(df))
    step = _num(df["step"]) if "step" in df else np.full(len(df), np.nan)
    ep = _num(df["epoch"]) if "epoch" in df else np.full(len(df), np.nan)
    if not np.isnan(step).any() and _step_restarts_each_epoch(ep, step):
        keys["a"] = ep                        # pix2pix 'iters': a counter within the epoch, not a global step
        keys["b"] = step
    elif not np.isnan(step).any():
        keys["a"] = step
        keys["b"] = np.zeros(len(df))
    else:
        ep = _num(df["epoch"]) if "epoch" in df else np.full(len(df), np.nan)
        bt = _num(df["batch"]) if "batch" in df else np.full(len(df), np.nan)
        keys["a"] = np.where(np.isnan(ep), np.where(np.isnan(step), np.inf, step), ep)
        keys["b"] = np.where(np.isnan(bt), np.inf, bt)          # an epoch-level row after the epoch's batches
    keys["line"] = _num(df["line"]) if "line" in df else np.arange(len(df), dtype="float64")
    keys["line"] = np.where(np.isnan(keys["line"]), np.arange(len(df)), keys["line"])
    idx = np.lexsort((keys["line"], keys["b"], keys["a"], np.nan_to_num(keys["seg"])))
    return df.iloc[idx].reset_index(drop=True)


def _step_restarts_each_epoch(ep: np.ndarray, step: np.ndarray) -> bool:
    """True when ``step`` counts within each epoch (it goes back when the epoch moves on)."""
    if np.isnan(ep).any() or len(np.unique(ep)) < 2:
        return False
    idx = np.lexsort((step, ep))
    return bool((np.diff(step[idx]) < 0).any())


def step_is_global(df: pd.DataFrame) -> bool:
    """Every row has a step and the step does not restart with each epoch: it can be the x axis alone."""
    if df.empty or "step" not in df or df["step"].isna().any():
        return False
    ep = _num(df["epoch"]) if "epoch" in df else np.full(len(df), np.nan)
    return not _step_restarts_each_epoch(ep, _num(df["step"]))


def main_segment(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of the segment with the most rows (ties: the later segment)."""
    if df.empty or "segment" not in df or df["segment"].nunique(dropna=True) <= 1:
        return df
    seg = df["segment"].fillna(0).astype("int64")
    counts = seg.value_counts()
    best = max(counts.index, key=lambda s: (counts[s], s))
    return df[seg == best]


def where(row: Any) -> str:
    """``step 1200`` / ``epoch 3 batch 150`` / ``epoch 3`` for a row (Series or dict)."""
    get = row.get if hasattr(row, "get") else (lambda k, d=None: getattr(row, k, d))

    def val(k):
        v = get(k, None)
        return None if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)) else v

    step, epoch, batch = val("step"), val("epoch"), val("batch")
    parts = []
    if epoch is not None:
        parts.append(f"epoch {fmt(epoch)}")
        if batch is not None:
            parts.append(f"batch {int(batch)}")
    if step is not None:
        parts = [f"step {int(step)}"] + ([parts[0]] if parts else [])
        return parts[0] if len(parts) == 1 else f"{parts[0]} ({parts[1]})"
    return " ".join(parts) if parts else "?"


def add_where(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    out["where"] = [where(r) for r in out.to_dict(orient="records")] if len(out) else []
    return out
