"""Overfitting: validation getting worse from its best while the training loss keeps falling.

The train objective and each validation series are paired per epoch or, for runs logged by
iteration, each validation point with the last train point at or before it. The validation series
are the validation loss of every eval set, or, where no validation loss is logged, the eval
metrics with a known direction (accuracy, mAP, AUC going up; WER, perplexity going down). The check
fires when the validation series ends more than ``rise`` worse than its best and the training loss
ended lower than it was there, or when it got worse at each of the last ``turn_bad`` evaluations
while the train loss fell (AUTOTRAINER's ``test_turn_bad``). With several eval sets the worst is
reported, naming the set; the others are in ``details["per_set"]``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..findings import Finding
from ._base import Check, aligned_train_val, fmt, validation_series

if TYPE_CHECKING:
    from ..run import Run


@dataclass
class Overfitting(Check):
    """Validation loss rising while training loss falls.

    Thresholds
    ----------
    rise : float, default 0.1
        Validation loss at the end (mean of the last ``end_points``) more than this fraction above
        its minimum (SageMaker Debugger's ``Overfit`` rule uses ``ratio_threshold`` 0.1 on
        (val - train) / train; here the 10% is applied to the rise of the validation loss).
    critical_rise : float, default 0.5
        A rise above this fraction (50%) is ``critical``: the model is memorising.
    epsilon : float, default 0.01
        AUTOTRAINER's ``epsilon`` (10e-3) for counting consecutive train-down / val-up evaluations.
    turn_bad : int, default 3
        Also a ``warning`` when the validation series got worse (by more than ``epsilon``) at each of the
        last this many evaluations while the train loss fell, however small the total rise.
    end_points : int, default 2
    min_points : int, default 3

    Requires
    --------
    Train and validation ``loss`` at matching epochs or steps.
    """

    name = "overfitting"
    rise: float = 0.1
    critical_rise: float = 0.5
    epsilon: float = 0.01
    turn_bad: int = 3
    end_points: int = 2
    min_points: int = 3


    symptoms = {"overfitting": 1.0}
    symptom_words = {"overfitting": "the overfitting"}
    explains = {"overfitting": {"overfitting": (0.7, "the model memorises the training set (too little data or "
                                                     "regularisation for its size)")}}
    quantity = "Validation loss (or metric) worse than its best"

    def healthy_band(self, finding=None) -> str:
        return f"≤ {self.limits(finding)['rise']:.0%}"

    def measure(self, d) -> str:
        return (f"{d['rise']:+.1%} ({d.get('val_series', 'validation')}: best {fmt(d['val_best'])} at "
                f"{d['val_best_where']}, end {fmt(d['val_end'])})")

    def __call__(self, run: Run) -> list[Finding]:
        candidates = validation_series(run)
        if not candidates:
            tv = aligned_train_val(run)
            return self.skip(tv.attrs.get("missing") or "no validation loss or eval metric with a known direction")
        results, skipped = [], []
        for c in candidates:
            tv = aligned_train_val(run, eval_set=c["eval_set"], val_name=c["val_name"], val_phase=c["phase"])
            tv = tv[np.isfinite(tv["train"].astype(float)) & np.isfinite(tv["val"].astype(float))].reset_index(
                drop=True) if len(tv) else tv
            if len(tv) < self.min_points:
                skipped.append(f"{c['label']}: {len(tv)} point(s) paired with the train loss")
                continue
            results.append(self._one(tv, c))
        if not results:
            return self.skip(f"fewer than {self.min_points} train/validation pairs ({'; '.join(skipped)})")
        worst = max(results, key=lambda f: (f.rank == 0, f.severity != "ok", f.score))
        if len(results) > 1:
            worst.details["per_set"] = [{"series": f.details["val_series"], "code": f.code,
                                         "severity": f.severity, "worse_by": f.details["rise"]} for f in results]
        return [worst]

    def _one(self, tv, c) -> Finding:
        sign = 1.0 if c["direction"] == "down" else -1.0     # work on "badness": lower is better
        label = c["label"]
        val_raw, train = tv["val"].to_numpy(dtype="float64"), tv["train"].to_numpy(dtype="float64")
        val = sign * val_raw
        i_best = int(np.argmin(val))
        m = min(self.end_points, len(val) - 1)
        v_end, t_end = float(val_raw[-m:].mean()), float(train[-m:].mean())
        v_best, t_at_best = float(val_raw[i_best]), float(train[i_best])
        rise = sign * (v_end - v_best) / abs(v_best) if v_best else 0.0
        turn_bad = 0
        for i in range(len(val) - 1, 0, -1):
            down = train[i] - train[i - 1] < -self.epsilon * abs(train[i - 1])
            worse = val[i] - val[i - 1] > self.epsilon * abs(val[i - 1])
            if down and worse:
                turn_bad += 1
            else:
                break
        word = "rose" if c["direction"] == "down" else "fell"
        best_word = "minimum" if c["direction"] == "down" else "best"
        details = {"val_best": v_best, "val_best_where": tv["where"].iloc[i_best], "val_end": v_end, "rise": rise,
                   "train_at_val_best": t_at_best, "train_end": t_end, "consecutive_train_down_val_worse": turn_bad,
                   "gap_end": (v_end - t_end) / abs(t_end) if t_end and c["val_name"] == "loss" else None,
                   "points": len(tv), "val_series": label, "direction": c["direction"], "eval_set": c["eval_set"],
                   "train_series": tv.attrs.get("train_series", ""), "resolution": tv.attrs.get("resolution"),
                   # older names, kept for readers of the details
                   "val_min": v_best, "val_min_where": tv["where"].iloc[i_best]}
        ev = tv[["where", "train", "val"]].rename(columns={"val": label})
        sustained = turn_bad >= self.turn_bad and rise > self.epsilon
        if (rise <= self.rise and not sustained) or i_best >= len(val) - m or t_end >= t_at_best:
            at_end = i_best >= len(val) - m
            where_best = (f"its {best_word}, {fmt(v_best)}, is at {details['val_best_where']}, at the end of the run"
                          if at_end else
                          f"{fmt(v_end)} at the end (mean of the last {m}), {abs(rise):.1%} "
                          f"{'worse' if rise > 0 else 'better'} than its {best_word} {fmt(v_best)} "
                          f"({details['val_best_where']})")
            return self.finding("no_overfitting", "ok", f"The {label} follows the training loss",
                                summary=f"The {label}: {where_best}; no sustained worsening while the train loss "
                                        f"falls ({len(tv)} {details['resolution'] or 'time'} points).",
                                details=details)
        severity = "critical" if rise > self.critical_rise else "warning"
        summary = (f"The {label} was best at {fmt(v_best)} ({details['val_best_where']}) and {word} to "
                   f"{fmt(v_end)} ({rise:.0%} worse) by {tv['where'].iloc[-1]}, while the train loss kept falling "
                   f"from {fmt(t_at_best)} to {fmt(t_end)}"
                   + (f" (val/train = {v_end / t_end:.0f}x at the end)" if c["val_name"] == "loss" and t_end > 0
                      and v_end / t_end > 3 else "")
                   + ": the model is fitting the training set, not the task."
                   + (f" It got worse at each of the last {turn_bad} evaluations while the train loss fell."
                      if turn_bad >= 2 else ""))
        actions = [f"Keep the checkpoint from {details['val_best_where']} (early stopping on the {label}).",
                   "Add data or augmentation, or regularise (dropout, weight decay); shrink the model if the "
                   "dataset is small.",
                   "Check the training set is not tiny or repeated (a dataloader stuck on a few batches memorises "
                   "them)."]
        return self.finding("overfitting", severity, f"Overfitting: {label} {rise:.0%} worse than its {best_word} "
                            f"while train loss falls", summary=summary, evidence=ev, actions=actions,
                            details=details, score=float(rise))
