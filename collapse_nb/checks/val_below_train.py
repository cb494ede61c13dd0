"""Validation loss persistently well below training loss, with its likely causes ranked.

A validation loss a little below the training loss is normal when dropout (or
other train-only regularisation) is on; 3x below is a bug or a data problem. The
check pairs train and validation loss per epoch (or per evaluation step) and,
when ``train / val`` exceeds ``ratio`` at half the evaluations or more (or its median exceeds
``dropout_ratio``), ranks the causes by
the evidence in the run:

``gradient_accumulation``
    The ratio matches ``gradient_accumulation_steps`` (config, or a logged
    ``grad_accum_steps``) within ``tolerance``; strongest when the epoch train
    loss is itself that many times the mean of the logged per-batch losses
    (summed over micro-batches instead of averaged). Evidence against: the epoch
    train loss equals the per-batch mean.
``reduction_sum``
    The ratio matches the configured ``batch_size``: a ``reduction="sum"`` train loss.
``easier_validation_targets``
    The validation targets vary less than the training targets (``run.outputs``
    target std): for a squared error that alone makes the validation loss
    ``(std_train / std_val)**2`` times lower; scored by the share of the gap it explains.
``train_only_regularisation``
    Dropout or auxiliary/regularisation terms counted only in the training loss:
    explains gaps up to ``dropout_ratio`` (~1.3x), not more.
``leakage_or_easier_split``
    The fallback: validation samples overlapping training, or an easier split.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..findings import Finding
from ._base import (Check, aligned_train_val, config_number, fmt, loss_rows, main_segment, times,
                    validation_series)

if TYPE_CHECKING:
    from ..run import Run


@dataclass
class ValBelowTrain(Check):
    """Validation loss far below training loss.

    Thresholds
    ----------
    ratio : float, default 1.5
        ``train / val`` above this at an evaluation counts as "well below".
    persistent_fraction : float, default 0.5
        The finding is a ``warning`` when this fraction of evaluations or more (half, by default) are
        well below; an ``info`` when fewer are but the median gap is still above ``dropout_ratio``.
    dropout_ratio : float, default 1.3
        Gaps up to this are what dropout-style regularisation explains (the seed report: "dropout
        effect should be ~10-20%"); a median gap at or below it is ``ok``.
    tolerance : float, default 0.25
        Relative tolerance when matching the gap with the accumulation factor or batch size.

    Requires
    --------
    Train and validation ``loss`` at matching epochs or steps. Uses, when present: config
    ``gradient_accumulation_steps``, ``batch_size``, ``dropout``; per-batch train losses;
    ``run.outputs`` target std per phase.
    """

    name = "val_below_train"
    ratio: float = 1.5
    persistent_fraction: float = 0.5
    dropout_ratio: float = 1.3
    tolerance: float = 0.25


    #: half the weight of a failure: a validation loss below the training loss spoils no prediction, it
    #: misleads the reading of the curves and is often bookkeeping
    symptoms = {"val_below_train": 0.5}
    symptom_words = {"val_below_train": "the validation loss below the training loss"}
    quantity = "Train loss / validation loss"

    def healthy_band(self, finding=None) -> str:
        t = self.limits(finding)
        return f"≤ {fmt(t['dropout_ratio'])} (dropout-style gap); flagged above {fmt(t['ratio'])}"

    def self_explanation(self, finding) -> str:
        """The verdict's sentence about the gap's top-ranked cause: a bookkeeping error, or the likeliest cause."""
        top = (finding.details.get("causes") or [{}])[0]
        label, text = top.get("label", ""), str(top.get("text", "")).rstrip(".")
        if not text:
            return ""
        if top.get("cause") in ("gradient_accumulation", "reduction_sum"):
            return (f"The validation/training gap is a bookkeeping error in the reported training loss, not a "
                    f"modelling problem: {text}.")
        return f"The validation/training gap is most likely {label}: {text}."

    def measure(self, d) -> str:
        return f"{d['ratio_median']:.2f}x (median of {d['evaluations']} evaluation(s))"

    def __call__(self, run: Run) -> list[Finding]:
        sets = [c for c in validation_series(run) if c["val_name"] == "loss"] or [
            {"eval_set": None, "label": "validation loss"}]
        results = []
        for c in sets:
            tv = aligned_train_val(run, eval_set=c["eval_set"])
            if len(tv):
                tv = tv[(tv["train"] > 0) & (tv["val"] > 0) & np.isfinite(tv["train"]) & np.isfinite(tv["val"])]
            if len(tv):
                results.append(self._one(run, tv.assign(ratio=tv["train"] / tv["val"]).reset_index(drop=True), c))
        if not results:
            return self.skip("no train and validation loss at matching epochs or steps")
        ran = [f for f in results if f.code != "not_checked"]
        if not ran:
            return results[:1]
        results = ran
        worst = max(results, key=lambda f: (f.severity != "ok", f.details["ratio_median"]))
        if len(results) > 1:
            worst.details["per_set"] = [{"eval_set": f.details["eval_set"], "code": f.code, "severity": f.severity,
                                         "ratio_median": f.details["ratio_median"]} for f in results]
        return [worst]

    def _one(self, run: Run, tv: pd.DataFrame, c: dict) -> Finding:
        r = float(tv["ratio"].median())
        frac = float((tv["ratio"] > self.ratio).mean())
        ev = tv[["where", "train", "val", "ratio"]]
        on = f" on '{c['eval_set']}'" if c.get("eval_set") else ""
        details = {"ratio_median": r, "fraction_above": frac, "evaluations": len(tv), "eval_set": c.get("eval_set"),
                   "resolution": tv.attrs.get("resolution"), "train_series": tv.attrs.get("train_series"),
                   "val_series": tv.attrs.get("val_series")}
        if frac < self.persistent_fraction and r <= self.dropout_ratio and len(tv) < 2:
            return self.skip(f"1 evaluation with both losses{on} (train/val = {fmt(r)}): too few to call the gap "
                             f"normal")[0]
        if frac < self.persistent_fraction and r <= self.dropout_ratio:
            why = ("consistent with dropout or other train-only regularisation" if r > 1 else
                   "validation loss at or above training loss, as usual")
            return self.finding("val_train_gap_ok", "ok", f"Validation{on} vs training loss: train/val = {fmt(r)}",
                                summary=f"Median train/val loss ratio {r:.2f} over {len(tv)} evaluation(s){on}: {why}.",
                                evidence=ev, details=details)
        causes = self._causes(run, tv, r)
        top = causes[0]
        details.update(causes=causes, top_cause=top["cause"])
        severity = "warning" if frac >= self.persistent_fraction else "info"
        summary = (f"The validation loss is {times(r)} lower than the training loss (median train/val over {len(tv)} "
                   f"evaluation(s); {frac:.0%} above {self.ratio:g}x). Most likely: {top['text']}"
                   + (f" Next: {causes[1]['text']}" if len(causes) > 1 and causes[1]["score"] >= 0.3 else ""))
        actions = [c["action"] for c in causes if c["score"] >= 0.3][:3] or [causes[0]["action"]]
        actions.append("Evaluate the training loss the same way as the validation loss (model.eval(), same "
                       "reduction, a held-out slice of the training set): the two numbers must then be comparable.")
        return self.finding("val_below_train", severity, f"Validation loss{on} {times(r)} below training loss: "
                            f"{top['label']}", summary=summary, evidence=ev,
                            actions=actions, details=details, score=float(math.log(r)))

    # ------------------------------------------------------------------ causes
    def _causes(self, run: Run, tv: pd.DataFrame, r: float) -> list[dict]:
        tol = math.log1p(self.tolerance)
        out = []
        k = config_number(run, "gradient_accumulation_steps")
        logged = run.metric("grad_accum_steps")["value"].dropna()
        if (k is None or k <= 1) and len(logged):
            k = float(logged.max())
        if k and k > 1:
            f = self._epoch_over_batch_mean(run, tv)
            share = min(1.0, math.log(k) / math.log(r)) if r > 1 else 0.0
            base = (f"train/val = {times(r)}, gradient_accumulation_steps = {k:g}: the train loss looks summed over "
                    f"{k:g} micro-batches instead of averaged")
            if f is not None and abs(math.log(f / k)) <= tol:
                score, text = 0.95, base + f" (the epoch train loss is {f:.2f}x the mean per-batch loss)."
            elif f is not None and abs(math.log(f)) <= tol:
                score, text = 0.1, (f"not gradient accumulation: the epoch train loss is about the mean per-batch "
                                    f"loss ({f:.2f}x), so it is not summed over the {k:g} micro-batches.")
            elif abs(math.log(r / k)) <= tol:
                score, text = 0.8, base + "."
            else:
                score, text = 0.15, (f"gradient accumulation ({k:g} steps) does not match the gap ({times(r)}; it "
                                     f"would explain {share:.0%} of it).")
            hf = _hf_accumulation_bug(run)
            if hf and score >= 0.8:
                score, text = 0.95, base + ". " + hf
            elif "hf-trainer-state" in run.meta.get("formats", []) and score >= 0.8:
                text += (" Hugging Face transformers 4.46-4.47 logged the train loss multiplied by "
                         "gradient_accumulation_steps (huggingface/transformers#35204); check the version this run "
                         "used (config.json's transformers_version).")
            out.append({"cause": "gradient_accumulation", "label": f"train loss summed over {k:g} accumulation steps",
                        "score": score, "explains": share, "factor": k, "epoch_over_batch_mean": f, "text": text,
                        "action": f"Divide the reported train loss by gradient_accumulation_steps ({k:g}), or "
                                  f"accumulate loss.item() / {k:g} (what backward() sees)."})
        b = config_number(run, "batch_size")
        if b and b > 1:
            match = abs(math.log(r / b)) <= tol
            out.append({"cause": "reduction_sum", "label": "train loss summed over the batch",
                        "score": 0.7 if match else 0.02,
                        "explains": min(1.0, math.log(b) / math.log(r)) if match and r > 1 else 0.0, "factor": b,
                        "text": (f"train/val = {times(r)} matches batch_size = {b:g}: the train loss uses "
                                 f"reduction='sum' and the validation loss 'mean'." if match else
                                 f"batch_size {b:g} does not match the gap."),
                        "action": "Use the same reduction ('mean') for the training and validation loss."})
        v = self._target_variance_ratio(run)
        if v is not None and v[0] > 1.2 and r > 1:
            share = min(1.0, math.log(v[0]) / math.log(r))
            conf = min(1.0, v[1] / 5)
            out.append({"cause": "easier_validation_targets", "label": "validation targets vary less",
                        "score": 0.85 * share * (0.5 + 0.5 * conf), "explains": share, "factor": v[0],
                        "text": f"the validation targets vary less than the training targets (std {fmt(v[3])} vs "
                                f"{fmt(v[2])}): for a squared error that alone makes the validation loss {times(v[0])} "
                                f"lower, {share:.0%} of the {times(r)} gap (from {v[1]} batch(es) per phase).",
                        "action": "Compare the train and validation splits (target std, date ranges, scaling): "
                                  "normalise both with the training statistics, or evaluate on a comparable split."})
        d = config_number(run, "dropout")
        aux = sorted({n for n in run.scalars["name"].astype(str).unique()
                      if any(w in n for w in ("reg_loss", "aux_loss", "l2_loss", "kl_loss", "penalty"))})
        small = r <= self.dropout_ratio
        what = " and ".join(x for x in ((f"dropout = {d:g}" if d else ""), (", ".join(aux[:2]) if aux else "")) if x) \
            or "dropout/regularisation"
        out.append({"cause": "train_only_regularisation", "label": "train-only regularisation",
                    "score": (0.9 if (d or aux) else 0.6) if small else (0.3 if aux else 0.05),
                    "explains": 1.0 if small else min(1.0, math.log(self.dropout_ratio) / math.log(r)),
                    "factor": self.dropout_ratio,
                    "text": (f"{what} counted only in training explains a gap this small." if small else
                             f"{what} in training explains ~{self.dropout_ratio:g}x at most, not {times(r)}."),
                    "action": "Measure the training loss in eval mode on a training slice to separate the dropout "
                              "effect from the rest."})
        out.append({"cause": "leakage_or_easier_split", "label": "data leakage or an easier validation split",
                    "score": 0.25, "explains": None, "factor": None,
                    "text": "validation samples overlapping the training data, or a validation split that is easier "
                            "(fewer hard samples, shorter horizons).",
                    "action": "Check the splits for overlap (ids, timestamps, near-duplicates) and compare their "
                              "difficulty."})
        return sorted(out, key=lambda c: -c["score"])

    @staticmethod
    def _epoch_over_batch_mean(run: Run, tv: pd.DataFrame) -> float | None:
        """Median over epochs of (epoch train loss / mean of that epoch's per-batch train losses)."""
        if tv["epoch"].isna().all():
            return None
        rows = main_segment(loss_rows(run, "train"))
        rows = rows[rows["batch"].notna() & rows["epoch"].notna()]
        if rows.empty:
            return None
        per = rows.groupby(rows["epoch"].astype("float64"))["value"].agg(["mean", "size"])
        per = per[per["size"] >= 3]
        j = tv.assign(epoch=tv["epoch"].astype("float64")).join(per, on="epoch", how="inner")
        j = j[j["mean"] > 0]
        return float((j["train"] / j["mean"]).median()) if len(j) else None

    @staticmethod
    def _target_variance_ratio(run: Run) -> tuple[float, int, float, float] | None:
        """``((std_train/std_val)**2, batches, std_train, std_val)`` from ``run.outputs``, or ``None``."""
        o = run.outputs
        if o.empty or o["target_std"].isna().all():
            return None
        t = o.loc[o["phase"] == "train", "target_std"].dropna()
        v = o.loc[o["phase"] == "val", "target_std"].dropna()
        if t.empty or v.empty or v.median() <= 0:
            return None
        st, sv = float(t.median()), float(v.median())
        return (st / sv) ** 2, int(min(len(t), len(v))), st, sv


def _hf_accumulation_bug(run: Run) -> str:
    """The sentence naming the transformers 4.46-4.47 logging bug when the run's config says that version."""
    for src, cfg in (run.meta.get("config_raw") or {}).items():
        if not isinstance(cfg, dict):
            continue
        for key, v in cfg.items():
            if str(key).rsplit(".", 1)[-1] != "transformers_version":
                continue
            parts = str(v).split(".")
            try:
                major, minor = int(parts[0]), int(parts[1])
            except (IndexError, ValueError):
                continue
            if (major, minor) in ((4, 46), (4, 47)):
                return (f"The run used transformers {v} ({src}): versions 4.46-4.47 logged the training loss "
                        f"multiplied by gradient_accumulation_steps (huggingface/transformers#35204, fixed by #35207 "
                        f"and, for 4.47, #35438). The model trained on the right loss; only the logged number is "
                        f"off.")
    return ""
