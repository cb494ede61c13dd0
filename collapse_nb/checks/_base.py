"""What every check shares: the ``Check`` base class and small helpers over a run's tables.

A check is a dataclass whose fields are its thresholds (documented defaults);
``check(run)`` returns a list of :class:`~collapse_nb.findings.Finding`. The
helpers here only read the run's public tables (``scalars``, ``epochs``,
``outputs``, ``grads``, ``params``, ``config``) and never change them.

Conventions the helpers fix for all checks:

- **time order**: rows are ordered by segment, then ``step`` when every row has
  one, else by ``epoch`` then ``batch`` (an epoch-level row, without a batch,
  after that epoch's batches), then the file line;
- **one segment**: a file with restarts holds several runs; a check looks at the
  segment with the most rows of what it needs (ties: the later one) so a crashed
  first attempt and its restart are not read as one curve;
- **where**: a row is named ``step 1200``, ``epoch 3 batch 150`` or ``epoch 3``.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from ..findings import Finding, not_checked

#: Name words of an output layer (used to tell the head among the parameters).
HEAD_WORDS = re.compile(r"(^|[._])(projection|proj|head|heads|output|out|fc|classifier|lm_head|logits|out_proj|"
                        r"final|readout|predictor|regressor|linear_out)([._]|$)", re.I)
NORM_WORDS = re.compile(r"(^|[._])(norm|ln|bn|layernorm|batchnorm|rmsnorm|ln_f|ln_\d+|norm\d+|bn\d+|scale|gamma|"
                        r"beta|embed_positions|pos_emb\w*|position\w*)([._]|$)", re.I)


@dataclass
class Check:
    """Base of all checks: ``name`` (class attribute), thresholds as dataclass fields."""

    name: ClassVar[str] = ""

    def __call__(self, run) -> list[Finding]:  # pragma: no cover - every check overrides it
        raise NotImplementedError

    def thresholds(self) -> dict[str, Any]:
        """The check's threshold fields and their current values."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def finding(self, code: str, severity: str, title: str, **kw: Any) -> Finding:
        kw.setdefault("details", {})
        kw["details"].setdefault("thresholds", self.thresholds())
        return Finding(code=code, severity=severity, title=title, check=self.name, **kw)

    def skip(self, missing: str) -> list[Finding]:
        return [not_checked(self.name, missing)]


# ----------------------------------------------------------------------------- numbers and words

def fmt(x: Any, digits: int = 3) -> str:
    """A number for a sentence: ``0.0805``, ``3.1``, ``1.2e-07``, ``1e-05``, ``12,345``; ``NaN``/``inf`` as such."""
    if x is None or (isinstance(x, float) and math.isnan(x)) or x is pd.NA:
        return "n/a"
    x = float(x)
    if not math.isfinite(x):
        return "NaN" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    if x == 0:
        return "0"
    if x.is_integer() and abs(x) < 1e7:
        return f"{int(x):,}"
    return f"{x:.{digits}g}"


def times(x: float) -> str:
    """A factor for a sentence: ``3.1x``."""
    return f"{x:.2g}x" if abs(x) < 10 else f"{x:,.0f}x"


def one_in(ratio: float) -> str:
    """``0.033`` -> ``1:30`` (the seed report's way of writing a std ratio)."""
    if not ratio or not math.isfinite(ratio) or ratio <= 0:
        return "n/a"
    return f"1:{1 / ratio:.0f}" if ratio < 1 else f"{ratio:.2g}:1"


def head_param(names: list[str]) -> str | None:
    """The output head's weight among parameter names in logging order, or ``None``.

    The weight matrices whose module is named like a head (``projection``, ``head``, ``fc``, ``output``,
    ``classifier``, ``lm_head``...); of those, the least nested (a model's head is usually a top-level
    module), and of equally nested ones the last logged.
    """
    cands = [(n.count("."), -i, n) for i, n in enumerate(names)
             if n.endswith("weight") and is_weight_matrix(n) and HEAD_WORDS.search(n.rsplit(".", 1)[0])]
    return min(cands)[2] if cands else None


def module_of(param: str) -> str:
    """``encoder.layers.0.attn.key.weight`` -> ``encoder.layers.0.attn.key``."""
    return param.rsplit(".", 1)[0] if "." in param else param


def is_bias(param: str) -> bool:
    return param.endswith("bias") or param.endswith(".b")


def is_weight_matrix(param: str) -> bool:
    """A weight that is (most likely) a matrix: not a bias, not a normalisation gain, not a position table."""
    return not is_bias(param) and not NORM_WORDS.search(param)


# ----------------------------------------------------------------------------- time order and segments

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
    if not np.isnan(step).any():
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


# ----------------------------------------------------------------------------- loss curves

LOSS_COLUMNS = ["segment", "epoch", "batch", "step", "value", "line", "source"]


def loss_rows(run, phase: str, name: str = "loss") -> pd.DataFrame:
    """Rows of one metric for one phase (``train`` also takes rows with no phase), in time order."""
    s = run.scalars
    if s.empty:
        return pd.DataFrame(columns=LOSS_COLUMNS)
    mask = (s["name"] == name) & s["param"].isna()
    ph = s["phase"]
    mask &= (ph == phase) | (ph.isna() if phase == "train" else False)
    return order(s.loc[mask, LOSS_COLUMNS])


def curve(run, phase: str, name: str = "loss", level: str = "auto") -> pd.DataFrame:
    """One value per time point of a metric in the main segment: ``x, value, epoch, batch, step, where, level``.

    ``level``: ``"epoch"`` (epoch-level rows only, or the mean of each epoch's batch rows when none),
    ``"step"`` (per-batch / per-step rows), or ``"auto"``: epoch-level when there are at least 3
    epochs of them, else per step. Several values at one time point (two files saying the same) are averaged.
    """
    rows = main_segment(loss_rows(run, phase, name))
    cols = ["x", "value", "epoch", "batch", "step", "where", "level"]
    if rows.empty:
        return pd.DataFrame(columns=cols)
    epoch_level = rows[rows["batch"].isna() & rows["epoch"].notna()]
    per_step = rows[rows["batch"].notna() | rows["epoch"].isna()]
    n_epochs = epoch_level["epoch"].nunique()
    if level == "epoch" or (level == "auto" and n_epochs >= 3) or (level == "auto" and per_step.empty):
        if epoch_level.empty:
            epoch_level = per_step.dropna(subset=["epoch"])
        g = epoch_level.groupby("epoch", sort=True).agg(value=("value", "mean"), step=("step", "max"))
        out = g.reset_index()
        out["batch"] = pd.NA
        out["x"] = out["epoch"].astype("float64")
        out["level"] = "epoch"
    else:
        src = per_step if len(per_step) else rows
        key = ["step"] if src["step"].notna().all() else ["epoch", "batch"]
        g = src.groupby(key, sort=False, dropna=False).agg(
            value=("value", "mean"), **{c: (c, "first") for c in ("epoch", "batch", "step") if c not in key})
        out = order(g.reset_index())
        out["x"] = out["step"].astype("float64") if key == ["step"] else np.arange(len(out), dtype="float64")
        out["level"] = "step"
    out = add_where(out)
    return out[cols].reset_index(drop=True)


def tail(values: np.ndarray, frac: float, minimum: int = 1) -> np.ndarray:
    """The last ``frac`` of ``values`` (at least ``minimum`` of them)."""
    n = len(values)
    k = min(n, max(minimum, int(math.ceil(n * frac))))
    return values[n - k:]


def aligned_train_val(run, name: str = "loss") -> pd.DataFrame:
    """Train and val values of a metric at the same time points: ``x, where, train, val`` (+ epoch, step).

    Per epoch from ``run.epochs`` (the segment with the most rows having both) when at least one epoch
    has both; else per step, each val point paired with the nearest train point at or before it.
    """
    ep = run.epochs
    tcol, vcol = f"train_{name}", f"val_{name}"
    if not ep.empty and tcol in ep and vcol in ep:
        both = ep.dropna(subset=[tcol, vcol])
        if len(both):
            both = main_segment(both)
            out = pd.DataFrame({"x": both["epoch"].astype("float64").to_numpy(),
                                "epoch": both["epoch"].to_numpy(), "step": both["step"].to_numpy(),
                                "train": both[tcol].to_numpy(dtype="float64"),
                                "val": both[vcol].to_numpy(dtype="float64")})
            out["where"] = [f"epoch {fmt(e)}" for e in out["epoch"]]
            return out.sort_values("x").reset_index(drop=True)
    tr, va = curve(run, "train", name, level="step"), curve(run, "val", name, level="step")
    if tr.empty or va.empty or tr["step"].isna().any() or va["step"].isna().any():
        return pd.DataFrame(columns=["x", "epoch", "step", "train", "val", "where"])
    t = tr[["step", "value"]].rename(columns={"value": "train"}).astype({"step": "float64"}).sort_values("step")
    v = va[["step", "value", "epoch"]].rename(columns={"value": "val"}).astype({"step": "float64"}).sort_values("step")
    m = pd.merge_asof(v, t, on="step", direction="backward").dropna(subset=["train"])
    m["x"] = m["step"]
    m["where"] = [f"step {int(s)}" for s in m["step"]]
    return m[["x", "epoch", "step", "train", "val", "where"]].reset_index(drop=True)


def config_number(run, key: str) -> float | None:
    """A numeric canonical config value, or ``None``."""
    v = run.config.get(key) if hasattr(run, "config") else None
    if isinstance(v, bool) or v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def optional_table(run, name: str) -> pd.DataFrame:
    """``run.params`` / ``run.optimizer`` / ... or an empty frame when the run has no such table."""
    try:
        t = getattr(run, name)
    except Exception:       # noqa: BLE001 - an optional table being built elsewhere must not break a check
        return pd.DataFrame()
    return t if isinstance(t, pd.DataFrame) else pd.DataFrame()
