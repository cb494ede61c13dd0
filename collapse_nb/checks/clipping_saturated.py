"""Gradient clipping saturated: the clip is active at (nearly) every step.

When the total gradient norm exceeds ``clip_grad_norm`` / ``max_grad_norm`` at
almost every step, clipping is not catching rare spikes any more: it rescales
every update, so the effective learning rate is ``lr * max_norm / norm`` and the
gradient's magnitude information is lost. The check needs the pre-clip total
norm: a logged ``grad_norm`` (Hugging Face and Lightning log the value returned
by ``clip_grad_norm_``, which is the norm before clipping) or the per-parameter
norms of ``run.grads`` combined. A logged norm that never exceeds the clip value
and sits exactly at it is a post-clip norm and cannot be judged.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..findings import Finding
from ._base import Check, config_number, fmt, table_basis
from ._grads import total_grad_norm

if TYPE_CHECKING:
    from ..run import Run


@dataclass
class ClippingSaturated(Check):
    """Total grad norm above the clip value at most steps.

    Thresholds
    ----------
    saturated_fraction : float, default 0.9
        Clip active at more than this fraction of steps is a ``warning``.
    frequent_fraction : float, default 0.5
        More than this is ``info`` (clipping often, worth knowing).
    min_steps : int, default 5

    Requires
    --------
    A configured ``clip_grad_norm`` (``max_grad_norm``, ``gradient_clip_val``...) and the total
    gradient norm per step (logged, or from ``run.grads``).
    """

    name = "clipping_saturated"
    reads = "the total gradient norm per step against the configured clip value"
    saturated_fraction: float = 0.9
    frequent_fraction: float = 0.5
    min_steps: int = 5


    explains = {
        "clipping_saturated": {
            "loss_plateau": (0.4, "clipping every step shrinks every update below what the learning rate intends"),
            "variance_collapse": (0.2, "smaller steps slow learning, but do not by themselves make outputs "
                                       "constant"),
        },
    }
    quantity = "Steps with gradient clipping active"

    def healthy_band(self, finding=None) -> str:
        return f"≤ {self.limits(finding)['frequent_fraction']:.0%}"

    def measure(self, d) -> str:
        return (f"{d['fraction_clipped']:.0%} of {d['steps']} steps (clip {fmt(d['clip'])}, median norm "
                f"{fmt(d['median_norm'])})")

    def __call__(self, run: Run) -> list[Finding]:
        clip = config_number(run, "clip_grad_norm")
        if clip is None or clip <= 0:
            return self.skip("no gradient clipping value in the config (clip_grad_norm / max_grad_norm)")
        total, how = total_grad_norm(run)
        v = total["value"].to_numpy(dtype="float64") if len(total) else np.array([])
        fin = np.isfinite(v)
        if fin.sum() < self.min_steps:
            return self.skip(f"{int(fin.sum())} total gradient norms logged (need {self.min_steps})")
        self._basis = table_basis(total[fin], f"the total gradient norm ({how}) against clip {fmt(clip)}")
        v = v[fin]
        above = v > clip
        frac = float(above.mean())
        med = float(np.median(v))
        details = {"clip": clip, "fraction_clipped": frac, "median_norm": med, "steps": int(len(v)), "norm_from": how,
                   "median_scale": float(np.median(np.minimum(1.0, clip / v[above]))) if above.any() else 1.0}
        if np.allclose(v.max(), clip, rtol=1e-6) and not above.any():
            return self.skip("the logged grad_norm never exceeds the clip value: it looks post-clip")
        ev = total.loc[fin, ["where", "value"]].assign(clipped=above,
                                                       scale=np.minimum(1.0, clip / np.maximum(v, 1e-30)))
        if frac <= self.frequent_fraction:
            return [self.finding("clipping_ok", "ok", f"Gradient clipping active at {frac:.0%} of steps",
                                 summary=f"The total gradient norm ({how}) exceeds the clip value {fmt(clip)} at "
                                         f"{int(above.sum())} of {len(v)} steps (median norm {fmt(med)}).",
                                 details=details)]
        severity = "warning" if frac > self.saturated_fraction else "info"
        summary = (f"The total gradient norm ({how}) is above the clip value {fmt(clip)} at {frac:.0%} of {len(v)} "
                   f"steps (median norm {fmt(med)}): clipping rescales "
                   f"{'almost every update' if frac > self.saturated_fraction else 'most updates'}, "
                   f"by a median factor of "
                   f"{fmt(details['median_scale'])}, so the effective learning rate is that much lower than configured "
                   f"and the step size no longer follows the gradient's size.")
        actions = [f"Raise clip_grad_norm above the typical norm (e.g. {fmt(float(np.quantile(v, 0.9)))}, the 90th "
                   f"percentile) so it only catches spikes, or lower the learning rate deliberately instead.",
                   "If the norm is large because the loss is summed (not averaged) over tokens or micro-batches, "
                   "fix the loss scale instead."]
        return [self.finding("clipping_saturated", severity, f"Gradient clipping active at {frac:.0%} of steps",
                             summary=summary, evidence=ev.head(200), actions=actions, details=details, score=frac)]
