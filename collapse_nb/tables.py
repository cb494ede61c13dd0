"""From readers' raw scalars to the run's tidy tables.

This is the one place where raw names become canonical names, restarts become
segments, and the long table is pivoted into ``epochs``, ``outputs`` and ``grads``.
Every reader's output goes through the same code, so a table means the same
thing whatever file it came from.
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
from pandas.core.arrays.masked import BaseMaskedArray

from .names import canonicalize_names, logged_every
from .ranks import one_rank, rank_column

CONTEXT = ("source", "segment", "phase", "epoch", "batch", "step")
OUTPUT_NAMES = ("pred_mean", "pred_std", "target_mean", "target_std")
GRAD_NAMES = ("grad_norm", "weight_norm", "update_norm", "update_ratio", "weight_norm_before")
#: Canonical names that describe the whole optimisation, not one phase.
UNPHASED = frozenset({"lr", "grad_norm", "weight_norm", "update_norm", "update_ratio", "loss_scale",
                      "grad_accum_steps", "weight_norm_before"})

SCALAR_DTYPES = {
    "source": "category", "segment": "Int64", "phase": "category", "epoch": "Float64", "batch": "Int64",
    "step": "Int64", "name": "category", "raw_name": "category", "param": "category", "value": "float64",
    "line": "Int64", "wall_time": "Float64", "rank": "Int64",
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


PHASES = ["train", "val", "test"]
_PHASE_CODE: dict[str | None, int] = {p: i for i, p in enumerate(PHASES)}


def _categorical(values: pd.Series) -> pd.Categorical:
    """A column as a Categorical, reusing its codes when it already is one (no per-row work)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return values.array
    return pd.Categorical(values.astype(object).where(values.notna(), None))


def _codes(cat: pd.Categorical) -> np.ndarray:
    return np.asarray(cat.codes, dtype=np.int32)


def _code_dtype(n_categories: int) -> type:
    """The dtype pandas keeps a Categorical's codes in, for this many categories (no conversion copy)."""
    return np.int8 if n_categories < 127 else np.int16 if n_categories < 32767 else np.int32


def _table(values: list[int], n_categories: int) -> np.ndarray:
    """A lookup table from codes to codes, with code -1 (missing) mapping to -1 (the last entry)."""
    return np.array(list(values) + [-1], dtype=_code_dtype(n_categories))


def normalise_raw(raw: pd.DataFrame, source: str) -> pd.DataFrame:
    """One reader's raw scalars -> the scalars contract (canonical names, fixed dtypes).

    Names, phases and params are worked out once per *distinct* raw name and
    mapped to the rows through categorical codes, never per row in Python.
    Columns that already have their contract dtype are taken as they are
    (copy-on-write: neither frame sees the other's later changes).
    """
    n = len(raw)
    index = pd.RangeIndex(n)
    out: dict[str, object] = {}
    out["source"] = pd.Categorical.from_codes(np.zeros(n, dtype=np.int8), categories=pd.Index([source], dtype=object))
    raw_name = _categorical(raw["raw_name"]) if n else pd.Categorical([])
    cats = [str(c) for c in raw_name.categories]
    canon = canonicalize_names(cats)
    codes = np.asarray(raw_name.codes)              # as pandas keeps them (int8 for a few names): no copy
    # names: map each raw category to its canonical name
    uniq_names, name_of_cat = np.unique(np.array([c[0] for c in canon], dtype=object).astype(str),
                                        return_inverse=True)
    name_tab = _table(name_of_cat.reshape(-1).tolist(), len(uniq_names))   # code -1 (missing) stays missing
    out["name"] = pd.Categorical.from_codes(name_tab[codes], categories=pd.Index(uniq_names, dtype=object))
    if isinstance(raw["raw_name"].dtype, pd.CategoricalDtype) and raw_name.categories.dtype == object and \
            not raw_name.ordered and all(isinstance(c, str) for c in raw_name.categories):
        out["raw_name"] = raw["raw_name"].set_axis(index)
    else:
        out["raw_name"] = pd.Categorical.from_codes(codes, categories=pd.Index(cats, dtype=object))
    # phase: the name's own phase word beats the context's
    name_phase = np.array([_PHASE_CODE.get(c[1], -1) for c in canon] + [-1], dtype=np.int8)[codes]
    if "phase" in raw.columns and n:
        ctx = _categorical(raw["phase"])
        ctx_map = np.array([_PHASE_CODE.get(str(c), -1) for c in ctx.categories] + [-1], dtype=np.int8)
        ctx_phase = ctx_map[np.asarray(ctx.codes)]
    else:
        ctx_phase = np.full(n, -1, dtype=np.int8)
    phase = np.where(name_phase >= 0, name_phase, ctx_phase)
    if "phase_fixed" in raw.columns:      # the reader knows better than the name (DETR's test_* is val)
        fixed = raw["phase_fixed"].fillna(False).to_numpy(dtype=bool)
        phase = np.where(fixed & (ctx_phase >= 0), ctx_phase, phase)
    out["phase"] = pd.Categorical.from_codes(phase, categories=PHASES)
    # param: what the reader says, else what the name holds (grad_norm/<param>)
    name_param = [c[2] for c in canon]
    if "param" in raw.columns and n:
        rp = _categorical(raw["param"])
        rcats, rcodes = [str(c) for c in rp.categories], np.asarray(rp.codes)
    else:
        rp, rcats, rcodes = None, [], None
    all_params = pd.Index(rcats + [p for p in name_param if p is not None], dtype=object).unique()
    rmap = all_params.get_indexer(rcats)
    nmap = all_params.get_indexer([p if p is not None else "\0none" for p in name_param])
    if (rp is not None and isinstance(raw["param"].dtype, pd.CategoricalDtype) and (nmap < 0).all()
            and np.array_equal(rmap, np.arange(len(rcats))) and not rp.ordered
            and rp.categories.dtype == object and all(isinstance(c, str) for c in rp.categories)):
        out["param"] = raw["param"].set_axis(index)          # the reader's params, as they are
    else:
        ntab = _table(nmap.tolist(), len(all_params))
        if rcodes is None:
            pcodes = ntab[codes]
        elif (nmap < 0).all():
            pcodes = _table(rmap.tolist(), len(all_params))[rcodes]
        else:
            pcodes = np.where(rcodes >= 0, _table(rmap.tolist(), len(all_params))[rcodes], ntab[codes])
        out["param"] = pd.Categorical.from_codes(pcodes, categories=all_params)
    for c in ("epoch", "batch", "step", "line", "wall_time", "segment"):
        out[c] = _col_array(raw, c, n, SCALAR_DTYPES[c], index) if n else pd.array([], dtype=SCALAR_DTYPES[c])
    # the process that wrote the row (a distributed run's rank), NA where the file does not say
    out["rank"] = _col_array(raw, "rank", n, "Int64", index) if "rank" in raw.columns else \
        pd.arrays.IntegerArray(np.zeros(n, dtype=np.int64), np.ones(n, dtype=bool))
    if n and raw["value"].dtype == np.float64:
        out["value"] = raw["value"].set_axis(index)
    else:
        out["value"] = pd.to_numeric(raw["value"], errors="coerce").astype("float64").to_numpy() if n else \
            np.array([], dtype="float64")
    # one frame from the finished columns: none is copied on the way in
    return pd.DataFrame({c: out[c] for c in SCALAR_DTYPES}, index=index, copy=False)


def _col_array(raw: pd.DataFrame, name: str, n: int, dtype: str, index: pd.RangeIndex):
    """Column ``name`` of ``raw`` as ``dtype``: the column itself (copy-on-write) when it already is one."""
    if name in raw.columns:
        s = raw[name]
        if str(s.dtype) == dtype:
            return s.set_axis(index)
        if dtype == "Int64" and s.dtype.kind in "iu":
            return pd.arrays.IntegerArray(np.array(s.to_numpy(), dtype=np.int64), np.zeros(n, dtype=bool))
    return _col(raw, name, n, dtype).array


def detect_segments(df: pd.DataFrame) -> tuple[pd.Series, list[dict]]:
    """Number the restarted runs appended to one file.

    A new segment starts at a line where, for the same metric (name, param,
    phase) of the same rank (ranks of a distributed run log the same steps), the step goes back (or repeats on
    another line) while the epoch
    does not move on (a step counted within each epoch is not a restart), or
    the epoch goes back, or the batch goes back within the same epoch. Returns the segment of
    every row (0-based) and the restarts found (the line each starts at).
    """
    n = len(df)
    if n == 0:
        return pd.Series([], dtype="Int64"), []
    line = df["line"].to_numpy(dtype="float64", na_value=np.nan)
    if np.isnan(line).all():
        line = np.arange(1, n + 1, dtype="float64")
    arrays = [df["raw_name"].cat.codes, df["param"].cat.codes, df["phase"].cat.codes]
    if rank_column(df) is not None:
        arrays.append(pd.Series(pd.factorize(df["rank"], use_na_sentinel=False)[0]))
    key = pd.MultiIndex.from_arrays(arrays).codes
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
        # a step that goes back when the epoch moves on counts within the epoch (pix2pix 'iters'): no restart
        epoch_forward = e > pe + 1e-9
        step_back = ((s < ps) | ((s == ps) & (ln != pln))) & ~epoch_forward
        has_step = ~np.isnan(s) & ~np.isnan(ps)
        epoch_back = (e < pe - 1e-9) | ((np.abs(e - pe) < 1e-9) & (b < pb))
        flag = np.where(has_step, step_back, epoch_back)
    flag_lines = np.unique(ln[flag & same])
    seg = np.searchsorted(flag_lines, line, side="right")
    restarts = [{"line": int(x), "segment": i + 1} for i, x in enumerate(flag_lines)]
    return pd.Series(seg, dtype="Int64"), restarts


def _key_values(col: pd.Series) -> tuple[np.ndarray, np.ndarray | None] | None:
    """``col`` as (int64 or float64 values, missing mask or None), without copying; None for other dtypes."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        return np.asarray(col.cat.codes), None       # missing is code -1
    arr = col.array
    if isinstance(arr, BaseMaskedArray) and arr.dtype.kind in "iuf":
        return arr._data, arr._mask
    if isinstance(col.dtype, np.dtype) and col.dtype.kind in "iuf":
        data = col.to_numpy()
        return data, (np.isnan(data) if data.dtype.kind == "f" else None)
    return None


def _codes_of(col: pd.Series, rows: np.ndarray, vm) -> np.ndarray:
    """Non-negative integer codes of ``col`` at ``rows`` (``vm`` from :func:`_key_values`): equal values
    get equal codes, and missing values are a value of their own (as ``pd.factorize(...,
    use_na_sentinel=False)`` groups them)."""
    if vm is not None:
        data, mask = vm
        if data.dtype.kind in "iu":
            if len(data) and (mask is None or not mask.all()):
                ok = data if mask is None else data[~mask]
                lo, hi = int(ok.min()), int(ok.max())
                if hi - lo < 2 ** 40:
                    codes = data.astype(np.int64) - (lo - 1)
                    if mask is not None:
                        codes[mask] = 0
                    return codes
            elif len(data):
                return np.zeros(len(data), dtype=np.int64)
        else:
            ok = data if mask is None else data[~mask]
            if not len(ok):
                return np.zeros(len(data), dtype=np.int64)
            flo, fhi = float(ok.min()), float(ok.max())      # NaN (unmasked) or inf fall through
            if -2.0 ** 52 < flo and fhi < 2.0 ** 52 and fhi - flo < 2.0 ** 40:
                whole = np.where(mask, 0.0, data) if mask is not None else data
                ints = whole.astype(np.int64)
                if np.array_equal(ints, whole):
                    codes = ints - (int(flo) - 1)
                    if mask is not None:
                        codes[mask] = 0
                    return codes
    return pd.factorize(col.take(rows), use_na_sentinel=False)[0].astype(np.int64)


#: Rows handled at a time by :func:`pivot_fast` (its temporary arrays stay this small).
_BLOCK = 1 << 18


def pivot_fast(df: pd.DataFrame, keys: list[str], names: tuple[str, ...],
               rows: np.ndarray | None = None) -> pd.DataFrame:
    """Long -> wide over ``keys``, one column per name in ``names`` (last value wins).

    A plain ``groupby().last().unstack()`` over millions of rows with nullable
    keys is slow; this codes the keys once and scatters values into a dense
    array, in O(rows), without copying the long table. ``rows``: a boolean mask
    of the rows that may be used (default: all); of those, the rows whose name is
    in ``names`` are.

    Rows come out in their groups' order of first appearance. Neighbouring rows
    mostly share their keys (a logged block), so the keys are combined and hashed
    once per run of such rows, not once per row, and the table is walked in
    blocks so that no temporary array grows with it.
    """
    name = df["name"]
    name_cat = name.array if isinstance(name.dtype, pd.CategoricalDtype) else name.astype("category").array
    cats = [str(c) for c in name_cat.categories]
    want = np.array([c in names for c in cats] + [False], dtype=bool)
    codes = np.asarray(name_cat.codes)
    n_all = len(df)
    key_vals = [_key_values(df[k]) for k in keys]
    # pass 1: where runs of used rows with equal keys start (a start may be spurious: equal runs merge below)
    starts, n_used, seen_code = [], 0, np.zeros(len(cats) + 1, dtype=bool)
    prev_used = False
    for b in range(0, n_all, _BLOCK):
        e = min(b + _BLOCK, n_all)
        used = want[codes[b:e]]
        if rows is not None:
            used &= rows[b:e]
        change = np.zeros(e - b, dtype=bool)
        change[0] = b == 0
        lo = max(b - 1, 0)
        for vm in key_vals:
            if vm is None:
                change[:] = True
                break
            data, mask = vm
            d = data[lo:e]
            if b:
                change |= d[1:] != d[:-1]
                if mask is not None:
                    change |= mask[lo + 1:e] != mask[lo:e - 1]
            else:
                change[1:] |= d[1:] != d[:-1]
                if mask is not None:
                    change[1:] |= mask[1:e] != mask[:e - 1]
        after_gap = np.empty(e - b, dtype=bool)          # the row before was not used: a new run
        after_gap[0] = not prev_used
        after_gap[1:] = ~used[:-1]
        starts.append(np.flatnonzero(used & (change | after_gap)) + b)
        n_used += int(np.count_nonzero(used))
        seen_code[np.unique(codes[b:e][used])] = True
        prev_used = bool(used[-1]) if e > b else prev_used
    if not n_used:
        return pd.DataFrame({**{k: df[k].iloc[:0] for k in keys}, **{c: pd.Series([], dtype="float64") for c in names}})
    run_at = np.concatenate(starts)
    comp = np.zeros(len(run_at), dtype=np.int64)
    for k, vm in zip(keys, key_vals):
        c = _codes_of(df[k], run_at, None if vm is None else (vm[0][run_at], None if vm[1] is None else vm[1][run_at]))
        if (int(comp.max()) + 1) * (int(c.max()) + 1) >= 2 ** 62:     # keep the combined key from overflowing
            comp = pd.factorize(comp)[0].astype(np.int64)
        comp = comp * (int(c.max()) + 1) + c
    if len(comp) < 2 or bool(np.all(comp[1:] > comp[:-1])):
        run_gid = np.arange(len(comp), dtype=np.int64)           # every run a group of its own
    else:
        run_gid = pd.factorize(comp)[0].astype(np.int64)
    seen = np.maximum.accumulate(run_gid)
    first = run_at[np.flatnonzero(np.r_[True, run_gid[1:] > seen[:-1]])]
    n_groups = int(seen[-1]) + 1
    present = [nm for nm in names if nm in {c for c, hit in zip(cats, seen_code) if hit}]
    col_of = {nm: i for i, nm in enumerate(present)}
    col_of_cat = np.array([col_of.get(c, -1) for c in cats] + [-1], dtype=np.int64)
    # pass 2: scatter the values, last one winning
    wide = np.full((len(present), n_groups), np.nan)          # one row per column: contiguous columns
    value = df["value"].to_numpy()
    is_start = np.zeros(_BLOCK, dtype=np.int32)
    done = 0                                                  # runs started before the block
    for b in range(0, n_all, _BLOCK):
        e = min(b + _BLOCK, n_all)
        used = want[codes[b:e]]
        if rows is not None:
            used &= rows[b:e]
        hi = int(np.searchsorted(run_at, e))
        flag = is_start[:e - b]
        flag[:] = 0
        flag[run_at[done:hi] - b] = 1
        run_no = np.cumsum(flag, dtype=np.int64)[used] + (done - 1)
        done = hi
        at = np.flatnonzero(used)
        wide[col_of_cat[codes[b:e][at]], run_gid[run_no]] = value[b:e][at]
    out = pd.DataFrame({k: df[k].array.take(first) for k in keys}, copy=False)
    # the values as one block, straight from ``wide`` (a frame holds a block as (columns, rows))
    return pd.concat([out, pd.DataFrame(wide.T, columns=pd.Index(present, dtype=object), copy=False)], axis=1)


def build_outputs(scalars: pd.DataFrame) -> pd.DataFrame:
    scalars = one_rank(scalars)           # one rank's statistics (collapse_nb.ranks), never every rank's mixed
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
    scalars = one_rank(scalars)
    keys = ["source", "segment", "epoch", "batch", "step", "param"]
    out = pivot_fast(scalars, keys, GRAD_NAMES, rows=scalars["param"].notna().to_numpy())
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


def _empty_epochs() -> pd.DataFrame:
    return pd.DataFrame({"segment": pd.Series([], dtype="Int64"), "epoch": pd.Series([], dtype="Float64"),
                         "step": pd.Series([], dtype="Int64")})


def _group_ids(*cols: pd.Series) -> np.ndarray:
    """One integer per distinct combination of the columns (missing values are a value of their own)."""
    gid = np.zeros(len(cols[0]), dtype=np.int64)
    for c in cols:
        if isinstance(c.dtype, pd.CategoricalDtype):
            codes = np.asarray(c.cat.codes, dtype=np.int64) + 1
        else:
            codes = pd.factorize(c, use_na_sentinel=False)[0].astype(np.int64)
        gid = pd.factorize(gid * (int(codes.max(initial=0)) + 1) + codes)[0].astype(np.int64)
    return gid


def epochs_from_steps(scalars: pd.DataFrame) -> np.ndarray:
    """Every row's epoch (float, NaN for none), giving rows with a step but no epoch one from their step.

    A row with a step but no epoch (Lightning's ``lr-Adam`` rows from the
    LearningRateMonitor) takes the epoch of the first row at or after its step
    that has both, in the same source and segment: a step inside an epoch's
    step range gets that epoch, a step between two epochs' ranges the epoch
    that comes next. A step after the last row with an epoch gets none.
    """
    epoch = scalars["epoch"].to_numpy(dtype="float64", na_value=np.nan)
    step = scalars["step"].to_numpy(dtype="float64", na_value=np.nan)
    need = np.isnan(epoch) & ~np.isnan(step)
    known = ~np.isnan(epoch) & ~np.isnan(step)
    if not need.any() or not known.any():
        return epoch
    gid = _group_ids(scalars["source"], scalars["segment"])
    ref = (pd.DataFrame({"g": gid[known], "step": step[known], "epoch": epoch[known]})
           .groupby(["g", "step"], as_index=False)["epoch"].min().sort_values("step", kind="stable"))
    rows = np.flatnonzero(need)
    left = pd.DataFrame({"g": gid[rows], "step": step[rows], "row": rows}).sort_values("step", kind="stable")
    found = pd.merge_asof(left, ref, on="step", by="g", direction="forward")
    out = epoch.copy()
    out[found["row"].to_numpy()] = found["epoch"].to_numpy(dtype="float64", na_value=np.nan)
    return out


#: How an epoch's value of a metric is chosen: the highest level present wins (the last value of it, or
#: the mean for per-batch / per-step values).
LEVEL_PER_STEP, LEVEL_SUMMARY, LEVEL_EPOCH_COLUMN = 0, 1, 2


def _levels(df: pd.DataFrame, epoch: np.ndarray) -> np.ndarray:
    """Each row's level (see :data:`LEVEL_PER_STEP`).

    Per step: rows with a batch index, rows whose epoch came from their step
    (:func:`epochs_from_steps`), Lightning's ``*_step`` columns, and any
    series (source, segment, raw name, param, phase) logged at several steps
    under one epoch value, as Lightning's CSVLogger writes ``on_step`` metrics.
    Epoch column: Lightning's ``*_epoch`` columns. Summary: everything else
    (one value per epoch, or one per fractional epoch as Hugging Face logs).
    """
    raw, names = _categorical(df["raw_name"]), _categorical(df["name"])
    _, first, pair = np.unique(_group_ids(df["raw_name"], df["name"]), return_index=True, return_inverse=True)
    every = np.array([logged_every(str(raw.categories[r]), str(names.categories[n])) if r >= 0 and n >= 0
                      else None for r, n in zip(_codes(raw)[first], _codes(names)[first])], dtype=object)
    when = every[pair.reshape(-1)]
    per_step = df["batch"].notna().to_numpy() | (when == "step") | df["epoch"].isna().to_numpy()
    column = when == "epoch"
    step = df["step"].to_numpy(dtype="float64", na_value=np.nan)
    series = _group_ids(df["source"], df["segment"], df["raw_name"], df["param"], df["phase"])
    cand = ~per_step & ~column & ~np.isnan(step)
    if cand.any():
        steps = pd.DataFrame({"s": series[cand], "e": epoch[cand], "step": step[cand]})
        several = steps.groupby(["s", "e"])["step"].nunique() > 1
        per_step |= np.isin(series, several[several].index.get_level_values("s").unique()) & ~column
    return np.where(column, LEVEL_EPOCH_COLUMN, np.where(per_step, LEVEL_PER_STEP, LEVEL_SUMMARY))


def _natural(s: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def _lr_columns(col: np.ndarray, param: pd.Series) -> np.ndarray:
    """``lr`` for the ungrouped learning rate or else the first param group; ``lr_<group>`` for the others."""
    col = np.array(col, dtype=object)            # a copy: the caller compares it with the original
    p = param.astype(object).to_numpy()
    grouped = (col == "lr") & pd.notna(p)
    if not grouped.any():
        return col
    groups = sorted({str(x) for x in p[grouped]}, key=_natural)
    main = None if ((col == "lr") & pd.isna(p)).any() else groups[0]
    other = grouped & (p.astype(str) != str(main))
    col[other] = ["lr_" + str(x) for x in p[other]]
    return col


def _epoch_columns(df: pd.DataFrame) -> tuple[np.ndarray, list[str], list[str]]:
    """Each row's epochs column, as ``(codes, names, lr group columns)``; worked out once per distinct
    (name, phase, has a batch, param), not per row."""
    ids = _group_ids(df["name"], df["phase"], df["batch"].isna(), df["param"])
    _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    sub = df.iloc[first]
    name = sub["name"].astype(str)
    phase = sub["phase"].astype(object)
    # per-batch rows with no phase are training rows; unphased names stay unphased
    phase = phase.where(phase.notna() | sub["batch"].isna(), "train")
    col = np.where(name.isin(UNPHASED) | phase.isna(), name, phase.astype(str) + "_" + name)
    cols = _lr_columns(col, sub["param"])
    lr_groups = sorted(set(cols[cols != col]), key=_natural)
    names, code = np.unique(cols.astype(str), return_inverse=True)
    return code.reshape(-1)[inverse.reshape(-1)], [str(x) for x in names], lr_groups


def build_epochs(scalars: pd.DataFrame) -> pd.DataFrame:
    """One row per (segment, epoch): ``<phase>_<name>`` columns, plus ``lr`` and other unphased names.

    Within an epoch, for each column: Lightning's explicit epoch-level column
    (``train_loss_epoch``) wins; else an epoch-level value (a row with no batch
    index, logged once in the epoch, e.g. an "Epoch 3 complete | train_loss=..."
    line or a CSV row), the last one if several; otherwise the mean of the
    per-batch or per-step values (see :func:`_levels`). Rows with a step but no
    epoch take one from their step (:func:`epochs_from_steps`). Learning rates
    of several param groups: ``lr`` is the ungrouped one or the first group,
    the others ``lr_<group>`` (``lr_pg1``). A distributed run's rows are one rank's per series
    (:func:`collapse_nb.ranks.one_rank`).
    """
    scalars = one_rank(scalars)
    epoch = epochs_from_steps(scalars)
    keep = ~np.isnan(epoch) & (scalars["param"].isna() | (scalars["name"] == "lr")).to_numpy()
    if not keep.any():
        return _empty_epochs()
    df, epoch = scalars[keep], epoch[keep]
    col, col_names, lr_groups = _epoch_columns(df)
    work = pd.DataFrame({"segment": df["segment"].fillna(0).astype("int64").to_numpy(),
                         "epoch": epoch_key(pd.Series(epoch, dtype="Float64")).to_numpy(dtype="float64"),
                         "col": col, "value": df["value"].to_numpy(),
                         "level": _levels(df, epoch), "step": df["step"].to_numpy(dtype="float64", na_value=np.nan)})
    g = ["segment", "epoch", "col"]
    chosen = work[work["level"] == work.groupby(g)["level"].transform("max")]
    agg = chosen.groupby(g, sort=True).agg(last=("value", "last"), mean=("value", "mean"),
                                            level=("level", "max"))
    agg["v"] = np.where(agg["level"] > LEVEL_PER_STEP, agg["last"], agg["mean"])
    wide = agg["v"].unstack("col")
    # a metric literally named like an index column ("epoch=2" on a line) keeps its values as logged_<name>
    wide.columns = pd.Index([f"logged_{n}" if n in ("segment", "epoch", "step") else n
                             for n in (col_names[c] for c in wide.columns)], dtype=object)
    steps = work.groupby(["segment", "epoch"])["step"].max().rename("step")
    wide = wide.join(steps).reset_index()
    front = ["segment", "epoch", "step"]
    preferred = [c for c in ("train_loss", "val_loss", "test_loss", "lr") if c in wide.columns]
    preferred += [c for c in lr_groups if c in wide.columns]
    rest = sorted(c for c in wide.columns if c not in front and c not in preferred)
    wide = wide[front + preferred + rest]
    wide["segment"] = wide["segment"].astype("Int64")
    wide["epoch"] = wide["epoch"].astype("Float64")
    wide["step"] = wide["step"].astype("Int64")
    return wide


#: The largest counter value kept exactly: beyond 2**53 a float64 (what most readers parse into) skips integers.
MAX_COUNTER = 2.0 ** 53


def bad_counters(raw: pd.DataFrame) -> tuple[np.ndarray, dict[str, list[int]]]:
    """Rows of a reader's raw table whose time counters cannot be kept, and why, by reason.

    ``step``, ``batch`` and ``segment`` must be whole numbers (``inf``, ``NaN`` given as text, ``1.5`` or a
    number beyond 2**53 is not a step); ``epoch`` may be fractional (HF logs 0.25) but must be finite.
    A missing counter (NaN) is fine. Returns ``(drop mask, {reason: [line, ...]})``.
    """
    n = len(raw)
    drop = np.zeros(n, dtype=bool)
    why: dict[str, list[int]] = {}
    if not n:
        return drop, why
    lines = pd.to_numeric(raw["line"], errors="coerce").to_numpy(dtype="float64", na_value=np.nan) \
        if "line" in raw.columns else np.arange(1, n + 1, dtype="float64")
    for col in ("step", "batch", "segment", "epoch"):
        if col not in raw.columns:
            continue
        s = raw[col]
        if s.dtype.kind in "iu" or str(s.dtype) in ("Int64", "Int32", "Int8", "UInt64"):
            continue                                  # already whole numbers
        v = pd.to_numeric(s, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        given = s.notna().to_numpy()
        nan_given = given & np.isnan(v)               # a value that is there but is no number (NaN, text)
        with np.errstate(invalid="ignore"):
            if col == "epoch":
                bad = nan_given | np.isinf(v) | (np.abs(v) > MAX_COUNTER)
            else:
                bad = nan_given | ~np.isfinite(np.where(np.isnan(v) & ~nan_given, 0.0, v)) | \
                    (np.abs(np.nan_to_num(v)) > MAX_COUNTER) | (np.nan_to_num(v) != np.round(np.nan_to_num(v)))
        bad &= ~drop
        if bad.any():
            kinds = np.where(np.isnan(v[bad]) | np.isinf(v[bad]), "NaN, inf or text",
                             np.where(np.abs(v[bad]) > MAX_COUNTER, "beyond 2**53", "not a whole number"))
            for kind in dict.fromkeys(kinds.tolist()):
                reason = f"{col} is not a usable counter ({kind})" if col != "epoch" else f"epoch is {kind}"
                why[reason] = [int(x) if x == x else 0 for x in lines[bad][kinds == kind]]
            drop |= bad
    return drop, why
