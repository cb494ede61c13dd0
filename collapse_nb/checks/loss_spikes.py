"""Loss spikes: short jumps of the training loss above its recent level, and whether they recover.

Large-model runs (nanoGPT, OLMo, Megatron) show spikes: the loss jumps for a few steps, then comes
back, or does not. A spike is a logged step whose loss is more than ``factor`` times the rolling
median of the ``window`` steps before it *and* more than ``z`` robust deviations (1.4826 x the MAD
of the log-loss over that window) above it; consecutive spiking steps are one spike. Its recovery
time is the number of steps until the loss is back within ``recover_tol`` of that baseline. A spike
that never recovers before the end of the run is a ``warning`` (the run may be diverging: see
``loss_divergence``, which judges the end of the run as a whole); spikes that all recover are
``info`` with their count, size and recovery time.

Sources: the spike-and-recover pattern in large-model training (Chowdhery et al. 2022, PaLM §5.1:
"spikes ... roughly 20 times", handled by restarting 100 steps earlier and skipping batches;
Zhang et al. 2022, OPT logbook). The MAD outlier rule: Iglewicz & Hoaglin (1993), z > 3.5 on
normal data; 6 here because batch-to-batch loss noise is heavy-tailed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..findings import Finding
from ._base import Check, curve, curve_basis, finite, fmt, missing_loss

if TYPE_CHECKING:
    from ..run import Run


@dataclass
class LossSpikes(Check):
    """Training-loss spikes against a rolling baseline, with their recovery.

    Thresholds
    ----------
    factor : float, default 1.5
        A spike is at least this times the rolling median before it...
    z : float, default 6.0
        ... and more than this many robust deviations (log scale) above it.
    window : int, default 20
        Steps in the trailing baseline.
    recover_tol : float, default 0.1
        Recovered once the loss is within 10% of the baseline again.
    min_points : int, default 40
        Fewer per-step points than this: not checked (an epoch-level curve cannot show a spike).
    """

    name = "loss_spikes"
    factor: float = 1.5
    z: float = 6.0
    window: int = 20
    recover_tol: float = 0.1
    min_points: int = 40


    symptoms = {"loss_spike_unrecovered": 1.0}
    symptom_words = {"loss_spike_unrecovered": "the loss spike that did not recover"}

    def __call__(self, run: Run) -> list[Finding]:
        c = curve(run, "train")
        c = finite(c)
        if len(c) and (c["value"].astype("float64") <= 0).any():
            n_bad = int((c["value"].astype("float64") <= 0).sum())
            return self.skip(f"{n_bad} of {len(c)} points of {c.attrs.get('series') or 'the train loss'} are zero "
                             f"or negative: spikes are measured as ratios to the recent level, which needs a "
                             f"positive loss")
        if len(c) < self.min_points or (len(c) and c["level"].iloc[0] != "step"):
            if len(c) and c["level"].iloc[0] != "step":
                return self.skip(f"{c.attrs.get('series') or 'the train loss'} is logged once per epoch: a spike "
                                 f"needs per-step points")
            return self.skip(missing_loss(c, "train", self.min_points))
        y = c["value"].to_numpy(dtype="float64")
        spikes = self.spikes(y)
        basis = curve_basis(c)
        details = {**basis, "spikes": len(spikes), "window": self.window}
        if not spikes:
            return [self.finding("no_loss_spikes", "ok", "No loss spikes",
                                 summary=f"No step of {basis['series']} ({basis['points']} steps) jumps more than "
                                         f"{fmt(self.factor)}x above the median of the {self.window} steps before it.",
                                 details=details)]
        rows = []
        for s in spikes:
            rows.append({"where": c["where"].iloc[s["start"]], "loss": y[s["peak"]], "baseline": s["baseline"],
                         "size": s["size"], "steps_above": s["length"],
                         "recovered_after": None if s["recovered"] is None else
                         c["where"].iloc[s["recovered"]],
                         "recovery_steps": None if s["recovered"] is None else _steps_between(c, s["start"],
                                                                                              s["recovered"])})
        ev = pd.DataFrame(rows)
        biggest = max(spikes, key=lambda s: s["size"])
        # a spike that has not come back but had at least a window of steps to do so; one the log ends
        # in (fewer steps after it) is reported as too late to tell
        open_ = [s for s in spikes if s["recovered"] is None and len(y) - s["start"] > self.window]
        late = [s for s in spikes if s["recovered"] is None and s not in open_]
        rec = ev["recovery_steps"].dropna()
        details.update(largest=biggest["size"], largest_where=c["where"].iloc[biggest["start"]],
                       unrecovered=len(open_), median_recovery_steps=float(rec.median()) if len(rec) else None)
        what = (f"{len(spikes)} spike(s) in {basis['series']}: the largest {biggest['size']:.1f}x its baseline "
                f"{fmt(biggest['baseline'])} at {details['largest_where']}")
        if open_:
            first = open_[0]
            summary = (what + f". The spike at {c['where'].iloc[first['start']]} ({fmt(y[first['peak']])} against "
                       f"{fmt(first['baseline'])}) never came back within {self.recover_tol:.0%} of its baseline "
                       f"before the end of the log ({c['where'].iloc[-1]}).")
            return [self.finding("loss_spike_unrecovered", "warning",
                                 f"Loss spike that did not recover ({first['size']:.1f}x at "
                                 f"{c['where'].iloc[first['start']]})", summary=summary, evidence=ev,
                                 details=details, score=float(first["size"]),
                                 actions=["Restart from a checkpoint before the spike with the batches around it "
                                          "skipped, or a lower learning rate (PaLM's remedy).",
                                          "Check the data at that step (a corrupt or very long sample), the "
                                          "gradient norm there, and the loss scale under fp16.",
                                          "Lower the learning rate or beta2, add or tighten gradient clipping."])]
        tail = (f" The last one, at {c['where'].iloc[late[-1]['start']]}, is too close to the end of the log to tell "
                f"whether it recovers." if late else "")
        summary = (what + (f"; recovered after a median of {fmt(details['median_recovery_steps'])} steps." if len(rec)
                           else ".") + tail + " "
                   "Spikes that recover are common in large-model training; many of them, or growing ones, "
                   "point at a learning rate near the edge of stability.")
        return [self.finding("loss_spikes", "info", f"{len(spikes)} loss spike(s), "
                             f"{'all recovered' if not late else 'the last at the end of the log'} (largest "
                             f"{biggest['size']:.1f}x)", summary=summary, evidence=ev, details=details,
                             score=float(biggest["size"]))]

    def spikes(self, y: np.ndarray) -> list[dict]:
        """``[{start, peak, length, baseline, size, recovered}]`` for the values ``y`` (see the docstring)."""
        logy = np.log(y)
        n, w = len(y), self.window
        out, i = [], w
        while i < n:
            base_win = logy[i - w:i]
            med = float(np.median(base_win))
            mad = 1.4826 * float(np.median(np.abs(base_win - med)))
            r = logy[i] - med
            if r > np.log(self.factor) and r > self.z * max(mad, 1e-12):
                baseline = float(np.exp(med))
                j = i
                while j + 1 < n and y[j + 1] > baseline * self.factor:
                    j += 1
                peak = i + int(np.argmax(y[i:j + 1]))
                after = np.flatnonzero(y[j + 1:] <= baseline * (1 + self.recover_tol))
                recovered = int(j + 1 + after[0]) if len(after) else None
                out.append({"start": i, "peak": peak, "length": j - i + 1, "baseline": baseline,
                            "size": float(y[peak] / baseline), "recovered": recovered})
                i = (recovered if recovered is not None else n) + 1
                continue
            i += 1
        return out


def _steps_between(c: pd.DataFrame, a: int, b: int) -> float:
    s = c["step"]
    if s.notna().all():
        return float(s.iloc[b] - s.iloc[a])
    return float(b - a)
