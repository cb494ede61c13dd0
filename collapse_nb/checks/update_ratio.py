"""Update-to-weight ratio: how far each step moves a layer's weights, relative to their size.

Karpathy's rule of thumb (CS231n "Neural Networks Part 3", ratio of the update
magnitude to the weight magnitude): about 1e-3 per step is healthy; much lower
and the layer barely learns, much higher and it is thrashed. The check takes the
median over the logged steps of ``update_norm / weight_norm_before`` (or a logged
``update_ratio``, or ``update_norm / weight_norm``) per weight matrix and flags
layers outside ``[too_small, too_big]``. Parameters with zero gradient are left
to ``dead_parameters``; biases and normalisation gains are skipped by default
(small tensors whose relative updates are naturally large).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from ..findings import Finding
from ._base import Check, fmt, is_weight_matrix, main_segment, table_basis

if TYPE_CHECKING:
    from ..run import Run


@dataclass
class UpdateRatio(Check):
    """Per-layer update/weight ratios far from ~1e-3.

    Thresholds
    ----------
    too_small : float, default 1e-5
        Median ratio below this: the layer barely moves (two orders below Karpathy's ~1e-3;
        SageMaker Debugger's ``WeightUpdateRatio`` uses a far looser 1e-8).
    too_big : float, default 1e-1
        Median ratio above this: each step rewrites a tenth of the weights (two orders above
        ~1e-3; SageMaker's ``large_threshold`` is 10).
    include_biases : bool, default False
    zero_grad : float, default 1e-12
        Parameters whose gradient never exceeds this are dead, not slow (left out).

    Requires
    --------
    ``run.grads`` with ``update_norm`` and ``weight_norm_before`` / ``weight_norm`` (or ``update_ratio``).
    """

    name = "update_ratio"
    reads = "run.grads: per-parameter update and weight norms per logged step"
    too_small: float = 1e-5
    too_big: float = 1e-1
    include_biases: bool = False
    zero_grad: float = 1e-12


    explains = {
        "updates_too_small": {
            "loss_plateau": (0.8, "every layer's updates are tiny relative to its weights (a learning rate far too "
                                  "low): the model barely moves, so the loss stays flat"),
            "chance_level_loss": (0.7, "a model that barely moves stays at the loss of its initialisation"),
            "variance_collapse": (0.6, "the outputs never leave the near-constant values a fresh initialisation "
                                       "gives"),
        },
        "update_ratio": {
            "loss_plateau": (0.5, "layers whose updates are tiny relative to their weights barely learn"),
            "variance_collapse": (0.3, "the layers that barely move cannot spread the outputs"),
            "loss_divergence": (0.5, "updates large relative to the weights destabilise training"),
        },
    }
    quantity = "Update / weight norm per step"

    def rule_key(self, finding) -> str:
        """``updates_too_small`` when the median layer's ratio is below ``too_small`` (the whole model barely moves)."""
        ratio = finding.details.get("median_ratio")
        limit = self.limits(finding).get("too_small", self.too_small)
        if finding.code == "update_ratio" and isinstance(ratio, (int, float)) and ratio < limit:
            return "updates_too_small"
        return finding.code

    def healthy_band(self, finding=None) -> str:
        t = self.limits(finding)
        return f"{fmt(t['too_small'])} to {fmt(t['too_big'])} (~1e-3)"

    def measure(self, d) -> str:
        return f"{fmt(d['median_ratio'])} (median of {d['layers']} weight matrices)"

    def __call__(self, run: Run) -> list[Finding]:
        g = run.grads
        self._basis = table_basis(g, f"per-parameter update and weight norms of {g['param'].nunique()} parameters "
                                     f"(run.grads)")
        if g.empty or g["param"].isna().all():
            return self.skip("no per-parameter norms in run.grads")
        g = main_segment(g).assign(param=lambda d: d["param"].astype(str))
        if "update_ratio" in g and g["update_ratio"].notna().any():
            ratio = g["update_ratio"].astype(float)
            how = "logged update_ratio"
        else:
            wcol = "weight_norm_before" if "weight_norm_before" in g and g["weight_norm_before"].notna().any() \
                else "weight_norm"
            w = g[wcol].astype(float)
            ratio = g["update_norm"].astype(float) / w.where(w > 1e-12)
            how = f"update_norm / {wcol}"
        g = g.assign(ratio=ratio)
        if g["ratio"].notna().sum() == 0:
            return self.skip("no update norms (weight_change) with weight norms in run.grads")
        gmax = g.groupby("param", sort=False)["grad_norm"].max()
        dead = set(gmax[gmax.fillna(0) <= self.zero_grad].index) if g["grad_norm"].notna().any() else set()
        per = g.dropna(subset=["ratio"]).groupby("param", sort=False)["ratio"].agg(["median", "size"])
        per = per[~per.index.isin(dead)]
        if not self.include_biases:
            per = per[[is_weight_matrix(p) for p in per.index]]
        if per.empty:
            return self.skip("no live weight matrices with update norms")
        per = per.rename(columns={"median": "median_ratio", "size": "steps"}).reset_index()
        overall = float(per["median_ratio"].median())
        small = per[per["median_ratio"] < self.too_small]
        big = per[per["median_ratio"] > self.too_big]
        details = {"how": how, "median_ratio": overall, "layers": len(per), "too_small": list(small["param"]),
                   "too_big": list(big["param"])}
        if small.empty and big.empty:
            return [self.finding("updates_in_band", "ok",
                                 f"Weights move each step (median update/weight {fmt(overall)})",
                                 summary=f"Across {len(per)} weight matrices the median update/weight ratio per step "
                                         f"is "
                                         f"{fmt(overall)} (range {fmt(per['median_ratio'].min())}-"
                                         f"{fmt(per['median_ratio'].max())}), within [{fmt(self.too_small)}, "
                                         f"{fmt(self.too_big)}] (healthy ~1e-3).", evidence=per, details=details)]
        parts = []
        if len(small):
            parts.append(f"{len(small)} layer(s) barely move (median update/weight below {fmt(self.too_small)}: "
                         + ", ".join(f"{p} {fmt(r)}" for p, r in zip(small["param"].head(5),
                                                                       small["median_ratio"].head(5)))
                         + ")")
        if len(big):
            parts.append(f"{len(big)} layer(s) change by more than {fmt(self.too_big)} of their norm per step ("
                         + ", ".join(f"{p} {fmt(r)}" for p, r in zip(big["param"].head(5), big["median_ratio"].head(5)))
                         + ")")
        ev = pd.concat([small.assign(issue="too small"), big.assign(issue="too big")], ignore_index=True)
        summary = (f"Update-to-weight ratios ({how}, median over steps) should be around 1e-3; the median layer is at "
                   f"{fmt(overall)}. " + "; ".join(parts) + ".")
        actions = []
        if len(small):
            actions.append("For layers that barely move: raise the learning rate (or their param group's), check "
                           "they are not frozen, and that weight decay is not cancelling their updates.")
        if len(big):
            actions.append("For layers that change too fast: lower the learning rate or lengthen warmup; check for "
                           "a tiny weight norm (a near-zero init makes any update large relative to it).")
        return [self.finding("update_ratio", "warning", "Update/weight ratio out of band: " + parts[0].split(" (")[0],
                             summary=summary, evidence=ev, actions=actions, details=details,
                             score=float(len(small) + len(big)) / len(per))]
