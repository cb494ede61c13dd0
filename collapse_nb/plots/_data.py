"""The tables the plots draw, as plain pandas (no matplotlib here).

Notebooks, widgets and the report can call these to get exactly the numbers a
plot shows. Every function takes the run's tables (or a run) and returns a new
DataFrame; nothing is mutated (the time axes are memoised per run, see below).

The time axis of a plot is that of the files its rows come from: a
:class:`collapse_nb.timeaxis.Timeline` (:mod:`collapse_nb.timeaxis.placement`), the same
module the checks order and pick their curves with.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import CollapseNBError
from ..ranks import one_rank
from ..timeaxis.placement import Timeline, floats, metric_timeline, sources_of, table_timeline, time_columns

PHASE_ORDER = ("train", "val", "test")
GRAD_VALUES = ("grad_norm", "weight_norm", "update_norm", "update_ratio")
#: Relative tolerance within which two files' per-epoch values count as the same value (a text log prints
#: 6 decimals of what a CSV holds in full).
AGREE_RTOL = 1e-5


class MissingDataError(CollapseNBError, ValueError):
    """A plot's input lacks the table or columns it needs; the message names them.

    Raised before any figure is made. A :class:`ValueError` and a :class:`collapse_nb.CollapseNBError`.
    """


# ---------------------------------------------------------------- metrics over time

def _phase_of(s: pd.Series) -> pd.Series:
    return s.astype(object).where(s.notna(), None) if len(s) else pd.Series([], dtype=object)


_METRIC_COLS = ["source", "sources", "segment", "phase", "param", "epoch", "level", "x", "value"]


def _empty_metric() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype=object if c in ("source", "sources", "phase", "param", "level")
                                      else "float64") for c in _METRIC_COLS})


def metric_over_time(run: Any, name: str, tl: Timeline | None = None) -> pd.DataFrame:
    """Rows of one canonical metric placed on the time axis of the files logging it (:func:`metric_timeline`).

    Columns ``source, sources, segment, phase, param, epoch, level, x, value``. ``level`` is ``"step"``
    for values logged at a step or batch, ``"epoch"`` for values logged once per epoch: rows with
    neither a step nor a batch, and rows without a batch from a file that gives its per-step rows one
    (a capture log's epoch summaries), placed at the epoch's end. Per-epoch values several files agree
    on (within :data:`AGREE_RTOL`) are kept once, ``sources`` naming every file that gave them (for
    other rows it is the row's own file); within one file the last value of an epoch wins.
    Non-finite values are kept. Rows that cannot be placed are left out and counted, per file, in
    ``attrs["unplaced"]``. A distributed run's rows are one rank's (:func:`collapse_nb.ranks.one_rank`).
    """
    s = one_rank(run.scalars)
    rows = s[(s["name"] == name).to_numpy(dtype=bool)]
    tl = tl if tl is not None else metric_timeline(run, name)
    if rows.empty or tl.kind is None:
        return _empty_metric()
    t = time_columns(rows)
    src = sources_of(rows)
    batched = {str(v) for v in s.loc[s["batch"].notna().to_numpy(dtype=bool), "source"].dropna().unique()} \
        if "source" in s.columns else set()
    no_batch = np.isnan(t["batch"])
    level = np.where(no_batch & (np.isnan(t["step"]) | np.isin(src, list(batched))), "epoch", "step")
    x = tl.positions(rows)
    out = pd.DataFrame({
        "source": src, "sources": [(v,) for v in src],
        "segment": np.nan_to_num(t["segment"], nan=0.0).astype(int),
        "phase": _phase_of(rows["phase"]).to_numpy(),
        "param": _phase_of(rows["param"]).to_numpy(),
        "epoch": t["epoch"], "level": level, "x": x, "value": rows["value"].to_numpy(dtype=float),
    })
    placed = ~np.isnan(x)
    unplaced = {str(k): int(v) for k, v in pd.Series(src[~placed]).value_counts().items()}
    out = out[placed]
    ep = out["level"] == "epoch"
    if ep.any():
        out = pd.concat([out[~ep], _merge_agreeing(out[ep])])
    out = out.sort_values(["segment", "x"], kind="stable").reset_index(drop=True)
    out.attrs["unplaced"] = unplaced
    return out


def _merge_agreeing(ep: pd.DataFrame) -> pd.DataFrame:
    """Per-epoch rows: the last per file and epoch; then files giving the same values merged into one
    series (first file's rows, plus epochs only the others have), ``sources`` naming them all."""
    keys = ["segment", "phase", "param", "epoch"]
    filled = ep.fillna({"phase": "", "param": ""})
    ep = ep.loc[filled.drop_duplicates(["source", *keys], keep="last").index]
    parts = []
    for _, series in ep.fillna({"phase": "", "param": ""}).groupby(["phase", "param"], sort=False):
        clusters: list[list[pd.DataFrame]] = []
        for _, rows in series.groupby("source", sort=False):
            vals = rows.set_index(["segment", "epoch"])["value"]
            for cl in clusters:
                ref = cl[0].set_index(["segment", "epoch"])["value"]
                common = ref.index.intersection(vals.index)
                if len(common) and np.allclose(ref.loc[common].to_numpy(float), vals.loc[common].to_numpy(float),
                                               rtol=AGREE_RTOL, atol=1e-12, equal_nan=True):
                    cl.append(rows)
                    break
            else:
                clusters.append([rows])
        for cl in clusters:
            merged = pd.concat(cl).drop_duplicates(["segment", "epoch"], keep="first")
            files = tuple(dict.fromkeys(str(r["source"].iloc[0]) for r in cl))
            merged = merged.assign(sources=[files] * len(merged))
            parts.append(merged)
    out = pd.concat(parts)
    for c in ("phase", "param"):
        out[c] = out[c].astype(object).where(out[c] != "", None)
    return out

def epoch_columns(epochs: pd.DataFrame, name: str) -> dict[str, str]:
    """``run.epochs`` columns holding ``name``, keyed by what they are: ``{"train": "train_loss", ...}``
    for phased names (plus ``""`` for the unphased ``loss``), ``{"lr": "lr", "lr_pg1": "lr_pg1"}`` for lr."""
    if name == "lr":
        return {c: c for c in epochs.columns if c == "lr" or str(c).startswith("lr_")}
    found = {p: f"{p}_{name}" for p in PHASE_ORDER if f"{p}_{name}" in epochs.columns}
    if name in epochs.columns:
        found[""] = name
    return found


def segment_starts(df: pd.DataFrame, x: str = "x") -> pd.DataFrame:
    """``segment, x``: where each restarted segment (segment > 0) begins on the axis ``x``."""
    if df.empty or "segment" not in df.columns:
        return pd.DataFrame({"segment": pd.Series([], dtype=int), "x": pd.Series([], dtype=float)})
    d = pd.DataFrame({"segment": floats(df["segment"]), "x": floats(df[x])}).dropna()
    first = d[d["segment"] > 0].groupby("segment")["x"].min().reset_index()
    first["segment"] = first["segment"].astype(int)
    return first


def val_train_ratio_table(epochs: pd.DataFrame) -> pd.DataFrame:
    """``segment, epoch, train_loss, val_loss, ratio`` (train / val) for epochs with both losses."""
    missing = [c for c in ("train_loss", "val_loss") if c not in epochs.columns]
    if missing:
        raise MissingDataError(f"needs run.epochs columns train_loss and val_loss; missing {', '.join(missing)} "
                               f"(run.epochs has: {', '.join(map(str, epochs.columns)) or 'no columns'})")
    out = pd.DataFrame({"segment": np.nan_to_num(floats(epochs["segment"]), nan=0.0).astype(int)
                        if "segment" in epochs.columns else 0,
                        "epoch": floats(epochs["epoch"]),
                        "train_loss": floats(epochs["train_loss"]), "val_loss": floats(epochs["val_loss"])})
    out = out.dropna(subset=["train_loss", "val_loss"])
    with np.errstate(divide="ignore", invalid="ignore"):
        out["ratio"] = out["train_loss"] / out["val_loss"]
    return out.reset_index(drop=True)


def outputs_over_time(run: Any, phase: str | None = None) -> tuple[pd.DataFrame, str | None]:
    """``run.outputs`` of one phase with a position ``x`` on the axis of the file(s) they come from
    (:func:`table_timeline`); ``phase=None`` takes train if logged, else all rows.

    Returns the table (sorted by segment and x) and the phase chosen. Rows that cannot be placed are
    left out and counted, per file, in ``attrs["unplaced"]``.
    """
    o = run.outputs
    if "phase" in o.columns and len(o):
        ph = o["phase"].astype(object)
        if phase is None:
            phase = "train" if (ph == "train").any() else None
        if phase is not None:
            o = o[(ph == phase).to_numpy(dtype=bool)]
    return _placed(o, table_timeline(run, run.outputs)), phase


def _placed(table: pd.DataFrame, tl: Timeline) -> pd.DataFrame:
    x = tl.positions(table) if tl.kind is not None else floats(table["epoch"]) if "epoch" in table else \
        np.full(len(table), np.nan)
    out = table.assign(x=x)
    ok = ~np.isnan(x)
    unplaced = {str(k): int(v) for k, v in pd.Series(sources_of(table)[~ok]).value_counts().items()}
    out = out[ok]
    if "segment" in out.columns:
        out = out.sort_values(["segment", "x"], kind="stable")
    out = out.reset_index(drop=True)
    out.attrs["unplaced"] = unplaced
    return out


def param_order(params: pd.Series) -> list[str]:
    """Parameter names in the order they were first logged (the model's order, as logged)."""
    return [str(p) for p in pd.unique(params.dropna().astype(str))]


def grads_over_time(run: Any) -> pd.DataFrame:
    """``run.grads`` with a position ``x`` on the axis of the file(s) they come from (:func:`table_timeline`),
    in the table's row order; rows without one are left out and counted in ``attrs["unplaced"]``."""
    g = run.grads
    if g.empty:
        return g.assign(x=pd.Series([], dtype=float))
    tl = table_timeline(run, g)
    x = tl.positions(g) if tl.kind is not None else floats(g["epoch"])
    g = g.assign(x=x)
    ok = ~np.isnan(x)
    out = g[ok].reset_index(drop=True)
    out.attrs["unplaced"] = {str(k): int(v) for k, v in pd.Series(sources_of(g)[~ok]).value_counts().items()}
    return out


def update_ratios(grads: pd.DataFrame) -> pd.Series:
    """update / weight norm per row: the logged ``update_ratio`` where there is one, else
    ``update_norm / weight_norm``; a zero weight norm gives NaN (no ratio), never inf."""
    upd, w = floats(grads["update_norm"]), floats(grads["weight_norm"])
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(w > 0, upd / w, np.nan)
    if "update_ratio" in grads.columns:
        logged = floats(grads["update_ratio"])
        r = np.where(np.isnan(logged), r, logged)
    return pd.Series(r, index=grads.index, name="update_ratio")


def grad_flow_table(grads: pd.DataFrame, at: float | None = None) -> pd.DataFrame:
    """Per parameter (model order): ``param, mean, max, min, n_logged, n_zero, dead`` of ``grad_norm``.

    ``grads`` needs ``param``, ``grad_norm`` and, when ``at`` is given, ``x`` (from
    :func:`grads_over_time`): then only rows at that position count. ``dead`` is True where the
    gradient norm is exactly 0 at every logged row. Parameters with no finite value are left out.
    """
    missing = [c for c in ("param", "grad_norm") + (("x",) if at is not None else ()) if c not in grads.columns]
    if missing:
        raise MissingDataError(f"needs run.grads columns param and grad_norm; missing {', '.join(missing)}")
    g = grads
    if at is not None:
        g = g[floats(g["x"]) == float(at)]
    g = pd.DataFrame({"param": g["param"].astype(object).to_numpy(), "v": floats(g["grad_norm"])})
    g = g[np.isfinite(g["v"]) & g["param"].notna()]
    order = param_order(g["param"])
    g["param"] = g["param"].astype(str)
    agg = g.groupby("param", sort=False)["v"].agg(mean="mean", max="max", min="min", n_logged="count",
                                                  n_zero=lambda v: int((v == 0).sum()))
    agg = agg.reindex(order).reset_index()
    agg["n_logged"] = agg["n_logged"].astype(int)
    agg["n_zero"] = agg["n_zero"].astype(int)
    agg["dead"] = (agg["n_logged"] > 0) & (agg["n_zero"] == agg["n_logged"])
    return agg


def grads_matrix(grads: pd.DataFrame, values: pd.Series | str = "grad_norm") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Parameters x logged positions: the wide table a heatmap draws.

    ``grads`` needs ``param``, ``segment``, ``x`` (see :func:`grads_over_time`); ``values`` is a
    column name or a Series aligned with ``grads``. Returns ``(matrix, columns)``: ``matrix`` has
    one row per parameter (model order) and one column per ``(segment, x)`` in time order (the last
    value wins where a position repeats), ``columns`` is the ``segment, x`` of each column.
    """
    v = floats(grads[values] if isinstance(values, str) else values)
    d = pd.DataFrame({"param": grads["param"].astype(object).to_numpy(),
                      "segment": np.nan_to_num(floats(grads["segment"]), nan=0.0).astype(int),
                      "x": floats(grads["x"]), "v": v}).dropna(subset=["param", "x"])
    d["param"] = d["param"].astype(str)
    order = param_order(d["param"])
    wide = d.pivot_table(index="param", columns=["segment", "x"], values="v", aggfunc="last", dropna=False)
    wide = wide.reindex(index=order, columns=sorted(set(zip(d["segment"], d["x"]))))
    cols = pd.DataFrame(list(wide.columns), columns=["segment", "x"])
    wide.columns = range(wide.shape[1])
    return wide, cols


def param_norm_changes(params: pd.DataFrame) -> pd.DataFrame:
    """Relative change of each parameter's norm between consecutive checkpoints.

    ``params`` is ``run.params`` (``checkpoint, step, param, norm``). Checkpoints are ordered by
    step (then as listed). Returns ``param, from_checkpoint, to_checkpoint, from_step, to_step,
    norm_before, norm_after, rel_change`` (signed, ``(after - before) / before``; 0 where both are
    0, NaN where only ``before`` is) and ``frozen`` (the norm did not change at any transition).
    Where a checkpoint holds several state dicts (``state``: model, EMA, ...), its first one counts.
    """
    missing = [c for c in ("checkpoint", "param", "norm") if c not in params.columns]
    if missing:
        raise MissingDataError(f"needs run.params columns checkpoint, param and norm; missing {', '.join(missing)}"
                               f" (run.params has: {', '.join(map(str, params.columns)) or 'no columns'})")
    if "state" in params.columns and params["state"].notna().any():      # several state dicts (model, ema):
        first = params.groupby("checkpoint", sort=False)["state"].transform("first")  # each file's first one
        params = params[(params["state"] == first) | first.isna()]
    p = pd.DataFrame({"checkpoint": params["checkpoint"].astype(str).to_numpy(),
                      "step": floats(params["step"]) if "step" in params.columns else np.nan,
                      "param": params["param"].astype(str).to_numpy(), "norm": floats(params["norm"])})
    ck = p.drop_duplicates("checkpoint")[["checkpoint", "step"]].reset_index(drop=True)
    ck["first"] = ck.index
    ck = ck.sort_values(["step", "first"], kind="stable", na_position="last").reset_index(drop=True)
    if len(ck) < 2:
        raise MissingDataError(f"needs run.params from at least 2 checkpoints; found {len(ck)}")
    wide = p.drop_duplicates(["checkpoint", "param"], keep="last").pivot(index="param", columns="checkpoint",
                                                                         values="norm")
    wide = wide.reindex(index=param_order(p["param"]), columns=ck["checkpoint"])
    parts = []
    for (a, sa), (b, sb) in zip(ck[["checkpoint", "step"]].itertuples(index=False),
                                ck[["checkpoint", "step"]].iloc[1:].itertuples(index=False)):
        before, after = wide[a].to_numpy(dtype=float), wide[b].to_numpy(dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.where(before != 0, (after - before) / np.abs(before), np.where(after == 0, 0.0, np.nan))
        parts.append(pd.DataFrame({"param": wide.index, "from_checkpoint": a, "to_checkpoint": b, "from_step": sa,
                                   "to_step": sb, "norm_before": before, "norm_after": after, "rel_change": rel}))
    out = pd.concat(parts, ignore_index=True)
    known = out.dropna(subset=["rel_change"])
    frozen = known.groupby("param")["rel_change"].apply(lambda r: bool((r == 0).all()))
    out["frozen"] = out["param"].map(frozen).fillna(False).astype(bool)
    return out
