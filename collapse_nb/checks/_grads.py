"""Gradient tables the gradient checks share: the total norm per step, per-layer summaries."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ._base import add_where, is_weight_matrix, main_segment, order

if TYPE_CHECKING:
    from ..run import Run

STEP_KEYS = ["segment", "epoch", "batch", "step"]


def total_grad_norm(run: Run) -> tuple[pd.DataFrame, str]:
    """``(rows, how)``: the total gradient norm per step (``value`` + step keys + ``where``).

    The logged total (``grad_norm`` without a parameter) when there is one, else the root of the sum of
    squares of the per-parameter norms at each step (``how`` says which).
    """
    s = run.scalars
    logged = s[(s["name"] == "grad_norm") & s["param"].isna()]
    if len(logged):
        rows = order(main_segment(logged[STEP_KEYS + ["value", "line"]]))
        return add_where(rows), "logged"
    g = run.grads
    if g.empty or g["grad_norm"].isna().all():
        return pd.DataFrame(columns=STEP_KEYS + ["value", "where"]), "none"
    g = main_segment(g.dropna(subset=["grad_norm"]))
    tot = (g.assign(sq=g["grad_norm"].astype("float64") ** 2)
           .groupby(STEP_KEYS, dropna=False, sort=False)["sq"].sum(min_count=1).reset_index())
    tot["value"] = np.sqrt(tot["sq"])
    return add_where(order(tot.drop(columns="sq"))), "combined from the per-parameter norms"


def per_param(run: Run, zero: float = 1e-12) -> pd.DataFrame:
    """Per parameter over the main segment: ``param, steps, grad_median, grad_median_nonzero, zero_steps,
    grad_max, weight_median, grad_to_weight, update_median, nonfinite, is_matrix`` (weight =
    ``weight_norm_before`` when logged; ``grad_to_weight`` uses the median over the non-zero steps)."""
    g = run.grads
    if g.empty or g["param"].isna().all():
        return pd.DataFrame()
    g = main_segment(g).assign(param=lambda d: d["param"].astype(str))
    has_before = "weight_norm_before" in g and g["weight_norm_before"].notna().any()
    wcol = "weight_norm_before" if has_before else "weight_norm"
    gn = g["grad_norm"].astype("float64")
    g = g.assign(_finite=np.isfinite(gn) | gn.isna(), _g=gn.where(np.isfinite(gn)), _w=g[wcol].astype("float64"),
                 _u=g["update_norm"].astype("float64"))
    g["_nz"] = g["_g"].where(g["_g"] > zero)
    agg = g.groupby("param", sort=False).agg(
        steps=("param", "size"), grad_median=("_g", "median"), grad_max=("_g", "max"), grad_min=("_g", "min"),
        grad_median_nonzero=("_nz", "median"), zero_steps=("_nz", lambda s: int(s.isna().sum())),
        weight_median=("_w", "median"), update_median=("_u", "median"),
        nonfinite=("_finite", lambda s: int((~s).sum())))
    agg["grad_to_weight"] = agg["grad_median_nonzero"] / agg["weight_median"].where(agg["weight_median"] > 0)
    agg["is_matrix"] = [n.endswith("weight") and is_weight_matrix(n) for n in agg.index]
    return agg.reset_index()


def first_last_ratio(run: Run, zero: float = 1e-12) -> pd.DataFrame:
    """AUTOTRAINER's gradient rate per step: first weight matrix's grad norm / last weight matrix's.

    Only weight matrices with a non-zero gradient somewhere are used (dead ones are another check's).
    Columns: step keys, ``first``, ``last``, ``first_norm``, ``last_norm``, ``rate``, ``where``.
    """
    pp = per_param(run, zero)
    if pp.empty:
        return pd.DataFrame()
    live = pp[pp["is_matrix"] & (pp["grad_max"] > zero)]["param"].tolist()
    if len(live) < 2:
        return pd.DataFrame()
    first, last = live[0], live[-1]
    g = main_segment(run.grads).assign(param=lambda d: d["param"].astype(str))
    a = g[g["param"] == first][STEP_KEYS + ["grad_norm"]].rename(columns={"grad_norm": "first_norm"})
    b = g[g["param"] == last][STEP_KEYS + ["grad_norm"]].rename(columns={"grad_norm": "last_norm"})
    m = a.merge(b, on=STEP_KEYS, how="inner")
    if m.empty:
        return pd.DataFrame()
    m = order(m)
    m["first"], m["last"] = first, last
    with np.errstate(divide="ignore", invalid="ignore"):
        m["rate"] = m["first_norm"].astype("float64") / m["last_norm"].astype("float64")
    return add_where(m)
