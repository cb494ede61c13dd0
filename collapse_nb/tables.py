"""From readers' raw scalars to the run's tidy tables.

This is the one place where raw names become canonical names, restarts become
segments, and the long table is pivoted into ``epochs``, ``outputs`` and ``grads``.
Every reader's output goes through the same code, so a table means the same
thing whatever file it came from.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .names import canonicalize

CONTEXT = ("source", "segment", "phase", "epoch", "batch", "step")
OUTPUT_NAMES = ("pred_mean", "pred_std", "target_mean", "target_std")
GRAD_NAMES = ("grad_norm", "weight_norm", "update_norm", "update_ratio", "weight_norm_before")
#: Canonical names that describe the whole optimisation, not one phase.
UNPHASED = frozenset({"lr", "grad_norm", "weight_norm", "update_norm", "update_ratio", "loss_scale",
                      "grad_accum_steps", "weight_norm_before"})

SCALAR_DTYPES = {
    "source": "category", "segment": "Int64", "phase": "category", "epoch": "Float64", "batch": "Int64",
    "step": "Int64", "name": "category", "raw_name": "category", "param": "category", "value": "float64",
    "line": "Int64", "wall_time": "Float64",
}


def _col(df: pd.DataFrame, name: str, n: int, dtype: str) -> pd.Series:
    if name in df.columns:
        s = df[name]
        if dtype == "Int64" and s.dtype.kind == "f":
            s = s.round()
        try:
            return s.astype(dtype)
        except (TypeError, ValueError):
            return pd.to_numeric(s, errors="coerce").astype(dtype)
    return pd.Series(pd.array([pd.NA] * n, dtype=dtype if dtype != "category" else "string")).astype(dtype)


def normalise_raw(raw: pd.DataFrame, source: str) -> pd.DataFrame:
    """One reader's raw scalars -> the scalars contract (canonical names, fixed dtypes)."""
    n = len(raw)
    out = pd.DataFrame(index=pd.RangeIndex(n))
    out["source"] = pd.Categorical([source] * n) if n else pd.Categorical([])
    raw_name = raw["raw_name"].astype("category") if n else pd.Series(pd.Categorical([]))
    cats = list(raw_name.cat.categories)
    canon = [canonicalize(str(c)) for c in cats]
    codes = raw_name.cat.codes.to_numpy()
    name_cats = pd.Index([c[0] for c in canon])
    # names: map each raw category to its canonical name, through codes (never per row in Python)
    uniq_names, name_of_cat = np.unique(np.asarray(name_cats, dtype=object).astype(str), return_inverse=True) \
        if len(cats) else (np.array([], dtype=object), np.array([], dtype=int))
    name_codes = np.where(codes >= 0, name_of_cat[codes] if len(cats) else -1, -1)
    out["name"] = pd.Categorical.from_codes(name_codes, categories=pd.Index(uniq_names.astype(object)))
    out["raw_name"] = raw_name.array
    # phase: the name's own phase word beats the context's
    name_phase = np.array([c[1] or "" for c in canon] + [""], dtype=object)[codes]
    ctx_phase = raw["phase"].astype("object").to_numpy() if "phase" in raw.columns else np.full(n, None, object)
    phase = np.where(name_phase != "", name_phase, ctx_phase)
    if "phase_fixed" in raw.columns:      # the reader knows better than the name (DETR's test_* is val)
        fixed = raw["phase_fixed"].fillna(False).to_numpy(dtype=bool)
        phase = np.where(fixed & pd.notna(ctx_phase), ctx_phase, phase)
    phase = pd.Series(phase, dtype="object").where(lambda s: s.isin(["train", "val", "test"]), None)
    out["phase"] = pd.Categorical(phase, categories=["train", "val", "test"])
    name_param = np.array([c[2] for c in canon] + [None], dtype=object)[codes]
    if "param" in raw.columns:
        rp = raw["param"].astype("object").to_numpy()
        param = np.where(pd.isna(rp), name_param, rp)
    else:
        param = name_param
    out["param"] = pd.Categorical(param)
    for c in ("epoch", "batch", "step", "line", "wall_time", "segment"):
        out[c] = _col(raw, c, n, SCALAR_DTYPES[c]).array if n else pd.array([], dtype=SCALAR_DTYPES[c])
    out["value"] = pd.to_numeric(raw["value"], errors="coerce").astype("float64").to_numpy() if n else \
        np.array([], dtype="float64")
    return out[list(SCALAR_DTYPES)]


def detect_segments(df: pd.DataFrame) -> tuple[pd.Series, list[dict]]:
    """Number the restarted runs appended to one file.

    A new segment starts at a line where, for the same metric (name, param,
    phase), the step goes back (or repeats on another line), or the epoch goes
    back, or the batch goes back within the same epoch. Returns the segment of
    every row (0-based) and the restarts found (the line each starts at).
    """
    n = len(df)
    if n == 0:
        return pd.Series([], dtype="Int64"), []
    line = df["line"].to_numpy(dtype="float64", na_value=np.nan)
    if np.isnan(line).all():
        line = np.arange(1, n + 1, dtype="float64")
    key = pd.MultiIndex.from_arrays([df["raw_name"].cat.codes, df["param"].cat.codes,
                                     df["phase"].cat.codes]).codes
    kid = np.zeros(n, dtype=np.int64)
    mult = 1
    for c in key:
        kid += (np.asarray(c, dtype=np.int64) + 1) * mult
        mult *= int(np.max(c)) + 2
    order = np.argsort(kid, kind="stable")
    k = kid[order]
    same = np.r_[False, k[1:] == k[:-1]]

    def prev(col: str) -> tuple[np.ndarray, np.ndarray]:
        v = df[col].to_numpy(dtype="float64", na_value=np.nan)[order]
        p = np.r_[np.nan, v[:-1]]
        return v, np.where(same, p, np.nan)

    s, ps = prev("step")
    e, pe = prev("epoch")
    b, pb = prev("batch")
    ln = line[order]
    pln = np.r_[np.nan, ln[:-1]]
    with np.errstate(invalid="ignore"):
        step_back = (s < ps) | ((s == ps) & (ln != pln))
        has_step = ~np.isnan(s) & ~np.isnan(ps)
        epoch_back = (e < pe - 1e-9) | ((np.abs(e - pe) < 1e-9) & (b < pb))
        flag = np.where(has_step, step_back, epoch_back)
    flag_lines = np.unique(ln[flag & same])
    seg = np.searchsorted(flag_lines, line, side="right")
    restarts = [{"line": int(x), "segment": i + 1} for i, x in enumerate(flag_lines)]
    return pd.Series(seg, dtype="Int64"), restarts


def pivot_fast(df: pd.DataFrame, keys: list[str], names: tuple[str, ...]) -> pd.DataFrame:
    """Long -> wide over ``keys``, one column per name in ``names`` (last value wins).

    A plain ``groupby().last().unstack()`` over millions of rows with nullable
    keys is slow; this factorises the keys once and scatters values into a dense
    array, in O(rows).
    """
    sub = df[df["name"].isin(names)]
    if sub.empty:
        return pd.DataFrame({**{k: df[k].iloc[:0] for k in keys}, **{c: pd.Series([], dtype="float64") for c in names}})
    codes = [pd.factorize(sub[k], use_na_sentinel=False)[0].astype(np.int64) for k in keys]
    comp = np.zeros(len(sub), dtype=np.int64)
    for c in codes:
        comp = comp * (int(c.max()) + 1) + c
    gid, first_rows = pd.factorize(comp)
    first = pd.Series(np.arange(len(sub))).groupby(gid).first().to_numpy()
    present = [nm for nm in names if (sub["name"] == nm).any()]
    col_of = {nm: i for i, nm in enumerate(present)}
    name_idx = sub["name"].astype(str).map(col_of).to_numpy()
    wide = np.full((len(first_rows), len(present)), np.nan)
    wide[gid, name_idx] = sub["value"].to_numpy()
    out = sub.iloc[first][keys].reset_index(drop=True)
    for nm, i in col_of.items():
        out[nm] = wide[:, i]
    return out


def build_outputs(scalars: pd.DataFrame) -> pd.DataFrame:
    keys = list(CONTEXT)
    out = pivot_fast(scalars, keys, OUTPUT_NAMES)
    for c in OUTPUT_NAMES:
        if c not in out.columns:
            out[c] = np.nan
    out = out[keys + list(OUTPUT_NAMES)]
    with np.errstate(divide="ignore", invalid="ignore"):
        out["std_ratio"] = out["pred_std"] / out["target_std"]
    return out.reset_index(drop=True)


def build_grads(scalars: pd.DataFrame) -> pd.DataFrame:
    per_param = scalars[scalars["param"].notna() & scalars["name"].isin(GRAD_NAMES)]
    keys = ["source", "segment", "epoch", "batch", "step", "param"]
    out = pivot_fast(per_param, keys, GRAD_NAMES)
    for c in ("grad_norm", "weight_norm", "update_norm"):
        if c not in out.columns:
            out[c] = np.nan
    if "param" in out.columns:
        out["param"] = out["param"].astype("category")
    cols = keys + ["grad_norm", "weight_norm", "update_norm"] + [c for c in GRAD_NAMES if c in out.columns
                                                                    and c not in ("grad_norm", "weight_norm",
                                                                                  "update_norm")]
    return out[cols].reset_index(drop=True)


def epoch_key(epoch: pd.Series) -> pd.Series:
    """The epoch a row belongs to: whole epochs as they are, fractional ones to the epoch being completed
    (Hugging Face logs epoch 0.91 during the first epoch and evaluates at 1.0)."""
    e = epoch.astype("Float64")
    frac = (e - e.round()).abs() > 1e-6
    return e.where(~frac, np.ceil(e.astype("float64")))


def build_epochs(scalars: pd.DataFrame) -> pd.DataFrame:
    """One row per (segment, epoch): ``<phase>_<name>`` columns, plus ``lr`` and other unphased names.

    Within an epoch, an epoch-level value (a row with no batch index, e.g. an
    "Epoch 3 complete | train_loss=..." line or a CSV row) wins, the last one if
    several; otherwise the mean of the per-batch values.
    """
    df = scalars[scalars["epoch"].notna()]
    if df.empty:
        return pd.DataFrame({"segment": pd.Series([], dtype="Int64"), "epoch": pd.Series([], dtype="Float64")})
    df = df[df["param"].isna() | (df["name"] == "lr")]
    if df.empty:
        return pd.DataFrame({"segment": pd.Series([], dtype="Int64"), "epoch": pd.Series([], dtype="Float64")})
    name = df["name"].astype(str)
    phase = df["phase"].astype(object)
    # per-batch rows with no phase are training rows; unphased names stay unphased
    phase = phase.where(phase.notna() | df["batch"].isna(), "train")
    col = np.where(name.isin(UNPHASED) | phase.isna(), name, phase.astype(str) + "_" + name)
    work = pd.DataFrame({"segment": df["segment"].fillna(0).astype("int64"),
                         "epoch": epoch_key(df["epoch"]).astype("float64"),
                         "col": col, "value": df["value"].to_numpy(),
                         "summary": df["batch"].isna().to_numpy(), "param": df["param"].astype(object),
                         "step": df["step"].astype("float64")})
    # lr per param group: keep the first group only, unless an ungrouped lr exists
    lr_rows = work["col"] == "lr"
    if lr_rows.any() and work.loc[lr_rows, "param"].notna().any():
        first_group = sorted(work.loc[lr_rows & work["param"].notna(), "param"].astype(str).unique())[0]
        has_plain = (lr_rows & work["param"].isna()).any()
        drop = lr_rows & (work["param"].notna() & ((work["param"] != first_group) | has_plain))
        work = work[~drop]
    g = ["segment", "epoch", "col"]
    has_summary = work.groupby(g)["summary"].transform("any")
    chosen = work[~has_summary | work["summary"]]
    agg = chosen.groupby(g, sort=True).agg(last=("value", "last"), mean=("value", "mean"),
                                            summary=("summary", "any"))
    agg["v"] = np.where(agg["summary"], agg["last"], agg["mean"])
    wide = agg["v"].unstack("col")
    wide.columns.name = None
    steps = work.groupby(["segment", "epoch"])["step"].max().rename("step")
    wide = wide.join(steps).reset_index()
    front = ["segment", "epoch", "step"]
    preferred = [c for c in ("train_loss", "val_loss", "test_loss", "lr") if c in wide.columns]
    rest = sorted(c for c in wide.columns if c not in front and c not in preferred)
    wide = wide[front + preferred + rest]
    wide["segment"] = wide["segment"].astype("Int64")
    wide["epoch"] = wide["epoch"].astype("Float64")
    wide["step"] = wide["step"].astype("Int64")
    return wide
