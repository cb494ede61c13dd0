"""The numbers behind ``rank_desync``: the ranks of a distributed run side by side, series by series.

- :func:`rank_matrices`: per series (a name, or a name and its parameter), one row per time point and one
  column per rank, the mean of what that rank logged there;
- :func:`compare_synced`: a series the ranks agree on while the run is young (after an all-reduce they
  hold the same number: gradient norm, weight norms, loss scale, lr, an all-reduced loss) and where each
  rank leaves the ranks' median by more than a relative tolerance;
- :func:`compare_local`: a series each rank computes on its own batches (the local loss), where a rank's
  smoothed distance from the ranks' median moves away from the offset it had early, beyond the noise;
- :func:`compare_checkpoints`: the same parameter in the ranks' copies of one checkpoint.
"""
from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd

from ..ranks import rank_from_path, without_rank
from ..timeaxis import where

TIME = ["segment", "step", "epoch", "batch"]


def rank_matrices(scalars: pd.DataFrame, names: set[str], per_param: set[str]) -> dict[str, dict[str, Any]]:
    """``{series: {"name", "param", "ranks", "values" (time x rank), "where" (per time point)}}`` for the series
    of ``names`` (without a parameter) and of ``per_param`` (with one) that two or more ranks log."""
    s = scalars[scalars["rank"].notna()] if "rank" in scalars else scalars.iloc[:0]
    if s.empty:
        return {}
    name = s["name"].astype(str)
    plain = name.isin(names) & s["param"].isna()
    scoped = name.isin(per_param) & s["param"].notna()
    s = s[(plain | scoped).to_numpy()]
    if s.empty:
        return {}
    train = s["phase"].isna() | (s["phase"] == "train")
    s = s[train.to_numpy()]
    key = s["name"].astype(str) + np.where(s["param"].isna(), "", "/" + s["param"].astype(str))
    frame = pd.DataFrame({"series": key.to_numpy(), **{c: s[c].to_numpy(dtype="float64", na_value=np.nan)
                                                        for c in TIME},
                          "rank": s["rank"].to_numpy(dtype="int64", na_value=-1), "value": s["value"].to_numpy()})
    frame["segment"] = frame["segment"].fillna(0)
    frame = frame[frame[["step", "epoch", "batch"]].notna().any(axis=1)]     # a value at no time point is no point
    out = {}
    for series, g in frame.groupby("series", sort=True):
        if g["rank"].nunique() < 2:
            continue
        wide = g.groupby(TIME + ["rank"], dropna=False)["value"].mean().unstack("rank")
        wide = wide[wide.notna().sum(axis=1) >= 2]
        if wide.empty:
            continue
        idx = wide.index.to_frame(index=False)
        out[series] = {"name": series.split("/", 1)[0], "param": series.split("/", 1)[1] if "/" in series else None,
                       "ranks": [int(r) for r in wide.columns], "values": wide.to_numpy(dtype="float64"),
                       "where": [where(r) for r in idx.to_dict(orient="records")]}
    return out


def _median(v: np.ndarray) -> np.ndarray:
    """Row medians ignoring NaN (NaN for an all-NaN row, without a warning)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(v, axis=1)


def _relative(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each value's relative distance from its time point's median over the ranks (inf where one rank's value
    is NaN or inf and the median's is not, or the other way round; NaN where the rank logged nothing)."""
    finite = np.isfinite(v)
    med = _median(np.where(finite, v, np.nan))
    with np.errstate(all="ignore"):
        rel = np.abs(v - med[:, None]) / np.maximum(np.abs(med), 1e-12)[:, None]
    logged = ~np.isnan(v) | np.isinf(v)
    rel = np.where(~finite & logged, np.inf, rel)
    rel = np.where(np.isnan(v) & ~np.isinf(v), np.nan, rel)
    return rel, med


def baseline_rows(n: int, frac: float, minimum: int) -> int:
    return min(n, max(minimum, int(math.ceil(n * frac))))


def is_synced(v: np.ndarray, rtol: float, frac: float, share: float) -> bool:
    """Whether the ranks agree on the series (within ``rtol`` of their median) at ``share`` of the first
    ``frac`` of its time points: a value they all hold after an all-reduce, not one each computes alone."""
    rel, _ = _relative(v)
    base = rel[:baseline_rows(len(rel), frac, 5)]
    agree = np.all((base <= rtol) | np.isnan(base), axis=1)
    return bool(len(agree)) and float(agree.mean()) >= share


def compare_synced(m: dict[str, Any], rtol: float, min_steps: int) -> list[dict[str, Any]]:
    """The ranks that leave the median of a synchronised series at ``min_steps`` or more time points: per rank
    ``rank, first (index), first_where, steps, share_after (of the points from the first one on), max_rel,
    value, median`` (at its first disagreement)."""
    v = m["values"]
    rel, med = _relative(v)
    out = []
    for j, rank in enumerate(m["ranks"]):
        bad = rel[:, j] > rtol
        n_bad = int(bad.sum())
        if n_bad < min_steps:
            continue
        first = int(np.argmax(bad))
        after = rel[first:, j]
        logged = ~np.isnan(after)
        out.append({"rank": rank, "first": first, "first_where": m["where"][first], "steps": n_bad,
                    "share_after": float(bad[first:][logged].mean()) if logged.any() else 0.0,
                    "max_rel": float(np.nanmax(rel[:, j])), "value": float(v[first, j]), "median": float(med[first])})
    return out


def compare_local(m: dict[str, Any], window: int, z: float, rel_floor: float, frac: float,
                  persist_share: float) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Ranks whose local value drifts from the others: per rank ``rank, first, first_where, steps, share_after,
    drift`` (the smoothed distance from the median beyond its early offset, at its largest) and ``noise``;
    and the series' noise figures (``noise``: robust sd of a rank's distance from the median around its early
    offset; ``threshold_floor``)."""
    v = np.where(np.isfinite(m["values"]), m["values"], np.nan)
    med = _median(v)
    dist = v - med[:, None]
    nb = baseline_rows(len(v), frac, window)
    offset = _median(dist[:nb].T)                        # per rank, its early distance from the median
    resid = dist - offset[None, :]
    base = resid[:nb][~np.isnan(resid[:nb])]
    noise = 1.4826 * float(np.median(np.abs(base - np.median(base)))) if len(base) else 0.0
    smooth = pd.DataFrame(resid).rolling(window, center=True, min_periods=max(2, window // 2)).median().to_numpy()
    level = np.abs(pd.Series(med).rolling(window, center=True, min_periods=1).median().to_numpy())
    thr = np.maximum(z * noise, rel_floor * level)
    out = []
    for j, rank in enumerate(m["ranks"]):
        with np.errstate(invalid="ignore"):
            flag = np.abs(smooth[:, j]) > thr
        first = _persistent_start(flag, window, persist_share)
        if first is None:
            continue
        start = first                                   # back to where it left the noise band
        while start > 0 and np.abs(smooth[start - 1, j]) > max(noise, 1e-12) and start - 1 >= nb // 2:
            start -= 1
        k = int(np.nanargmax(np.abs(smooth[first:, j]))) + first
        out.append({"rank": rank, "first": start, "first_where": m["where"][start], "steps": int(flag[first:].sum()),
                    "share_after": float(flag[first:].mean()), "drift": float(smooth[k, j]),
                    "drift_where": m["where"][k],
                    "level": float(level[k]), "threshold": float(thr[k])})
    return out, {"noise": noise, "threshold_floor": rel_floor}


def _persistent_start(flag: np.ndarray, window: int, share: float) -> int | None:
    """The first index of a run of ``window`` flagged points, or from which ``share`` of the rest (at least
    ``window`` points) is flagged; ``None`` when the flags are scattered noise."""
    idx = np.flatnonzero(flag)
    if len(idx) < window:
        return None
    run_start, run = idx[0], 1
    for a, b in zip(idx[:-1], idx[1:]):
        run = run + 1 if b == a + 1 else 1
        if run == 1:
            run_start = b
        if run >= window:
            return int(run_start)
    for i in idx:
        rest = flag[i:]
        if len(rest) >= window and rest.mean() >= share:
            return int(i)
    return None


def compare_checkpoints(params: pd.DataFrame, rtol: float) -> dict[str, Any]:
    """The ranks' copies of each checkpoint (files named by rank: ``rank_1/model.pt``), tensor by tensor.

    Returns ``{"checkpoints": n compared, "ranks": [...], "tensors": n compared, "sharded": [names], "differ":
    DataFrame(checkpoint, step, param, rank, norm, reference, rel_diff)}``; ``checkpoints`` 0 when no checkpoint
    has copies from two ranks. A checkpoint whose copies hold tensors of different sizes is a sharded one
    (each rank its part), listed in ``sharded`` and not compared.
    """
    empty = {"checkpoints": 0, "ranks": [], "tensors": 0, "sharded": [], "differ": pd.DataFrame()}
    if params is None or params.empty or "source" not in params or "norm" not in params:
        return empty
    src = params["source"].astype(str)
    rank_of = {s: rank_from_path(s) for s in src.unique()}
    rank = src.map(rank_of)
    p = params[rank.notna().to_numpy()].copy()
    if p.empty:
        return empty
    p["rank"] = rank[rank.notna()].astype("int64").to_numpy()
    steps = p["step"].tolist() if "step" in p else [None] * len(p)
    names = {s: without_rank(s) for s in p["source"].astype(str).unique()}
    p["_ck"] = [f"{names[s]}@{'' if st is None or st is pd.NA else st}"
                for s, st in zip(p["source"].astype(str), steps)]
    states = p["state"].astype(object).tolist() if "state" in p else [""] * len(p)
    p["_tensor"] = [f"{st}\x00{par}" for st, par in zip(states, p["param"].astype(object))]
    compared, ranks, tensors, sharded, rows = 0, set(), 0, [], []
    for ck, g in p.groupby("_ck", sort=True):
        if g["rank"].nunique() < 2:
            continue
        size = g.pivot_table(index="_tensor", columns="rank", values="numel", aggfunc="first")
        shared = size.dropna()
        if shared.empty or (shared.nunique(axis=1) > 1).mean() > 0.5 or len(shared) < 0.5 * len(size):
            sharded.append(ck.split("@")[0])
            continue
        compared += 1
        ranks |= set(int(r) for r in g["rank"].unique())
        norm = g.pivot_table(index="_tensor", columns="rank", values="norm", aggfunc="first").loc[shared.index]
        tensors += len(norm)
        v = norm.to_numpy(dtype="float64")
        rel, med = _relative(v)
        for i, j in zip(*np.nonzero(rel > rtol)):
            rows.append({"checkpoint": ck.split("@")[0], "step": g["step"].iloc[0] if "step" in g else None,
                         "param": norm.index[i].split("\x00", 1)[1], "rank": int(norm.columns[j]),
                         "norm": float(v[i, j]), "reference": float(med[i]), "rel_diff": float(rel[i, j])})
    differ = pd.DataFrame(rows, columns=["checkpoint", "step", "param", "rank", "norm", "reference", "rel_diff"])
    return {"checkpoints": compared, "ranks": sorted(ranks), "tensors": tensors, "sharded": sorted(set(sharded)),
            "differ": differ.sort_values("rel_diff", ascending=False).reset_index(drop=True) if len(differ) else differ}
