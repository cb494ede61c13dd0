"""Gradients that die mid-run: parameters with normal gradients until some step and exactly 0 after it.

A parameter that *never* receives gradient is a wiring problem (``dead_parameters``). One that learns
for a while and then gets exactly zero at every later step is a different failure: dying ReLUs
(every unit of a layer pushed into the flat part), a gate or mask that closed, a branch switched off
by a schedule, or the outputs collapsing to a constant so that nothing upstream gets a signal. The
check finds, per parameter, the last logged step with a gradient above ``zero_grad``; when at least
``min_live`` logged steps before it had one and every one of at least ``min_dead`` logged steps after
it (and at least ``min_dead_fraction`` of the steps) is zero, the parameter died there. Parameters
are grouped by module with the onset of each; when the outputs collapsed (``variance_collapse``'s
onset) the finding says whether the gradients died before or after it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..findings import Finding
from ._base import Check, add_where, module_of, order, table_basis
from .variance_collapse import VarianceCollapse

if TYPE_CHECKING:
    from ..run import Run


@dataclass
class DyingGradients(Check):
    """Parameters whose gradient becomes exactly zero part-way through the run and stays there.

    Thresholds
    ----------
    zero_grad : float, default 1e-12
        A gradient norm at or below this is zero (as ``dead_parameters``).
    min_live : int, default 3
        Logged steps with a non-zero gradient needed before the death.
    min_dead : int, default 3
        Logged steps with zero gradient needed after it...
    min_dead_fraction : float, default 0.1
        ... and at least this fraction of the parameter's logged steps.
    """

    name = "dying_gradients"
    reads = "run.grads: per-parameter gradient norms per logged step"
    zero_grad: float = 1e-12
    min_live: int = 3
    min_dead: int = 3
    min_dead_fraction: float = 0.1


    explains = {
        "gradients_die": {
            "loss_plateau": (0.4, "parameters that stopped receiving gradient stopped learning"),
            "variance_collapse": (0.3, "modules cut off part-way through leave less of the model to spread the "
                                       "outputs (unless the collapse came first: see the finding)"),
        },
    }

    def __call__(self, run: Run) -> list[Finding]:
        g = run.grads
        self._basis = table_basis(g, f"per-parameter gradient norms of {g['param'].nunique()} parameters (run.grads)")
        if g.empty or g["param"].isna().all() or g["grad_norm"].notna().sum() == 0:
            return self.skip("no per-parameter gradient norms in run.grads")
        g = order(g.dropna(subset=["param", "grad_norm"]).assign(param=lambda t: t["param"].astype(str)))
        rows = []
        for param, grp in g.groupby("param", sort=False):
            v = np.abs(grp["grad_norm"].to_numpy(dtype="float64"))
            live = v > self.zero_grad
            if not live.any() or live[-1]:
                continue
            last = int(np.flatnonzero(live)[-1])
            n_dead = len(v) - last - 1
            if int(live[:last + 1].sum()) < self.min_live or n_dead < max(self.min_dead,
                                                                        self.min_dead_fraction * len(v)):
                continue
            first_dead = add_where(grp.iloc[[last + 1]]).iloc[0]
            last_live = add_where(grp.iloc[[last]]).iloc[0]
            rows.append({"param": param, "module": module_of(param), "last_live": last_live["where"],
                         "died_at": first_dead["where"], "grad_before": float(v[last]),
                         "median_grad_live": float(np.median(v[:last + 1][live[:last + 1]])),
                         "zero_steps_after": n_dead, "steps": len(v),
                         "_key": _time_key(first_dead)})
        n_params = int(g["param"].nunique())
        if not rows:
            return [self.finding("gradients_stay_alive", "ok", "No gradient dies part-way through the run",
                                 summary=f"None of the {n_params} parameters with logged gradients goes from non-zero "
                                         f"gradients to exactly zero for the rest of the run.",
                                 details={"n_params": n_params})]
        ev = pd.DataFrame(rows).sort_values("_key", kind="stable").reset_index(drop=True)
        modules = []
        for m, grp in ev.groupby("module", sort=False):
            modules.append({"module": m, "params": list(grp["param"]), "first_died_at": grp["died_at"].iloc[0],
                            "last_died_at": grp["died_at"].iloc[-1]})
        collapse = VarianceCollapse().onset_of(run)
        relation = ""
        if collapse is not None and not collapse.get("from_start"):
            ck = _time_key(collapse)
            before = sum(1 for k in ev["_key"] if _before(k, ck))
            relation = (f" The outputs collapsed from {collapse['where']}: "
                        + (f"all {len(ev)} died after it, so the collapse came first (nothing upstream gets a "
                           f"signal once the outputs stop depending on the inputs)." if before == 0 else
                           f"all {len(ev)} died before it: losing these modules is a candidate cause of the "
                           f"collapse." if before == len(ev) else
                           f"{before} died before it and {len(ev) - before} after."))
        span = f"{ev['died_at'].iloc[0]}" + (f" to {ev['died_at'].iloc[-1]}" if len(ev) > 1 else "")
        mod_text = "; ".join(f"{m['module']} ({len(m['params'])}, from {m['first_died_at']})" for m in modules[:6])
        summary = (f"{len(ev)} of {n_params} parameters had normal gradients and then exactly zero at every later "
                   f"logged step, dying from {span}: {mod_text}"
                   + (f" and {len(modules) - 6} more modules" if len(modules) > 6 else "") + "." + relation
                   + " Unlike parameters that never learn, these were wired correctly and stopped.")
        actions = ["Look at the activations feeding these modules around the onset: all-negative pre-activations "
                   "(dying ReLU) call for a lower learning rate, LeakyReLU/GELU or a better init.",
                   "Check for gates, masks or schedules that switch these modules off at that point.",
                   "If the outputs collapsed first, fix the collapse (see variance_collapse) before these."]
        details = {"n_params": n_params, "n_dying": len(ev), "params": list(ev["param"]), "modules": modules,
                   "first_died_at": ev["died_at"].iloc[0], "collapse_onset": collapse["where"] if collapse else None}
        return [self.finding("gradients_die", "warning",
                             f"{len(ev)} parameter(s) stop receiving gradient mid-run (from {ev['died_at'].iloc[0]})",
                             summary=summary, evidence=ev.drop(columns="_key"), actions=actions, details=details,
                             score=len(ev) / max(n_params, 1))]


def _time_key(row) -> tuple:
    get = row.get if hasattr(row, "get") else (lambda k, d=None: getattr(row, k, d))

    def num(k):
        v = get(k, None)
        try:
            x = float(v)
        except (TypeError, ValueError):
            return None
        return None if x != x else x
    return num("step"), num("epoch"), num("batch")


def _before(a: tuple, b: tuple) -> bool:
    """``a`` earlier than ``b`` (by step when both have one, else by epoch then batch)."""
    if a[0] is not None and b[0] is not None:
        return a[0] < b[0]
    ea, eb = a[1] if a[1] is not None else -1.0, b[1] if b[1] is not None else -1.0
    if ea != eb:
        return ea < eb
    return (a[2] if a[2] is not None else -1.0) < (b[2] if b[2] is not None else -1.0)
