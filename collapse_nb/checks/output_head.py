"""Tiny output head: the last layer's weights are orders of magnitude smaller than the rest.

An output layer initialised with a tiny scale (``std=1e-4``) or pulled to zero by
weight decay makes predictions nearly constant: the classic cause of a variance
collapse. The check compares the head's weight norm with the median weight-matrix
norm of the other layers, at the first and the last logged step.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..findings import Finding
from .dead_parameters import trainable
from ._base import Check, fmt, head_param, is_weight_matrix, order, optional_table, where, times

if TYPE_CHECKING:
    from ..run import Run


@dataclass
class OutputHead(Check):
    """The output head's weight norm against the other layers'.

    Thresholds
    ----------
    ratio : float, default 1e-3
        Head norm / median norm of the other weight matrices below this (at the first logged
        step) is a ``warning``. With PyTorch's default ``nn.Linear`` init a d->1 head has norm
        ~0.58 and a d->d layer ~sqrt(d/3), so a healthy ratio is ~1/sqrt(d/3) (0.01-0.1 for d
        up to 10k); 1e-3 is an order of magnitude below that.

    Requires
    --------
    ``run.grads`` with ``weight_norm`` (or ``weight_norm_before``) per parameter, or
    ``run.params`` with ``norm`` per checkpoint; the head is the last logged weight whose
    module name says ``projection``, ``head``, ``output``, ``fc``, ``classifier``...
    """

    name = "output_head"
    reads = "per-parameter weight norms (run.grads weight_norm, or run.params norm)"
    ratio: float = 1e-3


    explains = {
        "tiny_output_head": {
            "variance_collapse": (0.9, "an output head orders of magnitude smaller than the other layers maps every "
                                       "input to nearly the same output"),
            "chance_level_loss": (0.6, "near-constant outputs score the loss of predicting the mean"),
            "loss_plateau": (0.5, "the head's tiny weights make every other layer's gradient tiny too"),
        },
    }
    quantity = "Output head weight norm / median layer"

    def healthy_band(self, finding=None) -> str:
        return f"≥ {fmt(self.limits(finding)['ratio'])}"

    def measure(self, d) -> str:
        return f"{fmt(d['ratio_first'])} at the start, {fmt(d['ratio_last'])} at the end ({d['head']})"

    def __call__(self, run: Run) -> list[Finding]:
        snaps = self._snapshots(run)
        if snaps is None:
            return self.skip("no per-parameter weight norms (run.grads weight_norm or run.params norm)")
        first, last, names, where_first, where_last = snaps
        weights = [n for n in names if n.endswith("weight") and is_weight_matrix(n)]
        if len(weights) < 3:
            return self.skip(f"only {len(weights)} weight matrices logged (need 3 to compare the head with)")
        head = head_param(names)
        if head is None:
            return self.skip("no weight named like an output head outside the repeated blocks (projection, head, fc, "
                             "output, classifier...; a head tied to the input embedding is not stored apart)")
        others = [w for w in weights if w != head]
        rows = []
        for label, snap, at in (("first", first, where_first), ("last", last, where_last)):
            med = float(np.nanmedian([snap.get(w, np.nan) for w in others]))
            h = snap.get(head, np.nan)
            rows.append({"when": label, "where": at, "head": head, "head_norm": h, "median_other_norm": med,
                         "ratio": h / med if med > 0 else np.nan})
        ev = pd.DataFrame(rows)
        r0, r1 = float(ev["ratio"].iloc[0]), float(ev["ratio"].iloc[-1])
        details = {"head": head, "ratio_first": r0, "ratio_last": r1,
                   "head_norm_first": float(ev["head_norm"].iloc[0]), "head_norm_last": float(ev["head_norm"].iloc[-1]),
                   "median_other_first": float(ev["median_other_norm"].iloc[0])}
        if not np.isfinite(r0) or r0 >= self.ratio:
            return [self.finding("output_head_ok", "ok", f"Output head {head} is on the scale of the other layers",
                                 summary=f"The head's weight norm is {fmt(details['head_norm_first'])} against a "
                                         f"median of {fmt(details['median_other_first'])} for the other weight "
                                         f"matrices "
                                         f"(ratio {fmt(r0)}).", evidence=ev, details=details)]
        still = (f"By {where_last} it is {fmt(details['head_norm_last'])} (ratio {fmt(r1)}): "
                 + ("still tiny." if r1 < self.ratio * 10 else "growing, but the outputs started collapsed."))
        summary = (f"The output head {head} starts with weight norm {fmt(details['head_norm_first'])}, "
                   f"{times(1 / r0) if r0 > 0 else 'infinitely'} smaller than the median of the other layers "
                   f"({fmt(details['median_other_first'])}). A head this small maps every input to nearly the same "
                   f"output, so predictions start collapsed (and weight decay, if any, keeps pulling the head back "
                   f"towards zero). {still}")
        actions = ["Initialise the head with the framework default (or Xavier/He) instead of a tiny std; "
                   "initialise its bias to the target mean.",
                   "Exclude the head (and biases) from weight decay, or lower weight decay.",
                   "If the small init is deliberate (zero-init residual heads), check the learning rate lets it grow."]
        factor = times(1 / r0) if r0 > 0 else "infinitely"
        return [self.finding("tiny_output_head", "warning", f"Output head {head} is {factor} smaller than the other "
                             f"layers", summary=summary, evidence=ev, actions=actions,
                             details=details, score=float(-np.log10(max(r0, 1e-12))))]

    def _snapshots(self, run: Run):
        g = run.grads
        if not g.empty and g["param"].notna().any():
            col = "weight_norm_before" if "weight_norm_before" in g and g["weight_norm_before"].notna().any() \
                else "weight_norm"
            g = order(g.dropna(subset=[col]))
            if g.empty:
                return None
            g = g.assign(param=g["param"].astype(str))
            names = list(pd.unique(g["param"]))
            steps = g.groupby(["segment", "epoch", "batch", "step"], dropna=False, sort=False).ngroup()
            first_g, last_g = g[steps == steps.iloc[0]], g[steps == steps.iloc[-1]]
            last_col = "weight_norm" if g["weight_norm"].notna().any() else col
            self._basis = {"series": f"the weight norms of {len(names)} parameters (run.grads {col})",
                           "resolution": "step", "points": 2, "span": f"{where(first_g.iloc[0])} and "
                                                                      f"{where(last_g.iloc[0])}"}
            return (dict(zip(first_g["param"], first_g[col])), dict(zip(last_g["param"], last_g[last_col])), names,
                    where(first_g.iloc[0]), where(last_g.iloc[0]))
        p = optional_table(run, "params")
        if p.empty or not {"param", "norm", "checkpoint"} <= set(p.columns):
            return None
        p = trainable(p)
        sort_col = "step" if "step" in p and p["step"].notna().all() else "checkpoint"
        cps = list(pd.unique(p.sort_values(sort_col, kind="stable")["checkpoint"]))
        names = list(pd.unique(p["param"].astype(str)))
        snap = {c: dict(zip(p.loc[p["checkpoint"] == c, "param"].astype(str), p.loc[p["checkpoint"] == c, "norm"]))
                for c in (cps[0], cps[-1])}
        self._basis = {"series": f"the norms of {len(names)} tensors (run.params)", "resolution": "checkpoint",
                       "points": len({cps[0], cps[-1]})}
        return snap[cps[0]], snap[cps[-1]], names, f"checkpoint {cps[0]}", f"checkpoint {cps[-1]}"
