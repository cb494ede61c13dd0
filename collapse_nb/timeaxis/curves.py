"""The densest honest curve of a series, and what a check read.

- **one file** (``_one_source``): two files of one run logging the same series at different
  resolutions are never mixed; files whose steps continue each other (a resumed run) are one
  timeline (:func:`continues_each_other`);
- **the densest honest series** (:func:`curve`): step rows when there are more of them than
  epochs, else one value per epoch; summary rows are never points;
- **what was read** (:func:`curve_basis`, :func:`table_basis`): series, resolution, points, span.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..ranks import one_rank
from ..series import summary_rows
from .ordering import add_where, main_segment, order, step_is_global, where

if TYPE_CHECKING:
    from ..run import Run


LOSS_COLUMNS = ["segment", "epoch", "batch", "step", "value", "line", "source", "raw_name"]


def loss_rows(run: Run, phase: str, name: str = "loss", network: str | None = None,
              eval_set: str | None = None) -> pd.DataFrame:
    """Rows of one metric for one phase (``train`` also takes rows with no phase), in time order.

    For ``name="loss"`` the rows are the phase's *objective* (:meth:`Run.objective`): the logged
    total, the one loss series, or the sum of the components, for one ``network`` and ``eval_set``.
    Summary rows (a run average, a best-so-far value) are never part of the curve. A distributed run's rows
    are one rank's (:func:`collapse_nb.ranks.one_rank`).
    """
    s = one_rank(run.scalars)
    if s.empty:
        return pd.DataFrame(columns=LOSS_COLUMNS)
    if name == "loss" and hasattr(run, "objective"):
        obj = run.objective(phase, network, eval_set)
        rows = obj.rows if obj.found else pd.DataFrame(columns=LOSS_COLUMNS)
        out = order(rows[LOSS_COLUMNS]) if len(rows) else rows
        out.attrs["series"] = obj.description
        out.attrs["missing"] = obj.reason
        return out
    mask = (s["name"] == name) & s["param"].isna()
    ph = s["phase"]
    mask &= (ph == phase) | (ph.isna() if phase == "train" else False)
    picked = s.loc[mask]
    if len(picked):
        picked = picked[~summary_rows(picked).to_numpy()]
    out = order(picked[LOSS_COLUMNS])
    out.attrs["series"] = f"the {phase} {name}"
    return out


def curve(run: Run, phase: str, name: str = "loss", level: str = "auto", network: str | None = None,
          eval_set: str | None = None) -> pd.DataFrame:
    """:func:`_curve`, computed once per run and arguments (the checks ask for the same curves several times):
    a copy of the kept frame each call, and a new one when the run's ``scalars`` table is another object."""
    memo: tuple[Any, dict[tuple, pd.DataFrame]] | None = \
        run.__dict__.get("_curves") if hasattr(run, "__dict__") else None
    scalars = getattr(run, "scalars", None)
    if memo is None or memo[0] is not scalars:
        memo = (scalars, {})
        if hasattr(run, "__dict__"):
            run.__dict__["_curves"] = memo
    key = (phase, name, level, network, eval_set)
    if key not in memo[1]:
        memo[1][key] = _curve(run, phase, name, level, network, eval_set)
    return memo[1][key].copy()


def _curve(run: Run, phase: str, name: str = "loss", level: str = "auto", network: str | None = None,
           eval_set: str | None = None) -> pd.DataFrame:
    """One value per time point of a metric in the main segment: ``x, value, epoch, batch, step, where, level``.

    ``level``: ``"epoch"`` (epoch-level rows only, or the mean of each epoch's step rows when none),
    ``"step"`` (per-batch / per-step rows), or ``"auto"``: the densest honest series, i.e. the step
    rows when there are more of them than epochs (a run of 1,010 steps that all say ``epoch=0`` is
    1,010 points), else the epoch rows. A step row is one with a batch, without an epoch, or of a
    raw name logged more than once in some epoch (Lightning's ``*_step``); the others are epoch rows.
    Several values at one time point (two files saying the same) are averaged. ``attrs["series"]``
    says which series it is (:func:`loss_rows`), ``attrs["level"]`` its resolution.
    """
    all_rows = loss_rows(run, phase, name, network, eval_set)
    rows = main_segment(all_rows)
    cols = ["x", "value", "epoch", "batch", "step", "where", "level"]
    if rows.empty:
        out = pd.DataFrame(columns=cols)
        out.attrs.update(all_rows.attrs)
        return out
    series_key = rows["source"].astype(str) + "\x00" + rows["raw_name"].astype(str)
    with_epoch = rows["epoch"].notna()
    per_epoch = rows[with_epoch].groupby([series_key[with_epoch], rows.loc[with_epoch, "epoch"]]).size()
    dense = set(per_epoch[per_epoch > 1].index.get_level_values(0)) if len(per_epoch) else set()
    ep_values = pd.to_numeric(rows["epoch"], errors="coerce")
    fractional = ep_values.notna() & (ep_values != ep_values.round())       # HF's epoch 0.91: a step's place
    fractional_series = set(series_key[fractional])
    stepwise = rows["batch"].notna() | rows["epoch"].isna() | series_key.isin(dense | fractional_series)
    epoch_level = _one_source(rows[~stepwise], ["epoch"])
    per_step = _one_source(rows[stepwise], ["epoch", "batch", "step"])
    whole_epochs = np.floor(pd.to_numeric(per_step["epoch"], errors="coerce").astype("float64"))
    n_epochs = max(epoch_level["epoch"].nunique(), int(pd.Series(whole_epochs).nunique()))
    step_points = len(per_step.drop_duplicates(subset=["epoch", "batch", "step"]))
    # step rows that are no denser than the epochs are read per epoch, unless there is nothing per epoch to read:
    # HF's three evaluations at steps 10, 20, 30 (epochs 1.25, 2.5, 3.75) stay three step points
    use_epoch = level == "epoch" or (level == "auto" and (per_step.empty or (
        step_points <= n_epochs and not (epoch_level.empty and fractional.any()))))
    if use_epoch:
        if epoch_level.empty:
            epoch_level = per_step.dropna(subset=["epoch"])
        g = epoch_level.groupby("epoch", sort=True).agg(value=("value", "mean"), step=("step", "max"))
        out = g.reset_index()
        out["batch"] = pd.NA
        out["x"] = out["epoch"].astype("float64")
        out["level"] = "epoch"
    else:
        src = per_step if len(per_step) else rows
        key = ["step"] if step_is_global(src) else ["epoch", "batch", "step"]
        g = src.groupby(key, sort=False, dropna=False).agg(
            value=("value", "mean"), **{c: (c, "first") for c in ("epoch", "batch", "step") if c not in key})
        out = order(g.reset_index())
        out["x"] = out["step"].astype("float64") if key == ["step"] else np.arange(len(out), dtype="float64")
        out["level"] = "step"
    out = add_where(out)
    out = out[cols].reset_index(drop=True)
    out.attrs.update(all_rows.attrs)
    out.attrs["level"] = out["level"].iloc[0] if len(out) else None
    return out


def _one_source(rows: pd.DataFrame, when: list[str]) -> pd.DataFrame:
    """The rows of the file with the most distinct time points (ties: more rows, then the name).

    Two files of one run (a text log and TensorBoard, a CSV and a capture log) log the same loss at
    different resolutions and sometimes differently (per micro-batch, per optimizer step): a curve
    is read from one of them, never from their mixture.
    """
    if rows.empty or "source" not in rows or rows["source"].nunique(dropna=False) <= 1:
        return rows
    src = rows["source"].astype(str)
    if continues_each_other(rows):
        return rows            # a run resumed into a new file: one timeline
    points = rows[when].assign(_s=src.to_numpy()).drop_duplicates().groupby("_s").size()
    counts = src.value_counts()
    best = sorted(points.index, key=lambda k: (-points[k], -counts[k], k))[0]
    return rows[src == best]


def continues_each_other(rows: pd.DataFrame) -> bool:
    """The files of ``rows`` cover consecutive step ranges (each starts where the one before it stopped, at most
    repeating its last step): a run resumed into a new file (Lightning's ``version_1`` after ``version_0``)."""
    if "step" not in rows or rows["step"].isna().any():
        return False
    st = pd.to_numeric(rows["step"], errors="coerce").astype("float64")
    span = st.groupby(rows["source"].astype(str).to_numpy()).agg(["min", "max"]).sort_values("min")
    if len(span) < 2:
        return False
    return bool((span["min"].to_numpy()[1:] >= span["max"].to_numpy()[:-1]).all())


def finite(c: pd.DataFrame) -> pd.DataFrame:
    """The points of a curve with a finite value, index reset, its ``attrs`` (series, level) kept."""
    if not len(c):
        return c
    out = c[np.isfinite(c["value"].astype("float64"))].reset_index(drop=True)
    out.attrs.update(c.attrs)
    return out


def curve_basis(c: pd.DataFrame) -> dict[str, Any]:
    """What a check ran on, for its finding's details: ``series``, ``resolution``, ``points``, ``span``."""
    if c is None or not len(c):
        return {"series": c.attrs.get("series", "") if c is not None else "", "resolution": None, "points": 0}
    unit = "epoch" if c["level"].iloc[0] == "epoch" else "step"
    return {"series": c.attrs.get("series", ""), "resolution": unit, "points": int(len(c)),
            "span": f"{c['where'].iloc[0]} to {c['where'].iloc[-1]}"}


def missing_loss(c: pd.DataFrame, phase: str, need: int) -> str:
    """The reason a loss check did not run: the objective's absence, or too few points of it."""
    reason = c.attrs.get("missing") if c is not None else None
    if reason and (c is None or not len(c)):
        return reason
    series = c.attrs.get("series") or f"the {phase} loss"
    return f"{len(c)} finite points of {series} (need {need})"


def table_basis(df: pd.DataFrame, what: str = "") -> dict[str, Any]:
    """What a check read from a per-step table (``run.grads``, ``run.outputs``, a total norm): ``series``,
    ``resolution`` (``step`` / ``batch`` / ``epoch``), ``points`` (distinct time points) and ``span``."""
    if df is None or df.empty:
        return {}
    cols = [c for c in ("segment", "epoch", "batch", "step") if c in df.columns]
    pts = df[cols].drop_duplicates() if cols else df
    res = ("step" if "step" in df and df["step"].notna().any() else
           "batch" if "batch" in df and df["batch"].notna().any() else "epoch")
    out: dict[str, Any] = {"resolution": res, "points": int(len(pts))}
    if what:
        out["series"] = what
    if cols and len(pts):
        o = order(pts)
        out["span"] = f"{where(o.iloc[0])} to {where(o.iloc[-1])}"
    return out
