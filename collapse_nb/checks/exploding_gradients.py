"""Exploding gradients: non-finite or huge gradient norms, spikes, or gradients growing towards the input.

Rules:

1. non-finite (SageMaker Debugger ``ExplodingTensor``, which flags NaN and inf values, and
   AUTOTRAINER's ``nan_gradient``): any NaN/inf gradient norm, total or per layer -> ``critical``,
   with the first step it appeared; ``warning`` when they are isolated (``isolated_fraction``) and the
   loss stays finite after them (an overflow step that was skipped: HF Trainer logs ``grad_norm: NaN``).
2. absolute: a norm above ``threshold`` (1e8) -> ``critical``. SageMaker's rule has no magnitude
   bound; 1e8 is this project's deliberately loose bound (far above anything a clipped or healthy
   run logs).
3. spikes: total norm above ``spike_factor`` (100) times the run's median, after the first
   ``warmup_fraction`` (5%) of steps -> ``warning``.
4. first/last (AUTOTRAINER ``beta_3`` = 70): the first weight matrix's gradient norm more than 70
   times the last one's at more than ``min_step_fraction`` of the steps -> ``warning``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..findings import Finding
from ._base import Check, add_where, fmt, main_segment, order, table_basis
from ._grads import first_last_ratio, total_grad_norm

if TYPE_CHECKING:
    from ..run import Run


@dataclass
class ExplodingGradients(Check):
    """NaN/inf or enormous gradients.

    Thresholds
    ----------
    threshold : float, default 1e8
        Absolute bound on any gradient norm (this project's choice; see the module docstring).
    spike_factor : float, default 100
        A total norm this many times the median is a spike.
    warmup_fraction : float, default 0.05
        Spikes in this first fraction of the steps are not counted (early steps are large).
    first_last_ratio : float, default 70
        AUTOTRAINER ``beta_3``: first-layer / last-layer gradient norm above this is explosive.
    min_step_fraction : float, default 0.5
        Fraction of steps the first/last rule must hold at.
    isolated_fraction : float, default 0.01
        NaN/inf norms at no more than this fraction of the logged norms, with a finite last norm and a
        finite train loss after the first one, are a skipped overflow step the run survived: ``warning``,
        not ``critical``.

    Requires
    --------
    A total ``grad_norm`` in ``run.scalars`` or per-parameter ``run.grads``.
    """

    name = "exploding_gradients"
    reads = "total and per-parameter gradient norms (run.scalars grad_norm, run.grads)"
    threshold: float = 1e8
    isolated_fraction: float = 0.01
    spike_factor: float = 100.0
    warmup_fraction: float = 0.05
    first_last_ratio: float = 70.0
    min_step_fraction: float = 0.5


    explains = {
        "exploding_gradients": {
            "nonfinite_loss": (0.9, "NaN/inf or huge gradients corrupt the weights, then the loss"),
            "loss_divergence": (0.8, "oversized updates throw the weights out of the basin"),
            "loss_spike_unrecovered": (0.6, "a gradient spike throws the weights off; the loss jumps with it"),
        },
    }
    quantity = "Gradient norm size"

    def healthy_band(self, finding=None) -> str:
        t = self.limits(finding)
        return f"finite, below {fmt(t['threshold'])}, no spike over {fmt(t['spike_factor'])}x the median"

    def measure(self, d) -> str:
        parts = []
        if d.get("nonfinite"):
            parts.append(f"{d['nonfinite']} NaN/inf" + (" (survived)" if d.get("survived") else ""))
        if "total_max" in d:
            parts.append(f"largest total {fmt(d['total_max'])}, median {fmt(d['total_median'])}")
        elif "max" in d:
            parts.append(f"largest {fmt(d['max'])}")
        if d.get("spikes"):
            parts.append(f"{d['spikes']} spike(s)")
        return "; ".join(parts) if parts else "finite"

    def __call__(self, run: Run) -> list[Finding]:
        total, how = total_grad_norm(run)
        self._basis = table_basis(total, f"the total gradient norm ({how})") if len(total) else {}
        g = run.grads
        has_params = not g.empty and g["grad_norm"].notna().any()
        if total.empty and not has_params:
            return self.skip("no gradient norms (total grad_norm or per-parameter run.grads)")
        problems, evidence, severity = [], [], "warning"
        details: dict = {"total_from": how}
        rows = self._all_norms(run)
        vals = rows["value"].to_numpy(dtype="float64")
        bad = ~np.isfinite(vals)
        if bad.any():
            first = _shown(rows[bad], 1).iloc[0]
            survived = self._survived(run, rows, bad, rows[bad].iloc[0])
            severity = "warning" if survived else "critical"
            details.update(nonfinite=int(bad.sum()), first_nonfinite=first["where"], survived=survived)
            params = rows.loc[bad, "param"].dropna().unique().tolist()
            problems.append(f"{int(bad.sum())} gradient norm(s) are NaN/inf, first at {first['where']}"
                            + (f" ({first['param']})" if isinstance(first["param"], str) else "")
                            + (f"; layers: {', '.join(params[:5])}" if params else "")
                            + ("; isolated, and the loss stayed finite after it: most likely an overflow whose "
                               "optimizer step was skipped (an AMP loss scaler, or a Trainer that skips non-finite "
                               "updates), which the run survived" if survived else ""))
            evidence.append(_shown(rows[bad]).assign(rule="non-finite"))
        huge = np.isfinite(vals) & (vals > self.threshold)
        if huge.any():
            severity = "critical"
            details["max"] = float(vals[np.isfinite(vals)].max())
            problems.append(f"{int(huge.sum())} gradient norm(s) above {fmt(self.threshold)} "
                            f"(max {fmt(details['max'])})")
            evidence.append(_shown(rows[huge]).assign(rule="above threshold"))
        tv = total["value"].to_numpy(dtype="float64") if len(total) else np.array([])
        fin = np.isfinite(tv)
        if fin.sum() >= 10:
            med = float(np.median(tv[fin]))
            details.update(total_median=med, total_max=float(tv[fin].max()))
            skip = int(np.ceil(len(tv) * self.warmup_fraction))
            spike = fin & (tv > self.spike_factor * med) & (np.arange(len(tv)) >= skip)
            if spike.any() and med > 0:
                details["spikes"] = int(spike.sum())
                top = total[spike].iloc[int(np.argmax(tv[spike]))]["where"]
                problems.append(f"{int(spike.sum())} spike(s) of the total norm above {self.spike_factor:g}x its "
                                f"median {fmt(med)} (largest {fmt(tv[spike].max())} at {top})")
                evidence.append(total.loc[spike, ["where", "value"]].assign(rule="spike").head(50))
        fl = first_last_ratio(run)
        if len(fl):
            hit = fl["rate"] > self.first_last_ratio
            details.update(first_last_median=float(fl["rate"].median()), first_last_fraction=float(hit.mean()))
            if hit.mean() > self.min_step_fraction:
                problems.append(f"the first layer {fl['first'].iloc[0]} gets {fmt(fl['rate'].median())}x the gradient "
                                f"of the last ({fl['last'].iloc[0]}) at {hit.mean():.0%} of steps (AUTOTRAINER: > "
                                f"{self.first_last_ratio:g})")
                evidence.append(fl.loc[hit, ["where", "first_norm", "last_norm", "rate"]]
                                .assign(rule="first/last").head(50))
        if not problems:
            n = int(np.isfinite(vals).sum())
            top = fmt(np.nanmax(vals)) if n else "n/a"
            return [self.finding("gradients_finite", "ok", "Gradients are finite and bounded",
                                 summary=f"All {n} logged gradient norms are finite; the largest is {top}.",
                                 details={**details, "n": n})]
        actions = ["Clip gradients (torch.nn.utils.clip_grad_norm_, max_norm=1.0) and log the pre-clip norm.",
                   "Lower the learning rate or lengthen warmup; check for a division by a near-zero value "
                   "(normalisation of an empty batch, log of 0) in the loss.",
                   "With mixed precision, check the loss scaler (inf gradients should skip the step)."]
        ev = pd.concat(evidence, ignore_index=True)
        title = "Exploding gradients: " + problems[0].split(";")[0]
        if details.get("survived") and len(problems) == 1:
            title = (f"{details['nonfinite']} isolated NaN/inf gradient norm(s) the run survived (first at "
                     f"{details['first_nonfinite']})")
        return [self.finding("exploding_gradients", severity, title,
                             summary="Gradients explode: " + "; ".join(problems) + ".", evidence=ev, actions=actions,
                             details=details, score=float(details.get("nonfinite", 0) + len(problems)))]

    def _survived(self, run: Run, rows: pd.DataFrame, bad: np.ndarray, first) -> bool:
        """NaN/inf norms at no more than ``isolated_fraction`` of the logged norms, the last norm finite, and a
        train loss that is logged after the first one and finite there: a skipped step, not a broken run."""
        if bad.mean() > self.isolated_fraction or bad[-1]:
            return False
        raw = first.get("step") if hasattr(first, "get") else None
        if raw is None:
            return False
        try:
            step = float(raw)
        except (TypeError, ValueError):
            return False
        if step != step:
            return False
        obj = run.objective("train") if hasattr(run, "objective") else None
        if obj is None or not obj.found:
            return False
        after = pd.to_numeric(obj.rows["value"][pd.to_numeric(obj.rows["step"], errors="coerce") > step],
                              errors="coerce").to_numpy(dtype="float64")
        return bool(len(after) and np.isfinite(after).all())

    @staticmethod
    def _all_norms(run: Run) -> pd.DataFrame:
        """Every logged gradient norm (total and per parameter, NaN/inf kept) in time order: ``where`` is
        filled in only for the rows a finding shows (see :meth:`_shown`)."""
        sc = run.scalars
        rows = order(main_segment(sc[sc["name"] == "grad_norm"]))
        cols = ["segment", "epoch", "batch", "step", "value", "param"]
        if rows.empty:
            return pd.DataFrame(columns=cols)
        rows = rows[cols].assign(value=rows["value"].astype("float64"),
                                 param=rows["param"].astype(object).where(rows["param"].notna(), None))
        return rows.reset_index(drop=True)


def _shown(rows: pd.DataFrame, n: int = 50) -> pd.DataFrame:
    """The first ``n`` rows with their ``where``, as evidence."""
    return add_where(rows.head(n))[["where", "param", "value"]]
