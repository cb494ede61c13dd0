"""Coverage: what the loss checks read, and how far the run got.

Every other loss check reads *the training objective* (:mod:`collapse_nb.series`): a logged total, the
one loss series, or the sum of the components. This check says which it is, how many points at which
resolution, or, when there is none, that the run is **not assessed** and which series it did log, so
that a run nothing could check never reads as healthy (the report's verdict leads with it).

It also compares how far the run got with how far it was configured to go: the last logged step
against ``max_steps`` (HF), ``max_duration`` (OLMo), ``train_iters`` (Megatron), ``max_iter``
(detectron2); the epochs logged against ``num_train_epochs`` / ``epochs`` / ``max_epochs`` /
``num_epochs`` (W&B's ``{value: ...}`` included) or pix2pix's ``niter + niter_decay``, or the total a
text log's progress counters state (``Epoch 3/10``: the text reader puts it in the config). A run that
stopped before ``complete`` of its plan is reported (``info``: it may have been stopped on purpose),
with the traceback the log ends on when there is one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..findings import Finding
from ..series import eval_sets, networks, seen
from ._base import Check, add_where, curve, curve_basis, fmt, optional_table, order

if TYPE_CHECKING:
    from ..run import Run

_STEP_KEYS = ("max_steps", "max_duration", "train_iters", "total_steps", "max_iter", "max_iters", "num_steps",
              "total_iters", "max_iterations")
#: canonical names of log values that state the planned number of steps
_PLANNED_STEPS_IN_LOG = r"(?:^|_)(?:train_iters|training_iterations(?:_to)?|max_steps|total_steps|max_iters?)$"
_EPOCH_KEYS = ("num_train_epochs", "max_epochs", "num_epochs", "epochs", "n_epochs", "train_epochs", "nb_epochs")


@dataclass
class Coverage(Check):
    """The objective the loss checks read (or its absence), and whether the run reached its planned end.

    Thresholds
    ----------
    complete : float, default 0.95
        A run whose last logged step (or epoch) is below this fraction of the configured total
        stopped early.
    min_points : int, default 3
        A training objective with fewer points than this is as good as none: the run is not assessed.

    Requires
    --------
    Nothing: with no loss series it reports the run as not assessed.
    """

    name = "coverage"
    reads = "the series catalogue (run.series) and the configured length of the run"
    complete: float = 0.95
    min_points: int = 3

    def verdict_opening(self, finding: Finding) -> str:
        if finding.code == "objective_not_found":
            return (f"Not assessed: no training objective recognised ({finding.details.get('missing', '')}); series "
                    f"seen: {finding.details.get('series_seen', 'none')}.")
        if finding.code == "run_incomplete":
            text = finding.title.replace("Stopped early", "The run stopped early").strip()
            return text if text.endswith(".") else text + "."
        return ""

    def not_assessed(self, finding: Finding) -> bool:
        return finding.code == "objective_not_found"

    def __call__(self, run: Run) -> list[Finding]:
        out = [self._objective(run)]
        stop = self._completion(run)
        if stop is not None:
            out.append(stop)
        return out

    def _objective(self, run: Run) -> Finding:
        cat = run.series
        nets = networks(cat)
        if nets:
            parts = []
            for n in nets:
                c = curve(run, "train", network=n)
                b = curve_basis(c)
                parts.append(f"{b['series']} ({b['points']} {b['resolution'] or ''} points)")
            return self.finding("objective", "ok", f"Losses read per network: {', '.join(nets)}",
                                summary="A GAN: " + "; ".join(parts) + ". The single-objective loss checks do not "
                                        "apply to their sum; gan_balance reads them as a pair.",
                                details={"networks": nets, "series": parts})
        c = curve(run, "train")
        finite = c[np.isfinite(c["value"].astype("float64"))] if len(c) else c
        if len(c) and len(finite) < self.min_points:
            shown = ", ".join(f"{_value(v)} at {w}" for v, w in zip(c["value"][:6], c["where"][:6]))
            c.attrs["missing"] = (f"{c.attrs.get('series') or 'the train loss'} has {len(finite)} finite point(s) "
                                  f"of {len(c)} ({shown}{', ...' if len(c) > 6 else ''})")
            c = c.iloc[:0]
        if 0 < len(c) < self.min_points:
            c.attrs["missing"] = (f"{c.attrs.get('series') or 'the train loss'} has only {len(c)} point(s) "
                                  f"({', '.join(f'{_value(v)} at {w}' for v, w in zip(c['value'], c['where']))})")
        if len(c) < self.min_points:
            why = c.attrs.get("missing") or "no train loss series recognised"
            params = optional_table(run, "params")
            if run.scalars.empty and len(params):
                n_ck = params["checkpoint"].nunique() if "checkpoint" in params else 1
                why = (f"no training log was read, only {n_ck} checkpoint(s) ({len(params)} tensors): the weights "
                       f"are judged by checkpoint_weights, the training itself is not")
            val_text = ""
            for es in eval_sets(cat) or [None]:
                val = run.objective("val", eval_set=es)
                vr = add_where(order(val.rows)) if val.found else None       # every logged value, not a curve
                if vr is not None and len(vr):
                    val_text += (f" Validation: {val.description}, {len(vr)} value(s) from "
                                 f"{_value(vr['value'].iloc[0])} ({vr['where'].iloc[0]}) to "
                                 f"{_value(vr['value'].iloc[-1])} ({vr['where'].iloc[-1]}).")
            return self.finding("objective_not_found", "info", "Not assessed: no training objective recognised",
                                summary=f"The loss checks could not run: {why}. Series seen: {seen(cat)}.{val_text} "
                                        f"None of this says the run is healthy.",
                                details={"missing": why, "series_seen": seen(cat),
                                         "series_seen_all": seen(cat, limit=200)},
                                actions=["If one of the series seen is the training loss, rename it (loss, "
                                         "train_loss, train/loss) or tell collapse_nb (collapse_nb.names.SYNONYMS)."],
                                score=1.0)
        b = curve_basis(c)
        val = run.objective("val")
        summary = (f"The loss checks read {b['series']}: {b['points']} points, one per {b['resolution']}, "
                   f"{b['span']}.")
        if val.found:
            summary += f" Validation: {val.description}."
        return self.finding("objective", "ok", f"Training objective: {b['series']}", summary=summary,
                            details={**b, "how": run.objective("train").how,
                                     "val_series": val.description if val.found else None})

    def _completion(self, run: Run) -> Finding | None:
        s = run.scalars
        if s.empty:
            return None
        planned_steps, steps_from = _planned(run, _STEP_KEYS)
        planned_epochs, epochs_from = _planned(run, _EPOCH_KEYS)
        if planned_epochs is None:
            niter, decay = _raw_number(run, "niter"), _raw_number(run, "niter_decay")
            if niter is not None:
                planned_epochs = niter + (decay or 0.0)
                epochs_from = f"niter + niter_decay = {fmt(planned_epochs)}"
        timed = s[s["param"].isna()]
        last_step = float(np.nanmax(timed["step"].to_numpy(dtype="float64"))) if timed["step"].notna().any() \
            else None
        ep = timed["epoch"].dropna().to_numpy(dtype="float64")
        epochs_done = None
        if len(ep):
            first, last = float(ep.min()), float(ep.max())
            epochs_done = last + 1 if first == 0 and float(last).is_integer() else last
        steps_known = bool(planned_steps and last_step is not None and last_step > 0 and _global_step(run))
        got: float
        plan: float
        if steps_known and last_step is not None and planned_steps is not None \
                and last_step < self.complete * planned_steps:     # (steps_known says both are there)
            got, plan, unit, src = last_step, planned_steps, "step", steps_from
        elif steps_known:   # the step plan was reached: it decides (HF rounds num_train_epochs up from max_steps)
            return None
        elif planned_epochs and epochs_done is not None and epochs_done < self.complete * planned_epochs:
            got, plan, unit, src = epochs_done, planned_epochs, "epoch", epochs_from
        else:
            return self._unfinished(run, last_step, epochs_done)
        ending = _last_traceback(run)
        summary = (f"The run was configured for {fmt(plan)} {unit}s ({src}) but its logs stop at {unit} {fmt(got)} "
                   f"({got / plan:.1%} of the plan)"
                   + (f"; the log ends with {ending}" if ending else "; no exit record or error was logged")
                   + ". Everything here describes the part that ran: a curve cut short can look healthy, or "
                     "unfinished, without being either.")
        return self.finding("run_incomplete", "info",
                            f"Stopped early: {unit} {fmt(got)} of {fmt(plan)} "
                            f"({got / plan:.0%})".replace("(0%)", f"({got / plan:.1%})")
                            + (" after an error" if ending else ""),
                            summary=summary, details={"unit": unit, "reached": got, "planned": plan, "from": src,
                                                      "ending": ending},
                            score=1 - got / plan)


    def _unfinished(self, run: Run, last_step: float | None, epochs_done: float | None) -> Finding | None:
        """A run its tracker says did not finish (no W&B exit record; MLflow status KILLED / FAILED / RUNNING),
        when no configured length says how far it got."""
        raw = {k: v for cfg in (run.meta.get("config_raw") or {}).values() if isinstance(cfg, dict)
               for k, v in cfg.items()}
        why = None
        if "wandb.exit_code" in raw and raw["wandb.exit_code"] is None:
            why = "its W&B records end without an exit record (the process was killed, or is still running)"
        elif isinstance(raw.get("wandb.exit_code"), int) and raw["wandb.exit_code"] != 0:
            why = f"W&B recorded exit code {raw['wandb.exit_code']}"
        elif str(raw.get("mlflow.status", "")).upper() in ("KILLED", "FAILED", "RUNNING"):
            why = f"MLflow says the run is {str(raw['mlflow.status']).upper()}"
        if why is None:
            return None
        at = (f"step {fmt(last_step)}" if last_step is not None else
              f"epoch {fmt(epochs_done)}" if epochs_done is not None else "its last logged value")
        epochs_plan, steps_plan = _planned(run, _EPOCH_KEYS)[0], _planned(run, _STEP_KEYS)[0]
        plan, unit = (epochs_plan, "epochs") if epochs_plan else (steps_plan, "steps")
        planned = f" of a run configured for {fmt(plan)} {unit}" if plan else ""
        return self.finding("run_incomplete", "info", f"Stopped early: at {at}{planned}, not finished",
                            summary=f"The run did not finish: {why}. Its logs stop at {at}{planned}. Everything "
                                    f"here describes the part that ran: a curve cut short can look healthy, or "
                                    f"unfinished, without being either.",
                            details={"unit": "step" if last_step is not None else "epoch",
                                     "reached": last_step if last_step is not None else epochs_done,
                                     "planned": plan, "from": why, "ending": why}, score=0.5)


def _value(v) -> str:
    """A logged value for a sentence: NaN and inf as such."""
    x = float(v)
    return "NaN" if x != x else fmt(x)


def _planned(run: Run, keys: tuple[str, ...]) -> tuple[float | None, str]:
    cfg = run.config
    for k in ("max_steps",) if keys is _STEP_KEYS else ("epochs",):
        v = _number(cfg.get(k))
        if v:
            src = (run.meta.get("config_sources") or {}).get(k, "the config")
            line = (run.meta.get("config_lines") or {}).get(k)
            src = f"{src}, {line}" if line and isinstance(src, str) else src
            return v, f"{k} = {fmt(v)} in {src}" if isinstance(src, str) else f"{k} = {fmt(v)}"
    for key in keys:
        v = _raw_number(run, key)
        if v:
            return v, f"{key} = {fmt(v)}"
    if keys is _STEP_KEYS:      # a plan the log printed as a value: Megatron's "setting training iterations to N"
        s = run.scalars
        said = s[s["param"].isna() & s["name"].astype(str).str.contains(_PLANNED_STEPS_IN_LOG)]
        vals = pd.to_numeric(said["value"], errors="coerce").dropna()
        vals = vals[vals > 0]
        if len(vals):
            r = said.loc[vals.index[-1]]
            return float(vals.iloc[-1]), f"'{r['raw_name']} {fmt(vals.iloc[-1])}' at line {fmt(r['line'])}"
    return None, ""


def _raw_number(run: Run, leaf: str) -> float | None:
    raw = run.meta.get("config_raw") or {}
    for _src, cfg in raw.items():
        if not isinstance(cfg, dict):
            continue
        for key, v in cfg.items():
            parts = str(key).lower().split(".")
            if parts[-1] == "value" and len(parts) > 1:      # W&B config.yaml: {num_epochs: {value: 30}}
                parts = parts[:-1]
            if parts[-1] == leaf:
                x = _number(v)
                if x:
                    return x
    return None


def _number(v) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    try:
        x = float(str(v).replace(",", "").rstrip("ba") if isinstance(v, str) else v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) and x > 0 else None


def _global_step(run: Run) -> bool:
    """The logged steps count the whole run (not a counter within each epoch, as pix2pix's 'iters')."""
    from ._base import step_is_global
    c = curve(run, "train")
    rows = run.scalars[run.scalars["step"].notna()]
    return step_is_global(rows[["epoch", "step"]]) if len(rows) else bool(len(c))


def _last_traceback(run: Run) -> str:
    """The traceback a log ends on: one noted after the last training loss logged in its file, else ``""``."""
    obj = run.objective("train")
    s = obj.rows if obj.found else run.scalars      # after the last loss logged (a traceback's own numbers aside)
    for note in reversed([n for n in run.meta.get("notes", []) if ": traceback at line " in n]):
        source, _, rest = note.partition(": traceback at line ")
        try:
            line = int(rest.split(":", 1)[0].replace(",", ""))
        except ValueError:
            continue
        lines = pd.to_numeric(s.loc[s["source"].astype(str) == source, "line"], errors="coerce").dropna()
        if len(lines) and line < lines.max():
            continue            # a traceback in the middle (a restarted run went on after it)
        return "a traceback at line " + rest[:160]
    return ""
