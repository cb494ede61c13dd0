"""Overfitting: validation loss rising from its minimum while the training loss keeps falling.

Train and validation losses are paired per epoch (``run.epochs``) or, for runs
logged by iteration, each validation point with the last train point at or before
it. The check fires when the validation loss ends more than ``rise`` above its
minimum and the training loss ended lower than it was at that minimum. It also
reports AUTOTRAINER's ``test_turn_bad`` count: the number of final consecutive
evaluations where train fell and validation rose by more than ``epsilon``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..findings import Finding
from ._base import Check, aligned_train_val, fmt


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
    end_points: int = 2
    min_points: int = 3

    def __call__(self, run) -> list[Finding]:
        tv = aligned_train_val(run)
        tv = tv[np.isfinite(tv["train"].astype(float)) & np.isfinite(tv["val"].astype(float))].reset_index(drop=True) \
            if len(tv) else tv
        if len(tv) < self.min_points:
            return self.skip(f"{len(tv)} point(s) with both train and validation loss (need {self.min_points})")
        val, train = tv["val"].to_numpy(dtype="float64"), tv["train"].to_numpy(dtype="float64")
        i_min = int(np.argmin(val))
        m = min(self.end_points, len(val) - 1)
        v_end, t_end = float(val[-m:].mean()), float(train[-m:].mean())
        v_min, t_at_min = float(val[i_min]), float(train[i_min])
        rise = (v_end - v_min) / abs(v_min) if v_min else 0.0
        turn_bad = 0
        for i in range(len(val) - 1, 0, -1):
            down = train[i] - train[i - 1] < -self.epsilon * abs(train[i - 1])
            up = val[i] - val[i - 1] > self.epsilon * abs(val[i - 1])
            if down and up:
                turn_bad += 1
            else:
                break
        details = {"val_min": v_min, "val_min_where": tv["where"].iloc[i_min], "val_end": v_end, "rise": rise,
                   "train_at_val_min": t_at_min, "train_end": t_end, "consecutive_train_down_val_up": turn_bad,
                   "gap_end": (v_end - t_end) / abs(t_end) if t_end else None, "points": len(tv)}
        ev = tv[["where", "train", "val"]].assign(gap=tv["val"] - tv["train"])
        if rise <= self.rise or i_min >= len(val) - m or t_end >= t_at_min:
            return [self.finding("no_overfitting", "ok", "Validation loss follows the training loss",
                                 summary=f"The validation loss ends at {fmt(v_end)}, {rise:+.1%} from its minimum "
                                         f"{fmt(v_min)} ({details['val_min_where']}); no sustained rise while the "
                                         f"train loss falls.", details=details)]
        severity = "critical" if rise > self.critical_rise else "warning"
        summary = (f"The validation loss bottomed out at {fmt(v_min)} ({details['val_min_where']}) and rose to "
                   f"{fmt(v_end)} ({rise:+.0%}) by {tv['where'].iloc[-1]}, while the train loss kept falling from "
                   f"{fmt(t_at_min)} to {fmt(t_end)}"
                   + (f" (val/train = {v_end / t_end:.0f}x at the end)" if t_end > 0 and v_end / t_end > 3 else "")
                   + ": the model is fitting the training set, not the task."
                   + (f" Train fell and val rose at each of the last {turn_bad} evaluations." if turn_bad >= 2 else ""))
        actions = [f"Keep the checkpoint from {details['val_min_where']} (early stopping on validation loss).",
                   "Add data or augmentation, or regularise (dropout, weight decay); shrink the model if the "
                   "dataset is small.",
                   "Check the training set is not tiny or repeated (a dataloader stuck on a few batches memorises "
                   "them)."]
        return [self.finding("overfitting", severity, f"Overfitting: validation loss up {rise:.0%} from its minimum "
                             f"while train loss falls", summary=summary, evidence=ev, actions=actions,
                             details=details, score=float(rise))]
