"""The tables the plots draw, as plain pandas (no matplotlib here).

Notebooks, widgets and the report can call these to get exactly the numbers a
plot shows. Every function takes the run's tables (or a run) and returns a new
DataFrame; nothing is cached or mutated.

Where a run logged no global step (the seed report's ``EPOCH e | BATCH b/n``
blocks), positions on the time axis are *counted batches*:
``(epoch - first_epoch) * batches_per_epoch + batch`` (see :class:`Timeline`),
so the loss, the outputs and the gradients of one run share one axis.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import CollapseNBError

PHASE_ORDER = ("train", "val", "test")
GRAD_VALUES = ("grad_norm", "weight_norm", "update_norm", "update_ratio")
NEEDED_TIME = ("segment", "epoch", "batch", "step")


class MissingDataError(CollapseNBError, ValueError):
    """A plot's input lacks the table or columns it needs; the message names them.

    Raised before any figure is made. A :class:`ValueError` and a :class:`collapse_nb.CollapseNBError`.
    """


def _floats(s: pd.Series) -> np.ndarray:
    return pd.to_numeric(s, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def _time_cols(df: pd.DataFrame) -> dict[str, np.ndarray]:
    n = len(df)
    return {c: (_floats(df[c]) if c in df.columns else np.full(n, np.nan)) for c in NEEDED_TIME}


@dataclass(frozen=True)
class Timeline:
    """How rows of a run are placed on one time axis.

    ``kind`` is ``"step"`` (the logged global step), ``"batch"`` (no step logged: batches counted
    as ``(epoch - first_epoch) * batches_per_epoch + batch``) or ``None`` (neither: only epochs).
    ``epoch_ends`` maps ``(segment, epoch)`` to the last position logged in that epoch, where
    epoch-level values (a validation loss) are placed.
    """

    kind: str | None
    batches_per_epoch: int = 0
    first_epoch: float = 0.0
    epoch_ends: dict[tuple[int, float], float] = field(default_factory=dict, compare=False)

    @property
    def label(self) -> str:
        if self.kind == "step":
            return "step"
        if self.kind == "batch":
            return f"batch (counted, {self.batches_per_epoch}/epoch; no step logged)"
        return "epoch"

    @property
    def unit(self) -> str:
        """One word for a position: ``step``, ``batch`` or ``epoch``."""
        return self.kind or "epoch"

    def positions(self, df: pd.DataFrame, epoch_level: bool = True) -> np.ndarray:
        """Each row's position (NaN where it cannot be placed).

        Rows with a step (kind ``step``) or an epoch and batch (kind ``batch``) are placed where
        they were logged; with ``epoch_level``, rows with only an epoch go to that epoch's end.
        """
        t = _time_cols(df)
        x = np.full(len(df), np.nan)
        if self.kind == "step":
            x = t["step"].copy()
        elif self.kind == "batch":
            x = (np.floor(t["epoch"]) - self.first_epoch) * self.batches_per_epoch + t["batch"]
        if epoch_level and self.kind is not None:
            only_epoch = np.isnan(t["step"]) & np.isnan(t["batch"]) & ~np.isnan(t["epoch"])
            if only_epoch.any():
                seg = np.nan_to_num(t["segment"], nan=0.0)
                ends = [self.epoch_end(int(s), e) for s, e in zip(seg[only_epoch], t["epoch"][only_epoch])]
                x[only_epoch] = ends
        return x

    def epoch_end(self, segment: int, epoch: float) -> float:
        key = (int(segment), float(np.ceil(epoch - 1e-6)) + 0.0)
        if key in self.epoch_ends:
            return self.epoch_ends[key]
        if self.kind == "batch":
            return (key[1] - self.first_epoch) * self.batches_per_epoch + self.batches_per_epoch - 1
        return np.nan


def timeline(scalars: pd.DataFrame) -> Timeline:
    """The run's time axis (see :class:`Timeline`), worked out from ``run.scalars``."""
    t = _time_cols(scalars)
    if (~np.isnan(t["step"])).any():
        kind, per, first = "step", 0, 0.0
        x = t["step"]
    elif (~np.isnan(t["epoch"]) & ~np.isnan(t["batch"])).any():
        ok = ~np.isnan(t["epoch"]) & ~np.isnan(t["batch"])
        kind = "batch"
        per = int(np.nanmax(t["batch"][ok])) + 1
        first = float(np.floor(np.nanmin(t["epoch"][ok])))
        x = (np.floor(t["epoch"]) - first) * per + t["batch"]
    else:
        return Timeline(None)
    ok = ~np.isnan(x) & ~np.isnan(t["epoch"])
    ends: dict[tuple[int, float], float] = {}
    if ok.any():
        seg = np.nan_to_num(t["segment"][ok], nan=0.0).astype(int)
        key = pd.DataFrame({"s": seg, "e": np.ceil(t["epoch"][ok] - 1e-6) + 0.0, "x": x[ok]})
        ends = {(int(s), float(e)): float(v) for (s, e), v in key.groupby(["s", "e"])["x"].max().items()}
    return Timeline(kind, per, first, ends)


def _phase_of(s: pd.Series) -> pd.Series:
    return s.astype(object).where(s.notna(), None) if len(s) else pd.Series([], dtype=object)


def metric_over_time(run: Any, name: str) -> pd.DataFrame:
    """Rows of one canonical metric placed on the run's time axis.

    Columns ``source, segment, phase, param, epoch, level, x, value``: ``level`` is ``"step"`` for
    values logged at a step or batch, ``"epoch"`` for values logged once per epoch (placed at the
    epoch's last logged position; where several files give the same epoch value, the last wins).
    Rows that cannot be placed are left out. Non-finite values are kept.
    """
    s = run.scalars
    rows = s[s["name"] == name]
    tl = timeline(s)
    cols = ["source", "segment", "phase", "param", "epoch", "level", "x", "value"]
    if rows.empty or tl.kind is None:
        return pd.DataFrame({c: pd.Series([], dtype=object if c in ("source", "phase", "param", "level")
                                          else "float64") for c in cols})
    t = _time_cols(rows)
    level = np.where(np.isnan(t["step"]) & np.isnan(t["batch"]), "epoch", "step")
    out = pd.DataFrame({
        "source": rows["source"].astype(object).to_numpy(),
        "segment": np.nan_to_num(t["segment"], nan=0.0).astype(int),
        "phase": _phase_of(rows["phase"]).to_numpy(),
        "param": _phase_of(rows["param"]).to_numpy(),
        "epoch": t["epoch"], "level": level, "x": tl.positions(rows), "value": rows["value"].to_numpy(),
    })
    out = out[~np.isnan(out["x"].to_numpy(dtype=float))]
    ep = out["level"] == "epoch"
    if ep.any():
        keys = ["segment", "phase", "param", "epoch"]
        last = out[ep].fillna({"phase": "", "param": ""}).drop_duplicates(keys, keep="last").index
        out = pd.concat([out[~ep], out.loc[last]])
    return out.sort_values(["segment", "x"], kind="stable").reset_index(drop=True)


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
    d = pd.DataFrame({"segment": _floats(df["segment"]), "x": _floats(df[x])}).dropna()
    first = d[d["segment"] > 0].groupby("segment")["x"].min().reset_index()
    first["segment"] = first["segment"].astype(int)
    return first


def val_train_ratio_table(epochs: pd.DataFrame) -> pd.DataFrame:
    """``segment, epoch, train_loss, val_loss, ratio`` (train / val) for epochs with both losses."""
    missing = [c for c in ("train_loss", "val_loss") if c not in epochs.columns]
    if missing:
        raise MissingDataError(f"needs run.epochs columns train_loss and val_loss; missing {', '.join(missing)} "
                               f"(run.epochs has: {', '.join(map(str, epochs.columns)) or 'no columns'})")
    out = pd.DataFrame({"segment": np.nan_to_num(_floats(epochs["segment"]), nan=0.0).astype(int)
                        if "segment" in epochs.columns else 0,
                        "epoch": _floats(epochs["epoch"]),
                        "train_loss": _floats(epochs["train_loss"]), "val_loss": _floats(epochs["val_loss"])})
    out = out.dropna(subset=["train_loss", "val_loss"])
    with np.errstate(divide="ignore", invalid="ignore"):
        out["ratio"] = out["train_loss"] / out["val_loss"]
    return out.reset_index(drop=True)


def outputs_over_time(run: Any, phase: str | None = None) -> tuple[pd.DataFrame, str | None]:
    """``run.outputs`` of one phase with a position ``x``; ``phase=None`` takes train if logged, else all rows.

    Returns the table (sorted by segment and x) and the phase chosen.
    """
    o = run.outputs
    if "phase" in o.columns and len(o):
        ph = o["phase"].astype(object)
        if phase is None:
            phase = "train" if (ph == "train").any() else None
        if phase is not None:
            o = o[ph == phase]
    tl = timeline(run.scalars)
    out = o.assign(x=tl.positions(o)) if tl.kind is not None else o.assign(x=_floats(o["epoch"]))
    out = out[~np.isnan(out["x"].to_numpy(dtype=float))]
    return out.sort_values(["segment", "x"], kind="stable").reset_index(drop=True), phase


def param_order(params: pd.Series) -> list[str]:
    """Parameter names in the order they were first logged (the model's order, as logged)."""
    return [str(p) for p in pd.unique(params.dropna().astype(str))]


def grads_over_time(run: Any) -> pd.DataFrame:
    """``run.grads`` with a position ``x`` on the run's time axis (rows without one are left out)."""
    g = run.grads
    tl = timeline(run.scalars)
    if g.empty:
        return g.assign(x=pd.Series([], dtype=float))
    x = tl.positions(g) if tl.kind is not None else _floats(g["epoch"])
    g = g.assign(x=x)
    return g[~np.isnan(g["x"].to_numpy(dtype=float))].reset_index(drop=True)


def update_ratios(grads: pd.DataFrame) -> pd.Series:
    """update / weight norm per row: the logged ``update_ratio`` where there is one, else
    ``update_norm / weight_norm``; a zero weight norm gives NaN (no ratio), never inf."""
    upd, w = _floats(grads["update_norm"]), _floats(grads["weight_norm"])
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(w > 0, upd / w, np.nan)
    if "update_ratio" in grads.columns:
        logged = _floats(grads["update_ratio"])
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
        g = g[_floats(g["x"]) == float(at)]
    g = pd.DataFrame({"param": g["param"].astype(object).to_numpy(), "v": _floats(g["grad_norm"])})
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
    v = _floats(grads[values] if isinstance(values, str) else values)
    d = pd.DataFrame({"param": grads["param"].astype(object).to_numpy(),
                      "segment": np.nan_to_num(_floats(grads["segment"]), nan=0.0).astype(int),
                      "x": _floats(grads["x"]), "v": v}).dropna(subset=["param", "x"])
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
                      "step": _floats(params["step"]) if "step" in params.columns else np.nan,
                      "param": params["param"].astype(str).to_numpy(), "norm": _floats(params["norm"])})
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
