"""Validation at chance: the held-out side scores what a model that learned nothing would.

Three series have a chance level that does not depend on the data:

- a validation **loss** of a classifier or language model against ``ln K`` (K classes or the
  vocabulary size, read as :func:`~collapse_nb.checks.chance_level_loss.chance_loss` reads it);
- a validation **ROC AUC** (``auc``, ``roc_auc``, ``auroc``) against 0.5, whatever the classes;
- a validation **accuracy** against ``1/K`` when K is known.

A point is *at chance* when the loss is within ``tolerance`` of ``ln K`` or above it, the AUC at or
below ``0.5 + auc_margin``, the accuracy at or below ``(1 + accuracy_tolerance) / K``. The train side
of the same quantity (the train loss, ``auc``, ``accuracy``) is quoted beside it: a model that learns
on train while validation stays at chance does not generalise at all (a preprocessing, label or
eval-mode mismatch between the two), which is a different failure from a train loss at chance
(``chance_level_loss``).

- validation at chance at the end of the run: ``val_at_chance`` (``warning``; ``critical`` when it
  never left chance while the train side did);
- at chance for some points early or mid-run, then clearly better: ``val_at_chance_recovered``
  (``info``): worth knowing (early BatchNorm statistics, class weights, a learning-rate warm-up), and
  the checkpoints of those epochs are not models to keep.

Sources: chance-level AUC 0.5 (Hanley & McNeil 1982); uniform cross-entropy ``ln K``.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..findings import Finding
from ._base import Check, curve, curve_basis, finite, fmt
from .chance_level_loss import chance_loss

if TYPE_CHECKING:
    from ..run import Run

_AUC = re.compile(r"(^|[_/.])(auc|roc_auc|auroc|roc)($|[_/.])", re.I)
_ACC = re.compile(r"(^|[_/.])(acc|accuracy|top1|top_1|acc1|top1_acc|categorical_accuracy|binary_accuracy)($|[_/.])",
                  re.I)


@dataclass
class ValAtChance(Check):
    """Validation loss, AUC or accuracy at the level of a model that learned nothing.

    Thresholds
    ----------
    tolerance : float, default 0.05
        A validation loss at or above ``(1 - tolerance) * ln K`` is at chance.
    auc_margin : float, default 0.05
        A validation AUC at or below ``0.5 + auc_margin`` is at chance.
    accuracy_tolerance : float, default 0.25
        A validation accuracy at or below ``(1 + accuracy_tolerance) / K`` is at chance.
    min_points : int, default 2

    Requires
    --------
    A validation loss with a class or vocabulary count in the config or log, or a validation
    AUC, or a validation accuracy with a class count.
    """

    name = "val_at_chance"
    reads = "validation loss / AUC / accuracy against their chance level (ln K, 0.5, 1/K)"
    tolerance: float = 0.05
    auc_margin: float = 0.05
    accuracy_tolerance: float = 0.25
    min_points: int = 2

    symptoms = {"val_at_chance": 1.0}
    symptom_words = {"val_at_chance": "the validation score at chance"}
    quantity = "Validation score vs its chance level"

    def healthy_band(self, finding=None) -> str:
        return "better than chance by the end"

    def measure(self, d) -> str:
        return f"{d['series']}: {fmt(d['last'])} at the end (chance {fmt(d['chance'])})"

    def __call__(self, run: Run) -> list[Finding]:
        cands = self._candidates(run)
        if not cands and _regression(run):
            return self.skip(f"a regression run ({_regression(run)}): its chance level is the target variance, "
                             f"which chance_level_loss compares the loss with", applies=False)
        if not cands:
            return self.skip("no validation loss with a known class/vocabulary count, no validation AUC, and no "
                             "validation accuracy with a known class count")
        results = [r for r in (self._judge(run, *c) for c in cands) if r is not None]
        if not results:
            return self.skip(f"fewer than {self.min_points} finite validation points of "
                             + ", ".join(c[1] for c in cands))
        bad = [r for r in results if r["state"] != "ok"]
        if not bad:
            shown = "; ".join(f"{r['series']} {fmt(r['last'])} (chance {fmt(r['chance'])})" for r in results)
            return [self.finding("val_above_chance", "ok", "Validation better than chance",
                                 summary=f"At the end of the run: {shown}.",
                                 details={**results[0]["basis"], "checked": [r["series"] for r in results]})]
        order = {"never": 0, "end": 1, "recovered": 2}
        r = min(bad, key=lambda r: (not (r["state"] == "never" and r["learned"]), order[r["state"]], r["last_gap"]))
        return [self._finding(r, [x["series"] for x in bad])]

    # ------------------------------------------------------------------------------------------------
    def _candidates(self, run: Run) -> list[tuple]:
        """``(name, label, chance, direction, kind, train_name)`` for each validation series with a chance level."""
        cat = run.series
        if cat is None or not len(cat):
            return []
        lnk, k, how = chance_loss(run)
        out = []
        val = cat[cat["phase"] == "val"]
        for _, s in val.iterrows():
            name, role = str(s["name"]), s["role"]
            if role == "objective" and lnk is not None:
                out.append((name, f"the validation loss '{s['raw_names'][0]}'", lnk, "down", "loss",
                            "loss", s["eval_set"] if isinstance(s["eval_set"], str) else None, f"= ln {k}; {how}"))
            elif role == "eval_metric" and _AUC.search(name):
                out.append((name, f"the validation '{s['raw_names'][0]}'", 0.5, "up", "auc", name, None,
                            "as for any ROC AUC"))
            elif role == "eval_metric" and _ACC.search(name) and k:
                out.append((name, f"the validation '{s['raw_names'][0]}'", 1.0 / k, "up", "accuracy", name, None,
                            f"= 1/{k}; {how}"))
        return out

    def _judge(self, run: Run, name, label, chance, direction, kind, train_name, eval_set, chance_how) -> dict | None:
        c = finite(curve(run, "val", eval_set=eval_set) if kind == "loss" else curve(run, "val", name=name))
        if len(c) < self.min_points:
            return None
        y = c["value"].to_numpy(dtype="float64")
        train = finite(curve(run, "train") if kind == "loss" else curve(run, "train", name=train_name))
        if kind != "loss" and np.nanmax(y) > 1.0 and np.nanmax(y) <= 100.0:    # a percentage ("Test Acc: 91%")
            attrs = dict(c.attrs)
            c = c.assign(value=y / 100.0)
            c.attrs.update(attrs)
            y = y / 100.0
            if len(train) and train["value"].max() > 1.0:
                train = train.assign(value=train["value"].astype("float64") / 100.0)
        if kind == "loss":
            at = y >= (1 - self.tolerance) * chance
        elif kind == "auc":
            at = y <= chance + self.auc_margin
        else:
            at = y <= chance * (1 + self.accuracy_tolerance)
        state = "ok"
        if at[-1]:
            state = "never" if at.all() else "end"
        elif at.any():
            state = "recovered"
        gap = (y[-1] - chance) if direction == "up" else (chance - y[-1])
        if not len(train):
            learned = False
        elif kind == "loss":
            learned = float(train["value"].iloc[-1]) < (1 - 2 * self.tolerance) * chance
        else:
            learned = _learned(train, chance, direction)
        return {"learned": bool(learned), "series": label, "kind": kind, "chance": chance, "chance_how": chance_how,
                "curve": c, "at": at,
                "train": train, "state": state, "last": float(y[-1]), "last_gap": float(gap),
                "basis": curve_basis(c), "direction": direction}

    def _finding(self, r: dict, all_bad: list[str]) -> Finding:
        c, at, y = r["curve"], r["at"], r["curve"]["value"].to_numpy(dtype="float64")
        where = c["where"].tolist()
        spans = _spans(at)
        span_txt = ", ".join(where[a] if a == b else f"{where[a]} to {where[b]}" for a, b in spans)
        at_vals = ", ".join(fmt(v) for v in y[at][:4]) + (" ..." if at.sum() > 4 else "")
        train = r["train"]
        train_txt = ""
        if len(train):
            tv = _at_points(train, c[at])
            if len(tv):
                lo, hi = float(np.nanmin(tv)), float(np.nanmax(tv))
                rng = fmt(lo) if math.isclose(lo, hi) else f"{fmt(lo)}-{fmt(hi)}"
                train_txt = f", while the train side was {rng} there"
        ev = pd.DataFrame({"where": where, "value": y, "chance": r["chance"], "at_chance": at})
        details = {**r["basis"], "series": r["series"], "chance": r["chance"], "chance_from": r["chance_how"],
                   "last": r["last"], "points_at_chance": int(at.sum()),
                   "spans": [[where[a], where[b]] for a, b in spans],
                   "also_at_chance": [s for s in all_bad if s != r["series"]]}
        what = (f"{r['series']} is at chance level ({fmt(r['chance'])}, {r['chance_how']}) at {span_txt} "
                f"({at_vals}){train_txt}")
        if r["state"] == "recovered":
            later = int(spans[-1][1]) + 1
            summary = (what + f". It left chance from {where[later]} ({fmt(y[later])}) and ends at {fmt(y[-1])} "
                       f"({where[-1]}). Validation at chance early in a run that then recovers is common with "
                       f"BatchNorm statistics that have not caught up, strong class weights or a warm-up; the "
                       f"checkpoints of those points are not models to keep.")
            return self.finding("val_at_chance_recovered", "info",
                                f"Validation at chance at {span_txt}, recovered", summary=summary, evidence=ev,
                                details=details, score=float(at.sum()) / len(at))
        never = r["state"] == "never"
        learned = r["learned"]
        sev = "critical" if never and learned else "warning"
        summary = what + (". It never left it" if never else f". It ends there ({fmt(y[-1])}, {where[-1]})") + \
            (": the model learns on the training data but does not generalise at all." if learned else ".")
        return self.finding("val_at_chance", sev,
                            f"Validation at chance level{' throughout' if never else ' at the end'}: {r['series']} "
                            f"{fmt(y[-1])} (chance {fmt(r['chance'])})",
                            summary=summary, evidence=ev, details=details, score=1.0 + float(at.mean()),
                            actions=["Check that validation inputs get the same preprocessing and normalisation as "
                                     "training (and the same tokenizer / label mapping).",
                                     "Check that labels stay aligned with their inputs in the validation loader "
                                     "(shuffled separately, a wrong column, a sorted split).",
                                     "Check that the model is evaluated in eval mode with sane BatchNorm running "
                                     "statistics, and on the classes it was trained on."])


_REGRESSION_LOSS = re.compile(r"(^|[_/.])(mse|rmse|mae|l1|l2|huber|smooth_l1|mean_squared_error|"
                              r"mean_absolute_error)($|[_/.])", re.I)


def _regression(run: Run) -> str:
    """Why ``run`` is a regression (target std in ``run.outputs``, a squared/absolute-error loss), or ``""``."""
    out = getattr(run, "outputs", None)
    if out is not None and len(out) and "target_std" in out and out["target_std"].notna().any():
        return "target std logged in run.outputs"
    loss = str(run.config.get("loss") or run.config.get("loss_fn") or run.config.get("criterion") or "")
    if _REGRESSION_LOSS.search(loss):
        return f"loss = {loss} in the config"
    names = [str(n) for n in run.series["name"]] if run.series is not None and len(run.series) else []
    hit = next((n for n in names if _REGRESSION_LOSS.search(n)), None)
    return f"a '{hit}' series is logged" if hit else ""


def _spans(mask: np.ndarray) -> list[tuple[int, int]]:
    out, start = [], None
    for i, m in enumerate(mask):
        if m and start is None:
            start = i
        if not m and start is not None:
            out.append((start, i - 1))
            start = None
    if start is not None:
        out.append((start, len(mask) - 1))
    return out


def _at_points(train: pd.DataFrame, points: pd.DataFrame) -> np.ndarray:
    """The train values logged at, or last before, each validation point (by step when both have steps, else
    by epoch: the train values of those epochs)."""
    tv = train["value"].to_numpy(dtype="float64")
    if "step" in points and points["step"].notna().all() and "step" in train and train["step"].notna().all():
        ts = pd.to_numeric(train["step"], errors="coerce").to_numpy(dtype="float64")
        order = np.argsort(ts, kind="stable")
        ts, tv = ts[order], tv[order]
        i = np.searchsorted(ts, pd.to_numeric(points["step"], errors="coerce").to_numpy(dtype="float64"),
                            side="right") - 1
        return tv[i[i >= 0]]
    if "epoch" in points and points["epoch"].notna().all() and "epoch" in train and train["epoch"].notna().any():
        ep = np.floor(pd.to_numeric(train["epoch"], errors="coerce").to_numpy(dtype="float64"))
        want = np.floor(pd.to_numeric(points["epoch"], errors="coerce").to_numpy(dtype="float64"))
        return tv[np.isin(ep, want)]
    return np.array([])


def _learned(train: pd.DataFrame, chance: float, direction: str) -> bool:
    v = float(train["value"].iloc[-1])
    return v > chance + 0.1 * (1 - chance) if direction == "up" else v < chance * 0.9
