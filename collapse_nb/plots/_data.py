"""The tables the plots draw, as plain pandas (no matplotlib here).

Notebooks, widgets and the report can call these to get exactly the numbers a
plot shows. Every function takes the run's tables (or a run) and returns a new
DataFrame; nothing is mutated (the time axes are memoised per run, see below).

The time axis of a plot is that of the files its rows come from: a
:class:`collapse_nb.timeaxis.Timeline` (:mod:`collapse_nb.timeaxis.placement`), the same
module the checks order and pick their curves with.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..errors import CollapseNBError
from ..ranks import one_rank
from ..timeaxis.placement import Timeline, floats, metric_timeline, sources_of, table_timeline, time_columns

if TYPE_CHECKING:
    from ..run import Run

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


def metric_over_time(run: Run, name: str, tl: Timeline | None = None) -> pd.DataFrame:
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


def metric_points(run: Run, name: str) -> tuple[pd.DataFrame, str]:
    """One metric's rows on its time axis and that axis' label: :func:`metric_over_time` on the axis of
    the files logging it, or, where they logged only per-epoch values (no step, no batch), the values at
    their epoch (``x = epoch``, label ``"epoch"``, the per-epoch plots' placement). Same columns as
    :func:`metric_over_time`; rows without a place are counted in ``attrs["unplaced"]``."""
    tl = metric_timeline(run, name)
    if tl.kind is not None:
        return metric_over_time(run, name, tl), tl.label
    s = one_rank(run.scalars)
    rows = s[(s["name"] == name).to_numpy(dtype=bool)]
    if rows.empty:
        return _empty_metric(), "epoch"
    t = time_columns(rows)
    src = sources_of(rows)
    out = pd.DataFrame({
        "source": src, "sources": [(v,) for v in src],
        "segment": np.nan_to_num(t["segment"], nan=0.0).astype(int),
        "phase": _phase_of(rows["phase"]).to_numpy(), "param": _phase_of(rows["param"]).to_numpy(),
        "epoch": t["epoch"], "level": "epoch", "x": t["epoch"], "value": rows["value"].to_numpy(dtype=float)})
    placed = ~np.isnan(out["x"].to_numpy(float))
    unplaced = {str(k): int(v) for k, v in pd.Series(src[~placed]).value_counts().items()}
    out = _merge_agreeing(out[placed]) if placed.any() else out[placed]
    out = out.sort_values(["segment", "x"], kind="stable").reset_index(drop=True)
    out.attrs["unplaced"] = unplaced
    return out, "epoch"


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


def outputs_over_time(run: Run, phase: str | None = None) -> tuple[pd.DataFrame, str | None]:
    """``run.outputs`` of one phase with a position ``x`` on the axis of the file(s) they come from
    (:func:`table_timeline`); ``phase=None`` takes train if logged, else all rows.

    Returns the table (sorted by segment and x) and the phase chosen. Rows that cannot be placed are
    left out and counted, per file, in ``attrs["unplaced"]``.
    """
    o, phase = one_phase(run.outputs, phase)
    return _placed(o, table_timeline(run, run.outputs)), phase


def one_phase(o: pd.DataFrame, phase: str | None = None) -> tuple[pd.DataFrame, str | None]:
    """The rows of ``o`` of one ``phase`` (``None``: train if logged, else all rows), and the phase chosen."""
    if "phase" in o.columns and len(o):
        ph = o["phase"].astype(object)
        if phase is None:
            phase = "train" if (ph == "train").any() else None
        if phase is not None:
            o = o[(ph == phase).to_numpy(dtype=bool)]
    return o, phase


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


def grads_over_time(run: Run) -> pd.DataFrame:
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


# ---------------------------------------------------------------- many parameters: modules, worst first

def module_of(param: Any) -> str:
    """A parameter's module: its name up to the last ``.`` (``encoder.layers.3.attn.q_proj`` for
    ``encoder.layers.3.attn.q_proj.weight``), the name itself when it has no ``.``."""
    p = str(param)
    return p.rsplit(".", 1)[0] if "." in p else p


def worst_modules(params: pd.Series, bad: pd.Series, far: pd.Series, max_rows: int) -> tuple[list[int], dict[str, int]]:
    """Which rows of a per-parameter table to show when it has more than ``max_rows``.

    Parameters are grouped by module (:func:`module_of`); modules are ranked worst first: the most
    parameters flagged ``bad`` (dead, frozen), then the largest ``far`` (how far a parameter's value is
    from the typical one, e.g. ``|log10(norm / median)|``), then model order. Whole modules are taken in
    that order while they fit, the first one that does not fit cut to its worst parameters; within a
    module, rows keep their order. Returns the row positions to show (modules worst first) and
    ``{"params": ..., "modules": ...}`` left out (modules with at least one parameter not shown).
    All rows, in order, when they fit.
    """
    n = len(params)
    if n <= max_rows:
        return list(range(n)), {"params": 0, "modules": 0}
    d = pd.DataFrame({"module": [module_of(p) for p in params], "bad": np.asarray(bad, dtype=bool),
                      "far": np.nan_to_num(np.asarray(far, dtype=float), nan=0.0), "pos": np.arange(n)})
    agg = d.groupby("module", sort=False).agg(bad=("bad", "sum"), far=("far", "max"), first=("pos", "min"))
    agg = agg.sort_values(["bad", "far", "first"], ascending=[False, False, True], kind="stable")
    keep: list[int] = []
    for module in agg.index:
        rows = d[d["module"] == module]
        room = max_rows - len(keep)
        if room <= 0:
            break
        if len(rows) > room:
            rows = rows.sort_values(["bad", "far", "pos"], ascending=[False, False, True]).head(room).sort_values("pos")
        keep += rows["pos"].tolist()
    shown = set(keep)
    left = d[~d["pos"].isin(shown)]
    return keep, {"params": int(len(left)), "modules": int(left["module"].nunique())}


def distance_from_median(values: Any) -> np.ndarray:
    """``|log10(v / median)|`` of the positive finite values (0 for the others): how unusual each is."""
    v = np.asarray(values, dtype=float)
    ok = np.isfinite(v) & (v > 0)
    out = np.zeros(len(v))
    if ok.any():
        logs = np.log10(v[ok])
        out[ok] = np.abs(logs - np.median(logs))
    return out


# ---------------------------------------------------------------- every logged scalar: panels by name prefix

#: Per-parameter norms: drawn by the gradient plots (``run.grads``), not as metrics panels.
PARAM_NORMS = frozenset({"grad_norm", "weight_norm", "update_norm", "update_ratio", "weight_norm_before"})


def name_prefix(raw_name: Any) -> str:
    """The group a logged name belongs to: its first ``/``-separated part with the slash
    (``metrics/`` for ``metrics/mAP50(B)``, ``val/`` for ``val/rmse_loss``), ``""`` without one."""
    raw = str(raw_name).strip("/")
    return raw.split("/", 1)[0] + "/" if "/" in raw else ""


def metric_panels(run: Run, prefix: str | None = None) -> pd.DataFrame:
    """One row per panel of the "all metrics" small multiples: every logged scalar series of ``run``.

    A panel is one canonical name (``run.series``) with all its phases (train / val / test drawn in
    it by colour) and, for a value logged per param group (``lr`` of ``pg0``, ``pg1``), its groups;
    per-parameter norms are left to the gradient plots (``run.grads``). Columns: ``group`` (the figure:
    the name's prefix, :func:`name_prefix`, of its first raw name in phase order; a prefix only one
    panel has goes to the ``""`` group, the figure of names without a prefix), ``prefix`` (its own),
    ``name``, ``title`` (the raw names as logged), ``phases``, ``params``, ``raw_names``, ``role``,
    ``points`` (of its longest phase / group) and ``kind``: ``"curve"``, or ``"value"`` for a series
    logged at most once per phase (shown as a value, not a plot). Ordered by group (prefixes in order,
    ``""`` last), then role and name as ``run.series``. ``prefix``: only that group's rows (``"metrics"``
    or ``"metrics/"``; ``""`` for the names without a prefix).
    """
    cat = run.series
    cols = ["group", "prefix", "name", "title", "phases", "params", "raw_names", "role", "points", "kind"]
    rows: dict[str, dict[str, Any]] = {}
    order_phase: dict[str | None, int] = {p: i for i, p in enumerate(PHASE_ORDER)}
    if len(cat):
        for r in cat.itertuples(index=False):
            name = str(r.name)
            p = rows.setdefault(name, {"name": name, "phases": [], "raws": [], "params": (), "role": r.role,
                                       "points": 0})
            phase = None if r.phase is None or (isinstance(r.phase, float) and np.isnan(r.phase)) else str(r.phase)
            if phase not in p["phases"]:
                p["phases"].append(phase)
            p["raws"].append((order_phase.get(phase, len(PHASE_ORDER)), tuple(str(x) for x in r.raw_names)))
            if p["role"] == "summary":                   # a summary row's role only when nothing else is logged
                p["role"] = r.role
            p["points"] = max(p["points"], int(r.points))
    s = one_rank(run.scalars)
    if "param" in s.columns and s["param"].notna().any():
        grouped = s[s["param"].notna().to_numpy(dtype=bool) & ~s["name"].astype(str).isin(PARAM_NORMS).to_numpy()]
        if len(grouped):
            counts = grouped.groupby([grouped["name"].astype(str), grouped["param"].astype(str)],
                                     observed=True).size()
            raws = grouped.groupby(grouped["name"].astype(str), observed=True)["raw_name"].agg(
                lambda v: tuple(sorted({str(x) for x in v})))
            for name, n in counts.groupby(level=0):
                p = rows.setdefault(name, {"name": name, "phases": [None], "raws": [], "params": (), "role": "other",
                                           "points": 0})
                p["params"] = tuple(n.index.get_level_values(1))
                p["raws"].append((len(PHASE_ORDER) + 1, raws[name]))
                p["points"] = max(p["points"], int(n.max()))
    if not rows:
        return pd.DataFrame(columns=cols)
    out = []
    for name, p in rows.items():
        raws = [x for _, rs in sorted(p["raws"], key=lambda t: t[0]) for x in rs]
        raws = list(dict.fromkeys(raws))
        pre = next((name_prefix(x) for x in raws if name_prefix(x)), "")
        phases = sorted(p["phases"], key=lambda ph: order_phase.get(ph, len(PHASE_ORDER)))
        title = ", ".join(raws[:2]) + (f" (+{len(raws) - 2})" if len(raws) > 2 else "") if raws else name
        out.append({"prefix": pre, "name": name, "title": title, "phases": tuple(phases), "params": p["params"],
                    "raw_names": tuple(raws), "role": p["role"], "points": p["points"],
                    "kind": "value" if p["points"] <= 1 else "curve"})
    df = pd.DataFrame(out)
    sizes = df["prefix"].map(df["prefix"].value_counts())
    df["group"] = np.where((df["prefix"] != "") & (sizes >= 2), df["prefix"], "")
    from ..series import ROLES
    role_rank = df["role"].map(lambda r: ROLES.index(r) if r in ROLES else len(ROLES))
    df = df.assign(_g=df["group"].eq(""), _gk=df["group"].map(_natural), _r=role_rank,
                   _nk=df["name"].map(_natural)).sort_values(["_g", "_gk", "_r", "_nk"], kind="stable")
    df = df.reset_index(drop=True)[cols]
    if prefix is not None:
        want = prefix if prefix == "" or prefix.endswith("/") else prefix + "/"
        df = df[(df["group"] == want) | ((df["prefix"] == want) & (want != ""))].reset_index(drop=True)
    return df


def _natural(text: Any) -> tuple:
    """A sort key reading the numbers in a name as numbers: ``metric_2`` before ``metric_10``."""
    import re
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", str(text)) if t)


def metric_groups(run: Run) -> list[str]:
    """The groups of :func:`metric_panels` (one figure each), in order; ``""`` is the names without a prefix."""
    return list(dict.fromkeys(metric_panels(run)["group"]))
