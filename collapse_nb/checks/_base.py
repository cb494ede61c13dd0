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
    """Base of all checks: ``name`` (class attribute), thresholds as dataclass fields.

    What is known about a check lives on it (the diagnosis and the report read it from here):

    - ``symptoms``: the codes it emits that are failure symptoms, with their weight in the observed
      failure (1, or less for a symptom that spoils no prediction);
    - ``explains``: per rule key (a code, or a narrower rule :meth:`rule_key` picks from a finding's
      details), the symptoms that rule explains, each with a weight (0-1) and the reason in words;
    - ``quantity``, :meth:`healthy_band` and :meth:`measure`: the row of the report's "healthy vs this
      run" table: what is measured, its healthy band from the thresholds, and the figure a finding's
      details give.
    """

    name: ClassVar[str] = ""
    symptoms: ClassVar[dict[str, float]] = {}
    explains: ClassVar[dict[str, dict[str, tuple[float, str]]]] = {}
    quantity: ClassVar[str] = ""

    def __call__(self, run) -> list[Finding]:  # pragma: no cover - every check overrides it
        raise NotImplementedError

    def rule_key(self, finding: Finding) -> str:
        """The ``explains`` entry for ``finding``: its code, unless the check narrows it."""
        return finding.code

    def healthy_band(self, finding: Finding | None = None) -> str:
        """The healthy band of :attr:`quantity`, in words, from the thresholds (the finding's, else the defaults)."""
        return ""

    def measure(self, details: dict[str, Any]) -> str:
        """This run's value of :attr:`quantity`, from a finding's details."""
        return ""

    def limits(self, finding: Finding | None = None) -> dict[str, Any]:
        """The thresholds the finding was made with (its details), else this check's."""
        th = dict((finding.details.get("thresholds") or {})) if finding is not None else {}
        return th or self.thresholds()

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


# ----------------------------------------------------------------------------- loss curves

LOSS_COLUMNS = ["segment", "epoch", "batch", "step", "value", "line", "source", "raw_name"]


def loss_rows(run, phase: str, name: str = "loss", network: str | None = None,
              eval_set: str | None = None) -> pd.DataFrame:
    """Rows of one metric for one phase (``train`` also takes rows with no phase), in time order.

    For ``name="loss"`` the rows are the phase's *objective* (:meth:`Run.objective`): the logged
    total, the one loss series, or the sum of the components, for one ``network`` and ``eval_set``.
    Summary rows (a run average, a best-so-far value) are never part of the curve.
    """
    s = run.scalars
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
        from ..series import summary_rows
        picked = picked[~summary_rows(picked).to_numpy()]
    out = order(picked[LOSS_COLUMNS])
    out.attrs["series"] = f"the {phase} {name}"
    return out


def curve(run, phase: str, name: str = "loss", level: str = "auto", network: str | None = None,
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
    epoch_level, per_step = _one_source(rows[~stepwise], ["epoch"]), _one_source(rows[stepwise], ["epoch", "batch", "step"])
    whole_epochs = np.floor(pd.to_numeric(per_step["epoch"], errors="coerce").astype("float64"))
    n_epochs = max(epoch_level["epoch"].nunique(), int(pd.Series(whole_epochs).nunique()))
    step_points = len(per_step.drop_duplicates(subset=["epoch", "batch", "step"]))
    use_epoch = level == "epoch" or (level == "auto" and (per_step.empty or step_points <= n_epochs))
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


def tail(values: np.ndarray, frac: float, minimum: int = 1) -> np.ndarray:
    """The last ``frac`` of ``values`` (at least ``minimum`` of them)."""
    n = len(values)
    k = min(n, max(minimum, int(math.ceil(n * frac))))
    return values[n - k:]


def aligned_train_val(run, name: str = "loss", eval_set: str | None = None,
                      val_name: str | None = None, val_phase: str = "val") -> pd.DataFrame:
    """Train and val values at the same time points: ``x, where, train, val`` (+ epoch, step).

    The train side is the train objective (``name="loss"``) or metric ``name``; the val side is the
    validation series ``val_name`` (default: the same name) of ``eval_set``. Per epoch when both
    sides have epoch-level values at common epochs; else per step, each val point paired with the
    nearest train point at or before it. ``attrs["series"]`` names both sides.
    """
    cols = ["x", "epoch", "step", "train", "val", "where"]
    val_name = val_name or name
    tr_e = curve(run, "train", name, level="epoch")
    va_e = curve(run, val_phase, val_name, level="epoch", eval_set=eval_set)
    label = {"train_series": tr_e.attrs.get("series", ""), "val_series": va_e.attrs.get("series", ""),
             "missing": va_e.attrs.get("missing") or tr_e.attrs.get("missing") or ""}
    whole = all(len(c) and c["epoch"].notna().any() and
                bool((pd.to_numeric(c["epoch"], errors="coerce").dropna() % 1 == 0).all()) for c in (tr_e, va_e))
    if whole:           # fractional epochs (HF's 0.91) are places of steps: pair those by step
        m = va_e[["epoch", "step", "value"]].rename(columns={"value": "val"}).merge(
            tr_e[["epoch", "value"]].rename(columns={"value": "train"}), on="epoch", how="inner")
        if len(m):
            m["x"] = m["epoch"].astype("float64")
            m["where"] = [f"epoch {fmt(e)}" for e in m["epoch"]]
            out = m[cols].sort_values("x").reset_index(drop=True)
            out.attrs.update(label, resolution="epoch")
            return out
    tr = curve(run, "train", name, level="step")
    va = curve(run, val_phase, val_name, level="step", eval_set=eval_set)
    if tr.empty or va.empty or tr["step"].isna().any() or va["step"].isna().any():
        out = pd.DataFrame(columns=cols)
        out.attrs.update(label)
        return out
    t = tr[["step", "value"]].rename(columns={"value": "train"}).astype({"step": "float64"}).sort_values("step")
    v = va[["step", "value", "epoch"]].rename(columns={"value": "val"}).astype({"step": "float64"}).sort_values("step")
    m = pd.merge_asof(v, t, on="step", direction="backward").dropna(subset=["train"])
    m["x"] = m["step"]
    m["where"] = [f"step {int(s)}" for s in m["step"]]
    out = m[cols].reset_index(drop=True)
    out.attrs.update(label, resolution="step")
    return out


def validation_series(run) -> list[dict[str, Any]]:
    """The validation series a train/val check can compare: one per eval set's loss, else eval metrics.

    Each is ``{"eval_set", "val_name", "direction", "label"}``: the set's objective (``val_name="loss"``,
    direction ``down``) for every eval set that logs a loss; for a set without one, its eval metrics
    that have a known direction (accuracy ``up``, WER ``down``...), most points first.
    """
    from ..series import eval_sets
    cat = run.series if hasattr(run, "series") else pd.DataFrame()
    out = []
    for es in eval_sets(cat):
        if run.objective("val", eval_set=es).found:
            out.append({"eval_set": es, "val_name": "loss", "direction": "down", "phase": "val",
                        "label": "validation loss" + (f" on '{es}'" if es else "")})
    if out or cat.empty:
        return out
    for phase in ("val", "test"):           # a test metric logged every epoch is the only validation some runs have
        metrics = cat[(cat["phase"] == phase) & (cat["role"] == "eval_metric") & cat["direction"].notna()]
        for r in metrics.sort_values("points", ascending=False, kind="stable").itertuples():
            out.append({"eval_set": None, "val_name": str(r.name), "direction": str(r.direction), "phase": phase,
                        "label": f"{'validation' if phase == 'val' else 'test'} {r.name}"})
        if out:
            return out
    return out


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
