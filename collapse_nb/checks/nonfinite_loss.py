"""Non-finite loss: NaN or inf in any logged loss, with where it first appeared.

Also AUTOTRAINER's ``nan_loss`` companion rule: a loss at or above ``huge`` (1e5) counts
as blown up. Every metric whose canonical name is ``loss`` or ends in ``loss``
(``box_loss``, ``gen_loss``...) is looked at, in every phase and segment.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..findings import Finding
from ..series import networks
from ..series import seen as series_seen
from ._base import Check, add_where, fmt, order, table_basis

if TYPE_CHECKING:
    from ..run import Run


@dataclass
class NonfiniteLoss(Check):
    """NaN/inf (or astronomically large) loss values.

    Thresholds
    ----------
    huge : float, default 1e5
        AUTOTRAINER (``loss_issue``) treats a validation loss >= 1e5 like NaN; here any loss at or
        above it is a ``warning`` (NaN/inf are ``critical``).

    Requires
    --------
    Loss values in ``run.scalars`` (names ``loss`` or ``*loss``).
    """

    name = "nonfinite_loss"
    reads = "every loss series (the objective and its components, any phase)"
    huge: float = 1e5


    symptoms = {"nonfinite_loss": 1.0}
    symptom_words = {"nonfinite_loss": "the NaN/inf loss"}
    explains = {"nonfinite_loss": {"loss_divergence": (0.5, "the loss blew up")}}
    quantity = "NaN/inf loss values"

    def healthy_band(self, finding=None) -> str:
        return f"0 (and none ≥ {fmt(self.limits(finding)['huge'])})"

    def measure(self, d) -> str:
        if "nonfinite" in d:
            return f"{d['nonfinite']} NaN/inf ({d['nan']} NaN, {d['inf']} inf), {d['huge']} huge"
        return f"0 of {d['n']:,}"

    def __call__(self, run: Run) -> list[Finding]:
        s = run.scalars
        cat = run.series if hasattr(run, "series") else None
        if cat is not None and len(cat):
            losses = set(cat.loc[cat["role"].isin(["objective", "component"]), "name"].astype(str))
        else:
            names = s["name"].astype(str)
            losses = set(names[(names == "loss") | names.str.endswith("loss")])
        rows = s[s["name"].astype(str).isin(losses) & s["param"].isna()]
        if rows.empty:
            seen = series_seen(cat) if cat is not None else "none"
            return self.skip(f"no loss series recognised (series seen: {seen})")
        self._basis = {**table_basis(rows), "series": sorted(losses)}
        v = rows["value"].to_numpy(dtype="float64")
        nan, inf = np.isnan(v), np.isinf(v)
        huge = np.isfinite(v) & (np.abs(v) >= self.huge)
        if not (nan | inf | huge).any():
            objective = run.objective("train").found if hasattr(run, "objective") else True
            n_series = rows["name"].astype(str).nunique()
            # without a recognised training objective (a GAN's per-network losses, a validation loss only) the
            # title says what is finite, so it does not read as "the loss is fine" beside "no training objective"
            title = ("Loss is finite throughout" if objective or (cat is not None and networks(cat)) else
                     "The one logged loss series is finite (not a training objective)" if n_series == 1 else
                     f"The {n_series} logged loss series are finite (none is a training objective)")
            return [self.finding("loss_finite", "ok", title,
                                 summary=f"All {len(v):,} logged loss values ({rows['name'].astype(str).nunique()} "
                                         f"series: {', '.join(sorted(losses)[:8])}) are finite and below "
                                         f"{fmt(self.huge)}.",
                                 details={"n": int(len(v)), "series": sorted(losses)})]
        bad = add_where(order(rows[nan | inf | huge]))
        bad = bad.assign(kind=np.where(np.isnan(bad["value"]), "NaN",
                                       np.where(np.isinf(bad["value"]), "inf", "huge")))
        first = bad.iloc[0]
        phase = first["phase"] if isinstance(first["phase"], str) else "unphased"
        nonfinite = int((nan | inf).sum())
        last_good = self._last_good(rows, first, self.huge)
        details = {"nonfinite": nonfinite, "nan": int(nan.sum()), "inf": int(inf.sum()), "huge": int(huge.sum()),
                   "first_where": first["where"], "first_name": str(first["name"]), "first_phase": phase,
                   "first_line": None if pd.isna(first["line"]) else int(first["line"]),
                   "first_source": str(first["source"]), "last_finite_before": last_good}
        severity = "critical" if nonfinite else "warning"
        what = f"{first['kind']} {phase} {first['name']}"
        became = first["kind"] if first["kind"] != "huge" else fmt(first["value"])
        summary = (f"The {phase} {first['name']} became {became} "
                   f"at {first['where']} ({first['source']}, line {details['first_line']}); "
                   f"{nonfinite} NaN/inf and {int(huge.sum())} value(s) >= {fmt(self.huge)} in all."
                   + (f" The last finite value before it was {fmt(last_good)}." if last_good is not None else ""))
        actions = ["Find the first bad step and replay it: log the inputs, the logits and the loss terms there "
                   "(torch.autograd.set_detect_anomaly(True) names the op).",
                   "Look for log(0), division by zero or sqrt of a negative in the loss; clamp or add an epsilon.",
                   "Lower the learning rate, add warmup and gradient clipping; with fp16, use a loss scaler or bf16."]
        cols = [c for c in ("where", "phase", "name", "value", "kind", "source", "line") if c in bad.columns]
        return [self.finding("nonfinite_loss", severity, f"Loss became {what.split(' ')[0]} at {first['where']}",
                             summary=summary, evidence=bad[cols].head(100), actions=actions, details=details,
                             score=float(nonfinite + 0.5 * int(huge.sum())))]

    @staticmethod
    def _last_good(rows: pd.DataFrame, first, huge: float) -> float | None:
        same = rows[(rows["name"] == first["name"]) & (rows["phase"].astype(object) == first["phase"])
                    if isinstance(first["phase"], str) else (rows["name"] == first["name"])]
        same = order(same)
        v = same["value"].to_numpy(dtype="float64")
        bad = ~np.isfinite(v) | (np.abs(v) >= huge)
        idx = np.flatnonzero(bad)
        if not len(idx) or idx[0] == 0:
            return None
        return float(v[idx[0] - 1])
