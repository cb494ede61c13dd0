"""Loss divergence: the training loss climbs far above the minimum it had reached.

The train loss, as a rolling statistic over windows of ``end_frac`` of the points
(the median per step, at least 3 points, to look through batch noise and single
spikes; the mean per epoch), ends ``factor`` times above its lowest window.
NaN/inf values are left to ``nonfinite_loss``;
losses that can be negative (minimum <= 0, e.g. an ELBO) are not judged.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..findings import Finding
from ..wording import factor
from ._base import Check, curve, curve_basis, finite, fmt, missing_loss

if TYPE_CHECKING:
    from ..run import Run


@dataclass
class LossDivergence(Check):
    """Train loss rising by a large factor from its minimum.

    Thresholds
    ----------
    factor : float, default 3
        End-of-run loss / minimum above this is a ``warning`` (no published default; 3x is well
        beyond the noise of a smoothed curve).
    critical_factor : float, default 10
        Above this, ``critical``.
    end_frac : float, default 0.1
        Window length as a fraction of the points; the "end" is the last window.
    min_points : int, default 5

    Requires
    --------
    Train loss values in ``run.scalars``.
    """

    name = "loss_divergence"
    factor: float = 3.0
    critical_factor: float = 10.0
    end_frac: float = 0.1
    min_points: int = 5


    #: a diverging component spoils part of the objective only
    symptoms = {"loss_divergence": 1.0, "loss_component_diverging": 0.5}
    symptom_words = {"loss_divergence": "the diverging loss",
                     "loss_component_diverging": "the diverging loss component"}
    quantity = "Train loss at the end / its minimum"

    def healthy_band(self, finding=None) -> str:
        return f"≤ {fmt(self.limits(finding)['factor'])}x"

    def measure(self, d) -> str:
        return f"{d['factor']:.1f}x (minimum {fmt(d['min'])} at {d['min_where']}, end {fmt(d['end'])})"

    def __call__(self, run: Run) -> list[Finding]:
        out = self._objective(run)
        if any(f.code == "loss_divergence" for f in out) or not hasattr(run, "series"):
            return out
        total_ok = any(f.code == "loss_not_diverging" for f in out)
        comps = self._components(run, total_ok)
        if comps and not total_ok:
            return comps            # the objective could not be judged: the components speak for themselves
        return comps + out

    def _components(self, run: Run, total_ok: bool) -> list[Finding]:
        """A loss component that diverges while the objective does not (one term of a detector's sum)."""
        cat = run.series
        comps = cat[(cat["role"] == "component") & cat["network"].isna()
                    & ((cat["phase"] == "train") | cat["phase"].isna())] if len(cat) else cat
        out = []
        for name in sorted(set(comps["name"].astype(str))) if len(comps) else []:
            c = curve(run, "train", name)
            c = finite(c)
            got = self._smooth(c) if len(c) >= self.min_points else None
            if got is None:
                continue
            ys, m, i_min, lo, end = got
            if lo <= 0 or end / lo <= self.factor or i_min >= len(ys) - m:
                continue
            ratio = end / lo
            out.append(self.finding(
                "loss_component_diverging", "warning",
                f"Loss component {name} diverging: {factor(ratio)} above its minimum",
                summary=f"The train loss component {name} reached {fmt(lo)} at {c['where'].iloc[i_min]} and rose to "
                        f"{fmt(end)} by {c['where'].iloc[-1]} ({ratio:.1f}x)"
                        + (", while the total did not diverge: one term of the objective is getting worse and the "
                           "others hide it." if total_ok else
                           "; the total objective could not be judged (its terms are not logged together), so this "
                           "term is judged on its own."),
                evidence=c[["where", "value"]].assign(smoothed=ys).iloc[i_min:].reset_index(drop=True).head(200),
                details={"component": name, "min": lo, "end": end, "factor": ratio,
                         "min_where": c["where"].iloc[i_min], **curve_basis(c)},
                actions=[f"Look at what {name} measures (its targets, its weight in the total) around "
                         f"{c['where'].iloc[i_min]}: a label or anchor problem, or a weight that lets the other "
                         f"terms win."],
                score=float(np.log10(ratio))))
        return out

    def _smooth(self, c):
        """``(smoothed, window, index of the minimum, minimum, end)`` of a curve, or ``None`` when too short."""
        y = c["value"].to_numpy(dtype="float64")
        per_step = c["level"].iloc[0] == "step"
        m = max(3 if per_step else 1, int(np.ceil(len(y) * self.end_frac)))
        if len(y) < 2 * m:
            return None
        roll = pd.Series(y).rolling(m, min_periods=m)
        ys = (roll.median() if per_step else roll.mean()).to_numpy()
        i_min = int(np.nanargmin(ys))
        return ys, m, i_min, float(ys[i_min]), float(ys[-1])

    def _objective(self, run: Run) -> list[Finding]:
        c = curve(run, "train")
        c = finite(c)
        if len(c) < self.min_points:
            return self.skip(missing_loss(c, "train", self.min_points))
        y = c["value"].to_numpy(dtype="float64")
        per_step = c["level"].iloc[0] == "step"
        m = max(3 if per_step else 1, int(np.ceil(len(y) * self.end_frac)))
        if len(y) < 2 * m:
            return self.skip(f"{len(y)} finite points of {c.attrs.get('series') or 'the train loss'} are too few for "
                             f"two windows of {m}")
        roll = pd.Series(y).rolling(m, min_periods=m)
        ys = (roll.median() if per_step else roll.mean()).to_numpy()
        i_min = int(np.nanargmin(ys))
        lo, end = float(ys[i_min]), float(ys[-1])
        details = {"min": lo, "min_where": c["where"].iloc[i_min], "end": end,
                   "end_where": c["where"].iloc[-1], "window": m, **curve_basis(c)}
        if lo <= 0:
            return [self.finding("loss_not_diverging", "ok", "Train loss not diverging",
                                 summary=f"Smoothed, {details['series'] or 'the train loss'} reaches {fmt(lo)}; a "
                                         f"ratio to a non-positive minimum says nothing, so no divergence is claimed.",
                                 details=details)]
        ratio = end / lo
        details["factor"] = ratio
        if ratio <= self.factor or i_min >= len(ys) - m:
            return [self.finding("loss_not_diverging", "ok", "Train loss not diverging",
                                 summary=f"{(details['series'] or 'the train loss').capitalize()}, smoothed over {m} "
                                         f"{details['resolution']}{'s' if m != 1 else ''}, ends at {fmt(end)}, "
                                         f"{ratio:.2g}x its minimum "
                                         f"{fmt(lo)} at {details['min_where']} (divergence: above "
                                         f"{fmt(self.factor)}x).", details=details)]
        severity = "critical" if ratio > self.critical_factor else "warning"
        ev = c[["where", "value"]].assign(smoothed=ys).iloc[i_min:].reset_index(drop=True)
        summary = (f"The train loss reached {fmt(lo)} at {details['min_where']} and then rose to {fmt(end)} by "
                   f"{details['end_where']}, {ratio:.1f}x its minimum: training is diverging.")
        actions = ["Lower the learning rate (or check the schedule did not jump up: see lr_schedule_mismatch).",
                   "Add or tighten gradient clipping; look for gradient spikes before the rise (exploding_gradients).",
                   "Check the data order: a shard of corrupt or differently scaled samples late in the run also "
                   "does this."]
        return [self.finding("loss_divergence", severity, f"Train loss diverging: {factor(ratio)} above its minimum",
                             summary=summary, evidence=ev.head(200), actions=actions, details=details,
                             score=float(np.log10(ratio)))]
