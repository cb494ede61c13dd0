"""Vanishing gradients: the whole gradient, or some layers' share of it, is vanishingly small.

Three rules, each reported with its rows:

1. absolute (SageMaker Debugger ``VanishingGradient``): the total gradient norm, or a layer's
   median gradient norm, below ``threshold`` (1e-7). SageMaker applies it to the mean of
   absolute gradient values; a norm is at least that mean, so a norm under the threshold means
   the mean is under it too.
2. first/last (AUTOTRAINER, Zhang et al. ICSE 2021, ``gradient_issue``): the first weight
   matrix's gradient norm is below ``first_last_ratio`` (1e-3) times the last one's *and* below
   ``first_norm`` (1e-4), at more than ``min_step_fraction`` of the logged steps.
3. relative: a weight matrix whose median ``grad_norm / weight_norm`` is ``relative_orders``
   (3) orders of magnitude below the median over the layers.

Parameters whose gradient is exactly zero everywhere are left to ``dead_parameters``; for the
others, medians are taken over the steps where the gradient is not exactly zero (a gradient that
is zero at some steps is intermittently cut off, which ``dead_parameters`` reports, not small).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..findings import Finding
from ._base import Check, fmt, table_basis
from ._grads import first_last_ratio, per_param, total_grad_norm

if TYPE_CHECKING:
    from ..run import Run


@dataclass
class VanishingGradients(Check):
    """Gradients too small to move the weights.

    Thresholds
    ----------
    threshold : float, default 1e-7
        SageMaker Debugger ``VanishingGradient`` default.
    first_last_ratio : float, default 1e-3
        AUTOTRAINER ``beta_1``: first-layer / last-layer gradient norm.
    first_norm : float, default 1e-4
        AUTOTRAINER ``beta_2``: the first layer's gradient norm must also be below this.
    relative_orders : float, default 3
        Orders of magnitude below the median layer's grad/weight ratio for a layer to be flagged.
    min_step_fraction : float, default 0.5
        Fraction of logged steps a step-wise rule must hold at.
    zero : float, default 1e-12
        Gradients at or below this are zero (dead, not vanishing).

    Requires
    --------
    A total ``grad_norm`` in ``run.scalars`` or per-parameter ``run.grads``.
    """

    name = "vanishing_gradients"
    reads = "total and per-parameter gradient norms (run.scalars grad_norm, run.grads)"
    threshold: float = 1e-7
    first_last_ratio: float = 1e-3
    first_norm: float = 1e-4
    relative_orders: float = 3.0
    min_step_fraction: float = 0.5
    zero: float = 1e-12


    explains = {
        "vanishing_gradients": {
            "loss_plateau": (0.7, "gradients too small to move the weights keep the loss flat"),
            "variance_collapse": (0.5, "layers that do not learn leave the outputs near their initial, constant "
                                       "values"),
            "chance_level_loss": (0.6, "nothing is learned"),
            "update_ratio": (0.8, "an update is the learning rate times the gradient: vanishing gradients make the "
                                  "updates tiny"),
        },
    }
    quantity = "Total gradient norm (range)"

    def healthy_band(self, finding=None) -> str:
        return f"above {fmt(self.limits(finding)['threshold'])} at most steps"

    def measure(self, d) -> str:
        return f"{fmt(d['total_min'])} - {fmt(d['total_max'])} (median {fmt(d['total_median'])})"

    def __call__(self, run: Run) -> list[Finding]:
        total, how = total_grad_norm(run)
        self._basis = table_basis(total, f"the total gradient norm ({how})") if len(total) else {}
        pp = per_param(run, self.zero)
        if total.empty and pp.empty:
            return self.skip("no gradient norms (total grad_norm or per-parameter run.grads)")
        problems: list[str] = []
        titles: list[str] = []          # each problem as a complete short sentence, for the finding's title
        evidence: list[pd.DataFrame] = []
        details: dict = {"total_from": how}
        severity = "warning"
        vals = total["value"].astype("float64").to_numpy() if len(total) else np.array([])
        fin = vals[np.isfinite(vals)]
        if len(fin):
            below = fin < self.threshold
            details.update(total_median=float(np.median(fin)), total_min=float(fin.min()),
                           total_max=float(fin.max()), total_below=float(below.mean()))
            if below.mean() > self.min_step_fraction:
                severity = "critical"
                problems.append(f"the total gradient norm is below {fmt(self.threshold)} at {below.mean():.0%} of "
                                f"{len(fin)} logged steps (median {fmt(np.median(fin))})")
                titles.append(f"the total gradient norm is below {fmt(self.threshold)} at {below.mean():.0%} of "
                              f"steps")
                evidence.append(total.loc[np.isfinite(vals) & (vals < self.threshold), ["where", "value"]]
                                .assign(rule="total below threshold").head(50))
        if not pp.empty:
            live = pp[pp["grad_max"] > self.zero]
            tiny = live[live["grad_median_nonzero"] < self.threshold]
            if len(tiny):
                problems.append(f"{len(tiny)} parameter(s) have a median (non-zero) gradient norm below "
                                f"{fmt(self.threshold)} ({', '.join(tiny['param'].head(5))})")
                titles.append(f"{len(tiny)} parameter(s) have a median gradient norm below {fmt(self.threshold)}")
                evidence.append(tiny[["param", "grad_median_nonzero", "grad_max"]].assign(rule="layer below threshold"))
            mats = live[live["is_matrix"] & live["grad_to_weight"].gt(0)]
            if len(mats) >= 3:
                med = float(np.median(mats["grad_to_weight"]))
                low = mats[mats["grad_to_weight"] < med * 10 ** -self.relative_orders]
                details["grad_to_weight_median"] = med
                if len(low):
                    problems.append(f"{len(low)} weight matrix/matrices get gradients over "
                                    f"{self.relative_orders:g} orders of magnitude below the median layer "
                                    f"(grad/weight {fmt(low['grad_to_weight'].min())} vs {fmt(med)}): "
                                    f"{', '.join(low['param'].head(5))}")
                    titles.append(f"{len(low)} weight matrix/matrices get gradients over {self.relative_orders:g} "
                                  f"orders of magnitude below the median layer")
                    evidence.append(low[["param", "grad_median_nonzero", "weight_median", "grad_to_weight"]]
                                    .assign(rule="relative to other layers"))
            fl = first_last_ratio(run, self.zero)
            if len(fl):
                hit = (fl["rate"] < self.first_last_ratio) & (fl["first_norm"] < self.first_norm)
                details.update(first=fl["first"].iloc[0], last=fl["last"].iloc[0],
                               first_last_median=float(fl["rate"].median()), first_last_fraction=float(hit.mean()))
                if hit.mean() > self.min_step_fraction:
                    problems.append(f"the first layer {fl['first'].iloc[0]} gets {fmt(fl['rate'].median())} of the "
                                    f"last layer's ({fl['last'].iloc[0]}) gradient at {hit.mean():.0%} of steps "
                                    f"(AUTOTRAINER: < {fmt(self.first_last_ratio)} with first-layer norm "
                                    f"< {fmt(self.first_norm)})")
                    titles.append(f"the first layer gets {fmt(fl['rate'].median())} of the last layer's gradient")
                    evidence.append(fl.loc[hit, ["where", "first_norm", "last_norm", "rate"]]
                                    .assign(rule="first/last layer").head(50))
        if not problems:
            rng = (f"total norm {fmt(details['total_min'])}-{fmt(details['total_max'])} (median "
                   f"{fmt(details['total_median'])})" if "total_median" in details else "")
            if not pp.empty:
                live = pp[pp["grad_max"] > self.zero]
                rng += ("; " if rng else "") + (f"{len(live)} of {len(pp)} parameters have non-zero gradient, "
                                                f"median norms {fmt(live['grad_median_nonzero'].min())}-"
                                                f"{fmt(live['grad_median_nonzero'].max())}" if len(live) else "")
            return [self.finding("gradients_not_vanishing", "ok", "Gradients are present and not vanishing",
                                 summary=f"Gradients reach the weights: {rng}.", details=details)]
        summary = "Gradients are vanishing: " + "; ".join(problems) + "."
        actions = ["Check activations for saturation (sigmoid/tanh) and add normalisation or residual paths "
                   "on the layers that starve.",
                   "Check the initialisation scale (too small an init shrinks gradients layer by layer).",
                   "Make sure the loss is not scaled down (divided by a large constant, or masked almost entirely)."]
        ev = pd.concat(evidence, ignore_index=True)
        return [self.finding("vanishing_gradients", severity, "Vanishing gradients: " + titles[0],
                             summary=summary, evidence=ev, actions=actions, details=details,
                             score=float(len(problems)))]
