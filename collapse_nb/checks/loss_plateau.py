"""Loss plateau: the training loss stopped improving.

Over the last ``window_frac`` of the logged training loss (per epoch when there
are 3+ epochs of it, else per step), the relative improvement from the start of
the window to its end is below ``min_improvement``. The change over the window is
the Theil-Sen trend (the median of the pairwise slopes, robust to batch noise and
to single spikes) times the window's length, relative to the window's median.
A plateau after the loss already fell a lot is convergence (``info``); a plateau
near the starting value is a stuck run (``warning``), like the seed report's
"train loss flat at ~0.98 over 8 epochs"; a window whose trend rises by more than
10% after the loss had fallen is reported as "rising again" (``info``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..findings import Finding
from ..wording import percent
from ._base import Check, curve, curve_basis, finite, fmt, missing_loss
from .chance_level_loss import chance_loss

if TYPE_CHECKING:
    from ..run import Run


@dataclass
class LossPlateau(Check):
    """Train loss not improving over the last part of the run.

    Thresholds
    ----------
    window_frac : float, default 0.5
        The window: this last fraction of the logged points (SageMaker Debugger's
        ``LossNotDecreasing`` compares the loss ``num_steps`` = 10 saved steps apart; a fraction
        adapts to runs logged per epoch or per iteration).
    min_improvement : float, default 0.01
        Relative improvement over the window below this (1%) is a plateau.
    stuck_improvement : float, default 0.3
        If the loss fell less than this (30%) from its start over the whole run, the plateau is
        a ``warning`` ("stuck"); otherwise ``info`` ("levelled off", likely converged).
    min_points : int, default 5
        Fewer logged points than this: not checked.
    trained_start : float, default 0.5
        A run whose first loss is below this fraction of the chance level ``ln K`` (classes or vocabulary
        size, see ``chance_level_loss``) started from a trained model (resumed, fine-tuned): a flat loss
        there is ``info`` ("levelled off"), not "stuck".

    Requires
    --------
    Train loss values in ``run.scalars`` (``loss`` with phase ``train`` or none).
    """

    name = "loss_plateau"
    window_frac: float = 0.5
    min_improvement: float = 0.01
    stuck_improvement: float = 0.3
    min_points: int = 5
    trained_start: float = 0.5


    symptoms = {"loss_plateau": 1.0}
    symptom_words = {"loss_plateau": "the flat loss"}
    quantity = "Train loss trend (end of run)"

    def healthy_band(self, finding=None) -> str:
        t = self.limits(finding)
        return f"falls ≥ {t['min_improvement']:.0%} over the last {t['window_frac']:.0%} of the run"

    def measure(self, d) -> str:
        return (f"{_moved(d['window_change'])} over the last {d['window_points']} {d['unit']} "
                f"({fmt(d['window_head_median'])} → {fmt(d['window_tail_median'])})")

    def __call__(self, run: Run) -> list[Finding]:
        c = curve(run, "train")
        c = finite(c)
        if len(c) < self.min_points:
            return self.skip(missing_loss(c, "train", self.min_points))
        y = c["value"].to_numpy(dtype="float64")
        per_step = c["level"].iloc[0] == "step"
        n = len(y)
        k = max(3, int(np.ceil(n * self.window_frac)))
        s = n - k
        win = y[s:]
        slope = theil_sen(win)
        level = float(np.median(win))
        improvement = -slope * (k - 1) / abs(level) if level else 0.0
        w_start, w_end = level - slope * (k - 1) / 2, level + slope * (k - 1) / 2
        first = y[:max(3 if per_step else 1, int(np.ceil(n / 10)))]
        start = float(np.median(first) if per_step else np.mean(first))
        j = max(1, int(np.ceil(k / 10)))
        tail_ = float(np.median(win[-j:]))
        overall = (start - tail_) / abs(start) if start else 0.0        # logged values, not the fitted trend
        unit = "epochs" if c["level"].iloc[0] == "epoch" else "logged steps"
        ev = c[["where", "value"]].iloc[s:].assign(trend=w_start + slope * np.arange(k)).reset_index(drop=True)
        # what the sentences quote: values that are in the log (the trend only decides)
        head = float(np.median(win[:j]))
        i_lo, i_hi = s + int(np.argmin(win)), s + int(np.argmax(win))
        logged = {"window_first": float(win[0]), "window_last": float(win[-1]), "window_min": float(y[i_lo]),
                  "window_min_where": c["where"].iloc[i_lo], "window_max": float(y[i_hi]),
                  "window_max_where": c["where"].iloc[i_hi], "window_head_median": head,
                  "window_tail_median": tail_, "window_change": (tail_ - head) / abs(head) if head else 0.0}
        details = {"window_points": k, "unit": unit, "window_start": w_start, "window_end": w_end,
                   "improvement": improvement, "overall_improvement": overall, "start": start, "slope": slope,
                   "window_from": c["where"].iloc[s], "to": c["where"].iloc[-1], **logged, **curve_basis(c)}
        values = (f"{fmt(logged['window_first'])} at {details['window_from']}, {fmt(logged['window_last'])} at "
                  f"{details['to']}; lowest {fmt(logged['window_min'])} at {logged['window_min_where']}, highest "
                  f"{fmt(logged['window_max'])} at {logged['window_max_where']}")
        half = k // 2
        first_half, second_half = float(np.median(win[:half])), float(np.median(win[k - half:]))
        if improvement >= self.min_improvement and second_half < first_half:
            # the trend decides; the sentence quotes logged values that agree with it (medians of the halves)
            halves = (second_half - first_half) / abs(first_half) if first_half else 0.0
            return [self.finding("loss_decreasing", "ok", "Train loss is still decreasing",
                                 summary=f"Over the last {k} {unit} the train loss {_moved(halves)} (median of the "
                                         f"first and last {half} points of the window: {fmt(first_half)} -> "
                                         f"{fmt(second_half)}; {values}).",
                                 details=details, score=improvement)]
        stuck = overall < self.stuck_improvement
        chance, n_classes, k_from = chance_loss(run)
        pretrained = bool(stuck and chance and start < self.trained_start * chance)
        if pretrained:
            stuck = False
            details.update(chance_loss=chance, k=n_classes, k_from=k_from, started_trained=True)
        rising = improvement < -0.1
        state = "stuck" if stuck else "rising again" if rising else "levelled off"
        details["state"] = state
        change = _moved(logged["window_change"], only=True)
        summary = (f"Over the last {k} {unit} the train loss {change} (median of the first and last {j} points of "
                   f"the window: {fmt(head)} -> {fmt(tail_)}; {values}). From the start of the run "
                   f"({fmt(start)}) to the end of the window it {_moved(-overall)}"
                   + (f"; but it started at {fmt(start)}, far below the chance level ln {n_classes} = {fmt(chance)} "
                      f"({k_from}): a resumed or fine-tuned model that has levelled off, not a stuck one."
                      if pretrained else
                      ": the run is stuck near where it started." if stuck else
                      ": it learned early on but has not improved since (batch noise, harder batches late in the "
                      "run, or a learning rate too high for this stage)." if rising else
                      ": it has levelled off after learning (converged, or the learning rate is now too small)."))
        actions = (["Check what the other findings say first: dead parameters, collapsed outputs or a wrong "
                    "learning-rate schedule all show up as a flat loss.",
                    "Try a larger learning rate (or shorter warmup) on a small subset; a model that cannot overfit "
                    "a few batches has a bug, not a tuning problem.",
                    "Check the loss is computed on the right targets and is not dominated by an auxiliary term."]
                   if stuck else
                   ["If validation still improves, the run has converged; otherwise decay the learning rate later "
                    "or train a larger model."])
        return [self.finding("loss_plateau", "warning" if stuck else "info",
                             f"Train loss {state}: {change} over the last {k} {unit}",
                             summary=summary, evidence=ev, actions=actions, details=details,
                             score=float(1 - overall))]


def _moved(change: float, only: bool = False) -> str:
    """``fell 12%`` / ``fell only 0.4%`` / ``rose 3%`` for a relative change of logged values (never below -100%)."""
    if change < 0:
        return f"fell {'only ' if only and -change < 0.05 else ''}{-change:.1%}"
    return f"rose {percent(change)}" if change > 0 else "did not change"


def theil_sen(y: np.ndarray, max_points: int = 400) -> float:
    """Median of the pairwise slopes of ``y`` against its index (at most ``max_points``, evenly subsampled)."""
    n = len(y)
    idx = np.unique(np.linspace(0, n - 1, min(n, max_points)).round().astype(int))
    x, v = idx.astype("float64"), y[idx]
    i, j = np.triu_indices(len(x), k=1)
    return float(np.median((v[j] - v[i]) / (x[j] - x[i]))) if len(i) else 0.0
