"""Variance collapse: the model's predictions spread far less than the targets.

A regression model that predicts (nearly) a constant has ``pred_std`` far below
``target_std`` (the seed report's "1:30"). The check reads ``run.outputs``
(``pred_std / target_std`` per logged batch) and reports the ratio in the last
window, its trend from the first window, and when it fell under the warning
threshold for good.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..findings import Finding
from ._base import Check, add_where, fmt, main_segment, one_in, order, table_basis, where

if TYPE_CHECKING:
    from ..run import Run


@dataclass
class VarianceCollapse(Check):
    """Prediction std far below target std.

    Thresholds
    ----------
    critical_ratio : float, default 0.1
        ``pred_std / target_std`` in the last window below this is ``critical`` (the seed
        report's 1:12 to 1:31 batches; 10x less spread than the targets).
    warning_ratio : float, default 0.3
        Below this is a ``warning``. No published default exists; 0.3 means predictions
        explain at most ~9% of the target variance through their spread.
    last_frac : float, default 0.2
        The last window: this fraction of the logged batches (at least ``min_rows``).
    windows : int, default 8
        Windows of the evidence table when the run has fewer than 3 epochs of outputs.
    min_rows : int, default 3
        Fewer rows with both stds than this: the check does not run.
    phase : str, default "train"
        The phase judged (falls back to whichever phase has the statistics).

    Requires
    --------
    ``run.outputs`` with ``pred_std`` and ``target_std`` (``y_pred ... mean/std`` and
    ``y_true ... mean/std`` lines, or ``pred_std``/``target_std`` metrics).
    """

    name = "variance_collapse"
    reads = "run.outputs: prediction and target std per logged batch (train phase)"
    critical_ratio: float = 0.1
    warning_ratio: float = 0.3
    last_frac: float = 0.2
    windows: int = 8
    min_rows: int = 3
    phase: str = "train"


    symptoms = {"variance_collapse": 1.0}
    symptom_words = {"variance_collapse": "the collapsed predictions"}
    explains = {
        "variance_collapse": {
            "chance_level_loss": (0.8, "predicting a near-constant scores the loss of predicting the mean"),
            "loss_plateau": (0.6, "a model stuck at a constant output keeps the loss flat"),
        },
    }
    quantity = "Prediction std / target std"

    def healthy_band(self, finding=None) -> str:
        t = self.limits(finding)
        return f"≥ {fmt(t['warning_ratio'])} (collapsed below {fmt(t['critical_ratio'])})"

    def measure(self, d) -> str:
        return (f"{fmt(d['ratio_last'])} ({one_in(d['ratio_last'])}): pred std {fmt(d['pred_std_last'])} vs target "
                f"std {fmt(d['target_std_last'])}")

    def __call__(self, run: Run) -> list[Finding]:
        out = run.outputs
        self._basis = table_basis(out.dropna(subset=["pred_std"]) if "pred_std" in out else out,
                                  "prediction and target std per logged batch (run.outputs)")
        if out.empty or out[["pred_std", "target_std"]].dropna().empty:
            return self.skip("no prediction/target std statistics in run.outputs")
        ok = out.dropna(subset=["pred_std", "target_std"])
        ok = ok[(ok["target_std"] > 0) & np.isfinite(ok["pred_std"]) & np.isfinite(ok["target_std"])]
        phase_rows = ok[(ok["phase"] == self.phase) | ok["phase"].isna()]
        used_phase = self.phase if len(phase_rows) else str(ok["phase"].dropna().iloc[0]) if ok["phase"].notna().any() \
            else "unknown"
        rows = order(main_segment(phase_rows if len(phase_rows) else ok))
        if len(rows) < self.min_rows:
            return self.skip(f"only {len(rows)} batch(es) with prediction and target std (need {self.min_rows})")
        rows = rows.assign(ratio=rows["pred_std"] / rows["target_std"])
        table = self._windows(rows)
        k = max(self.min_rows, int(np.ceil(len(rows) * self.last_frac)))
        last, first = rows.iloc[-k:], rows.iloc[:k]
        r_last = float(np.median(last["ratio"]))
        r_first = float(np.median(first["ratio"]))
        onset = self._onset(rows)
        details = {"phase": used_phase, "ratio_last": r_last, "ratio_first": r_first,
                   "pred_std_last": float(last["pred_std"].median()),
                   "target_std_last": float(last["target_std"].median()), "rows": len(rows),
                   "onset": onset, "trend": "falling" if r_last < r_first * 0.7 else
                   "rising" if r_last > r_first * 1.4 else "flat"}
        if r_last >= self.warning_ratio:
            return [self.finding(
                "outputs_spread_ok", "ok", f"Predictions vary like the targets (std ratio {fmt(r_last)})",
                summary=f"In the last {k} logged {used_phase} batches the prediction std is {fmt(r_last)} of the "
                        f"target std (median; pred {fmt(details['pred_std_last'])}, target "
                        f"{fmt(details['target_std_last'])}): no variance collapse.",
                evidence=table, details=details, score=r_last)]
        severity = "critical" if r_last < self.critical_ratio else "warning"
        if details["trend"] == "rising":
            story = (f"It started even lower ({fmt(r_first)}, {one_in(r_first)}) and is recovering only slowly: "
                     f"the outputs were collapsed from the start, as with a tiny-initialised or saturated output head.")
        elif details["trend"] == "falling":
            story = (f"It fell from {fmt(r_first)} ({one_in(r_first)}) in the first batches: the collapse "
                     f"developed during training.")
        else:
            story = f"It was {fmt(r_first)} in the first batches: the outputs never spread out."
        since = f" It has stayed under {fmt(self.warning_ratio)} since {onset['where']}." if onset else ""
        summary = (f"Predictions are nearly constant: in the last {k} logged {used_phase} batches the prediction std "
                   f"is {fmt(details['pred_std_last'])} against a target std of {fmt(details['target_std_last'])}, "
                   f"a ratio of {fmt(r_last)} ({one_in(r_last)}). {story}{since}")
        actions = [
            "Check the output head: its initialisation scale (a std of 1e-4 or a zero init keeps outputs near "
            "constant), any squashing activation after it, and whether its gradient is non-zero.",
            "Look for dead or frozen parameters on the path to the output (see dead_parameters) and for "
            "regularisation strong enough to pull the head to zero (weight decay, dropout).",
            "Compare the loss with the target variance: a loss near var(target) means the model predicts the mean.",
            "Log pred/target std every epoch after the fix; the ratio should climb towards 0.5-1.",
        ]
        return [self.finding("variance_collapse", severity,
                             f"Prediction variance collapsed: pred/target std {fmt(r_last)} ({one_in(r_last)})",
                             summary=summary, evidence=table, actions=actions, details=details,
                             score=float(-np.log10(max(r_last, 1e-12))))]

    def _windows(self, rows: pd.DataFrame) -> pd.DataFrame:
        """Per epoch (3+ epochs) or per equal-count window: where, n, pred_std, target_std, ratio."""
        epochs = rows["epoch"].dropna().unique()
        if len(epochs) >= 3:
            key = rows["epoch"].astype("float64")
        else:
            n = min(self.windows, len(rows))
            key = pd.Series(np.arange(len(rows)) * n // len(rows), index=rows.index)
        out = []
        for _, g in rows.groupby(key, sort=True):
            a, b = g.iloc[0], g.iloc[-1]
            span = where(a) if len(g) == 1 else f"{where(a)} .. {where(b)}"
            out.append({"window": span, "epoch": a["epoch"], "rows": len(g),
                        "pred_std": float(g["pred_std"].mean()), "target_std": float(g["target_std"].mean()),
                        "ratio": float(g["ratio"].median())})
        t = pd.DataFrame(out)
        t["one_in"] = [one_in(r) for r in t["ratio"]]
        return t

    def onset_of(self, run: Run) -> dict | None:
        """Where the collapse began (``where, epoch, batch, step``), or ``None`` when the outputs did not collapse."""
        out = run.outputs
        if out.empty or out[["pred_std", "target_std"]].dropna().empty:
            return None
        ok = out.dropna(subset=["pred_std", "target_std"])
        ok = ok[(ok["target_std"] > 0) & np.isfinite(ok["pred_std"]) & np.isfinite(ok["target_std"])]
        rows = ok[(ok["phase"] == self.phase) | ok["phase"].isna()]
        rows = order(main_segment(rows if len(rows) else ok))
        if len(rows) < self.min_rows:
            return None
        return self._onset(rows.assign(ratio=rows["pred_std"] / rows["target_std"]))

    def _onset(self, rows: pd.DataFrame) -> dict | None:
        """The first batch after which the ratio (centred 3-batch rolling median: one-batch blips do not count) stays
        under ``warning_ratio``."""
        r = rows["ratio"].rolling(3, center=True, min_periods=1).median().to_numpy()
        under = r < self.warning_ratio
        if not under[-1]:
            return None
        above = np.flatnonzero(~under)
        i = int(above[-1] + 1) if len(above) else 0
        row = add_where(rows.iloc[[i]]).iloc[0]
        return {"where": row["where"], "index": i, "epoch": _num(row["epoch"]), "batch": _num(row["batch"]),
                "step": _num(row["step"]), "from_start": i == 0}


def _num(v):
    return None if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)) else float(v)
