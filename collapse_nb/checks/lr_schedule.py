"""Learning-rate schedule: the logged lr against the schedule the configuration implies.

From the config (``learning_rate`` = peak, ``warmup_epochs`` or ``warmup_steps``
/ ``warmup_ratio``, ``min_lr``, ``epochs`` / ``max_steps``, ``lr_scheduler``) the
check builds the usual shapes (linear warmup to the peak, then constant, cosine or
linear decay to ``min_lr``; epochs counted from 0 or 1; warmup starting at 0 or at
``peak / warmup``) and keeps the one closest to the logged lr. Then:

- a close fit is an ``ok`` finding ("follows warmup + cosine as configured");
- the lr still rising after the configured warmup -> "warmup never ends";
- an epoch-based schedule whose lr changes within epochs -> "decays per batch";
- a logged peak off the configured ``learning_rate`` -> "peak does not match";
- anything else -> the best shape and how far the logged lr is from it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..findings import Finding
from ._base import Check, config_number, fmt, main_segment, order

if TYPE_CHECKING:
    from ..run import Run


@dataclass
class LRScheduleMismatch(Check):
    """Logged learning rate vs the configured schedule.

    Thresholds
    ----------
    fit_tolerance : float, default 0.05
        Median relative error of the best shape at or below this (5%) is a match (and its 90th
        percentile at most 4x this).
    peak_tolerance : float, default 0.1
        Logged peak more than 10% away from ``learning_rate`` (where the schedule reaches it) is a mismatch.
    within_epoch_change : float, default 0.05
        A schedule configured in epochs (``warmup_epochs``) whose lr moves more than 5% inside an epoch,
        in at least half the epochs that log several values, is stepped per batch.

    Requires
    --------
    A logged ``lr`` (2+ values) and a configured ``learning_rate``.
    """

    name = "lr_schedule_mismatch"
    reads = "the logged learning rate against the configured schedule"
    fit_tolerance: float = 0.05
    peak_tolerance: float = 0.1
    within_epoch_change: float = 0.05


    explains = {
        "lr_schedule_mismatch": {
            "loss_plateau": (0.5, "the learning rate is not what was configured"),
            "loss_divergence": (0.5, "a learning rate above the intended one can diverge"),
            "variance_collapse": (0.2, "a wrong (low) learning rate with healthy gradients slows learning but "
                                       "explains a collapse only weakly"),
        },
    }
    quantity = "Logged LR vs configured schedule (median error)"

    def healthy_band(self, finding=None) -> str:
        return f"≤ {self.limits(finding)['fit_tolerance']:.0%}"

    def measure(self, d) -> str:
        return f"{d['median_err']:.1%} ({d.get('description', 'best fitting schedule')})"

    def __call__(self, run: Run) -> list[Finding]:
        peak = config_number(run, "learning_rate")
        steps, per_epoch = self._logged(run)
        if len(steps) + len(per_epoch) < 2:
            return self.skip("fewer than 2 logged learning-rate values")
        if peak is None or peak <= 0:
            return self.skip("no configured learning_rate to compare the logged lr with")
        cfg = {k: config_number(run, k) for k in ("warmup_epochs", "warmup_steps", "warmup_ratio", "min_lr",
                                                  "epochs", "max_steps")}
        sched = str(run.config.get("lr_scheduler") or "").lower()
        use_steps = cfg["warmup_steps"] is not None or (cfg["warmup_ratio"] is not None and cfg["max_steps"]) \
            or (len(per_epoch) < 2 and len(steps) >= 2)
        if use_steps:
            if steps.empty or steps["step"].isna().any():
                return self.skip("a step-based schedule is configured but the lr is not logged per step")
            x, y, unit = steps["step"].to_numpy(float), steps["value"].to_numpy(float), "step"
            w = cfg["warmup_steps"] if cfg["warmup_steps"] is not None else \
                (cfg["warmup_ratio"] * cfg["max_steps"] if cfg["warmup_ratio"] and cfg["max_steps"] else 0.0)
            total = cfg["max_steps"] or float(x.max())
        else:
            x, y, unit = per_epoch["epoch"].to_numpy(float), per_epoch["value"].to_numpy(float), "epoch"
            w = cfg["warmup_epochs"] or 0.0
            total = cfg["epochs"] or float(x.max())
        lo = cfg["min_lr"] or 0.0
        fits = [self._fit(x, y, peak, w, lo, total, shape, off, start)
                for shape in _shapes(sched) for off in (0.0, 1.0, -1.0)
                for start in ("peak/w", "zero")]
        best = min(fits, key=lambda f: (f["median_err"], f["p90_err"]))
        ev = pd.DataFrame({unit: x, "logged_lr": y, "expected_lr": best["expected"],
                           "rel_err": best["errors"]})
        desc = _describe(best, w, unit, peak, lo)
        self._basis = {"series": "the logged learning rate", "resolution": unit, "points": int(len(x)),
                       "span": f"{unit} {fmt(x.min())} to {unit} {fmt(x.max())}"}
        details = {"peak_configured": peak, "peak_logged": float(np.nanmax(y)), "warmup": w, "unit": unit,
                   "min_lr": lo, "total": total, "best_shape": best["shape"], "epoch_offset": best["offset"],
                   "median_err": best["median_err"], "p90_err": best["p90_err"], "description": desc}
        problems = []
        if unit == "epoch" and len(steps) and cfg["warmup_epochs"] is not None:
            moving = self._within_epoch(steps)
            if moving is not None:
                details["epochs_changing_within"] = moving
                problems.append(("decays_per_batch",
                                 f"the lr changes inside {moving[0]} of {moving[1]} epochs although the schedule is "
                                 f"defined in epochs: scheduler.step() is being called every batch"))
        if w and x.max() + best["offset"] > w + (1 if unit == "epoch" else 0.02 * total):
            after = y[(x + best["offset"]) > w]
            if len(after) >= 2 and np.all(np.diff(after) >= 0) and after[-1] > after[0] * 1.05:
                problems.append(("warmup_never_ends",
                                 f"the lr is still rising at {unit} {fmt(x[-1])} ({fmt(y[-1])}) although warmup was "
                                 f"configured to end after {fmt(w)} {unit}s"))
        fit_ok = best["median_err"] <= self.fit_tolerance and best["p90_err"] <= 4 * self.fit_tolerance
        reach = float(np.nanmax(best["expected"]))
        if not fit_ok and abs(details["peak_logged"] / reach - 1) > self.peak_tolerance:
            problems.append(("peak_mismatch",
                             f"the logged lr peaks at {fmt(details['peak_logged'])}, "
                             f"{details['peak_logged'] / reach:.2g}x "
                             f"the {fmt(reach)} the configured schedule reaches (learning_rate = {fmt(peak)})"))
        if fit_ok and not problems:
            ended = (f" (the run stopped during warmup, at {unit} {fmt(x.max())} of {fmt(w)})"
                     if w and x.max() + best["offset"] <= w else "")
            return [self.finding("lr_schedule_ok", "ok", f"Learning rate follows {desc} as configured",
                                 summary=f"The logged learning rate follows {desc} as configured: median relative "
                                         f"error {best['median_err']:.1%} over {len(y)} logged values{ended}.",
                                 evidence=ev, details=details)]
        if not problems and not sched and not w:
            # no schedule is configured, only a learning rate: the shape cannot be wrong, the start can
            starts = abs(float(y[0]) / peak - 1) <= self.peak_tolerance or \
                abs(details["peak_logged"] / peak - 1) <= self.peak_tolerance
            if starts:
                return [self.finding("lr_schedule_ok", "ok", f"Learning rate starts at the configured {fmt(peak)}",
                                     summary=f"The logged learning rate goes from {fmt(float(y[0]))} ({unit} "
                                             f"{fmt(x[0])}) to {fmt(float(y[-1]))} ({unit} {fmt(x[-1])}), peaking at "
                                             f"{fmt(details['peak_logged'])}; the config names no scheduler to "
                                             f"compare its shape with (learning_rate = {fmt(peak)}).",
                                     evidence=ev, details={**details, "shape_unknown": True})]
            problems.append(("peak_mismatch",
                             f"the logged lr peaks at {fmt(details['peak_logged'])}, "
                             f"{details['peak_logged'] / peak:.2g}x the configured learning_rate = {fmt(peak)}"))
        if not problems:
            problems.append(("shape_mismatch", f"the logged lr does not follow the configured schedule: the closest "
                                               f"shape ({desc}) is off by {best['median_err']:.0%} (median)"))
        details["problems"] = [p[0] for p in problems]
        severity = "warning" if problems[0][0] != "shape_mismatch" or best["median_err"] > 0.5 else "info"
        actions = {"decays_per_batch": "Call scheduler.step() once per epoch for an epoch-based schedule (or define "
                                       "the schedule in steps: warmup_steps, total steps).",
                   "warmup_never_ends": "Check the warmup length's unit (epochs vs steps) and that the scheduler "
                                        "switches to decay after warmup.",
                   "peak_mismatch": "Check which learning rate reaches the optimizer (a scaled lr, a param group "
                                    "override, or a scheduler that multiplies the base lr).",
                   "shape_mismatch": "Plot run.scalars lr against the intended schedule; check the scheduler type "
                                     "and its total length."}
        title = "Learning-rate schedule mismatch: " + problems[0][1].split(":")[0]
        return [self.finding("lr_schedule_mismatch", severity, title,
                             summary="The learning rate does not follow the configuration: "
                                     + "; ".join(p[1] for p in problems) + f". Configured: {desc}.",
                             evidence=ev, actions=[actions[p[0]] for p in problems], details=details,
                             score=float(len(problems) + min(best["median_err"], 1.0)))]

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _logged(run: Run) -> tuple[pd.DataFrame, pd.DataFrame]:
        s = run.scalars
        lr = s[s["name"] == "lr"]
        if lr.empty:
            return pd.DataFrame(columns=["step", "epoch", "value"]), pd.DataFrame(columns=["epoch", "value"])
        if lr["param"].notna().all():
            first = sorted(lr["param"].astype(str).unique())[0]
            lr = lr[lr["param"].astype(str) == first]
        else:
            lr = lr[lr["param"].isna()]
        lr = main_segment(lr)
        steps = order(lr[lr["batch"].notna() | lr["step"].notna()])[["segment", "epoch", "batch", "step", "value"]]
        ep = run.epochs
        per_epoch = pd.DataFrame(columns=["epoch", "value"])
        if not ep.empty and "lr" in ep:
            e = main_segment(ep.dropna(subset=["lr"]))
            per_epoch = pd.DataFrame({"epoch": e["epoch"].astype(float).to_numpy(), "value": e["lr"].to_numpy(float)})
        return steps.reset_index(drop=True), per_epoch

    def _within_epoch(self, steps: pd.DataFrame) -> tuple[int, int] | None:
        g = steps.dropna(subset=["epoch"]).groupby(steps["epoch"].astype(float))["value"]
        stats = g.agg(["min", "max", "size"])
        stats = stats[stats["size"] >= 3]
        if len(stats) < 2:
            return None
        change = (stats["max"] - stats["min"]) / stats["max"].where(stats["max"] > 0)
        moving = int((change > self.within_epoch_change).sum())
        return (moving, len(stats)) if moving >= max(1, len(stats) / 2) else None

    @staticmethod
    def _fit(x, y, peak, w, lo, total, shape, offset, start) -> dict:
        xx = x + offset
        exp = np.empty_like(y)
        for i, v in enumerate(xx):
            if w and v <= w:
                exp[i] = peak * (v / w if start == "peak/w" else max(v - 1.0, 0.0) / w)
            else:
                t = min(max((v - w) / max(total - w, 1e-12), 0.0), 1.0)
                exp[i] = {"constant": peak, "cosine": lo + 0.5 * (peak - lo) * (1 + math.cos(math.pi * t)),
                          "linear": peak - (peak - lo) * t}[shape]
        err = np.abs(y - exp) / np.maximum(np.abs(exp), 1e-12)
        err = np.where((exp == 0) & (y == 0), 0.0, err)
        return {"shape": shape, "offset": offset, "start": start, "expected": exp, "errors": err,
                "median_err": float(np.median(err)), "p90_err": float(np.quantile(err, 0.9))}


def _shapes(sched: str) -> tuple[str, ...]:
    for s in ("cosine", "linear", "constant"):
        if s in sched:
            return (s,)
    return ("cosine", "linear", "constant")


def _describe(fit: dict, w: float, unit: str, peak: float, lo: float) -> str:
    decay = {"cosine": f"cosine decay to {fmt(lo)}", "linear": f"linear decay to {fmt(lo)}",
             "constant": "a constant rate"}[fit["shape"]]
    return (f"warmup ({fmt(w)} {unit}s, to {fmt(peak)}) + {decay}" if w else f"{fmt(peak)} with {decay}")
