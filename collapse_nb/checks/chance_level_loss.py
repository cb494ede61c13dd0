"""Chance-level loss: the loss sits where a model that learned nothing would be.

Classification: a cross-entropy of ``ln K`` is what uniform predictions over K
classes score. K comes from the configuration (``num_classes``, ``num_labels``,
``n_classes``, ``nb_classes``, ``classes`` in ``run.meta["config_raw"]``); without
it, a loss matching ``ln K`` for a K in 2..1000 counts only when an accuracy is
also logged and sits at ``1/K``.

Regression: predicting the batch mean scores a squared error equal to the target
variance. When ``run.outputs`` has the target std of the batches whose loss is
logged, the check computes ``loss / target_std**2`` (``1 - R^2`` for an MSE loss);
near 1 means the model explains nothing beyond the mean. When the config names a
loss that is not a squared error (``loss: mae``), this comparison is skipped.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..findings import Finding
from ._base import Check, curve, curve_basis, finite, fmt, loss_rows, main_segment, tail

if TYPE_CHECKING:
    from ..run import Run

_K_KEYS = ("num_classes", "num_labels", "n_classes", "nb_classes", "classes", "n_class", "num_class", "nclass", "nc")
#: A language model's uniform loss is ln(vocabulary size).
_VOCAB_KEYS = ("vocab_size", "ntokens", "n_vocab", "vocabulary_size", "num_tokens", "padded_vocab_size")


def chance_loss(run: Run) -> tuple[float | None, int | None, str]:
    """``(ln K, K, where K was read)`` for a classifier (classes) or language model (vocabulary), else Nones.

    K is read from the config files (``num_classes``, ``num_labels``, ``nc``, ``vocab_size``, ``ntokens``...)
    or from a value the log printed under such a name ("found vocab_size = 65").
    """
    k, how = ChanceLevelLoss._classes(run)
    if k is None:
        return None, None, ""
    return math.log(k), k, how


@dataclass
class ChanceLevelLoss(Check):
    """Loss stuck at the chance level (ln K, or the target variance).

    Thresholds
    ----------
    tolerance : float, default 0.05
        Relative distance from ``ln K`` (or from a ``loss / var`` of 1) that counts as "at" it.
    inferred_tolerance : float, default 0.02
        Tighter, when K is inferred from the loss value (ln K values crowd together for large K).
    accuracy_tolerance : float, default 0.5
        An inferred K also needs the accuracy within this fraction of ``1/K``.
    tail_frac : float, default 0.2
        The last fraction of the logged train loss that is compared.
    max_k : int, default 1000
    learned_ratio : float, default 0.5
        Regression: a ``loss / var`` below this is ok (the predictions account for more than half the targets'
        variance); from it up to ``1 - 3 * tolerance`` (0.85) an ``info`` note (``loss_near_target_variance``):
        better than the mean, but not a model that learned the task, so it is not listed as working.

    Requires
    --------
    Train ``loss`` in ``run.scalars``; for classification a class count in the config or a logged
    accuracy; for regression ``target_std`` in ``run.outputs`` at the batches whose loss is logged.
    """

    name = "chance_level_loss"
    reads = "the end of the train objective against ln K (classes or vocabulary) or the target variance"
    tolerance: float = 0.05
    inferred_tolerance: float = 0.02
    accuracy_tolerance: float = 0.5
    tail_frac: float = 0.2
    max_k: int = 1000
    learned_ratio: float = 0.5


    symptoms = {"chance_level_loss": 1.0}
    symptom_words = {"chance_level_loss": "the chance-level loss"}
    quantity = "Loss vs chance level (loss / target variance)"

    def healthy_band(self, finding=None) -> str:
        t = self.limits(finding)
        if finding is not None and "k" in finding.details:
            return f"more than {t['tolerance']:.0%} below ln K (uniform guessing)"
        return (f"below {fmt(t.get('learned_ratio', 0.5))} (1 = predicting the mean; flagged from "
                f"{fmt(1 - 3 * t['tolerance'])})")

    def measure(self, d) -> str:
        if "loss_over_var" in d:
            return f"{d['loss_over_var']:.2f}"
        return f"loss {fmt(d['loss_end'])} vs ln {d['k']} = {fmt(d['chance_loss'])}"

    def __call__(self, run: Run) -> list[Finding]:
        c = curve(run, "train")
        c = finite(c)
        if c.empty:
            return self.skip(c.attrs.get("missing") or "no train loss")
        if run.objective("train").how == "sum":
            return self.skip(f"the objective is {c.attrs.get('series')}: a sum of terms has no single chance level")
        end = float(np.mean(tail(c["value"].to_numpy(dtype="float64"), self.tail_frac)))
        out = self._regression(run)
        if out is not None:
            return out
        k, how = self._classes(run)
        acc = self._accuracy(run)
        if k is None:
            if acc is None or end <= 0:
                return self.skip("no class count in the config, no accuracy logged, and no target std in "
                                 "run.outputs to compare the loss with")
            k = int(round(math.exp(end)))
            if not 2 <= k <= self.max_k or abs(end - math.log(k)) / math.log(k) > self.inferred_tolerance:
                return []
            if abs(acc - 1 / k) > self.accuracy_tolerance / k:
                return []
            how = f"inferred: loss {fmt(end)} = ln {k} and accuracy {fmt(acc)} = 1/{k}"
        chance = math.log(k)
        dist = abs(end - chance) / chance
        details = {"k": k, "k_from": how, "chance_loss": chance, "loss_end": end, "distance": dist,
                   "accuracy_end": acc, **curve_basis(c)}
        if dist > self.tolerance and end > chance:
            return [self.finding(
                "chance_level_loss", "critical", f"Loss above chance level: {fmt(end)} > ln {k} = {fmt(chance)}",
                summary=f"The train loss ends at {fmt(end)}, {end / chance:.2g}x the {fmt(chance)} that predicting all "
                        f"{k} {'tokens' if 'vocab' in how or 'token' in how else 'classes'} with equal probability "
                        f"scores ({how}): the model is worse than uniform guessing.",
                evidence=c[["where", "value"]].tail(20).reset_index(drop=True), actions=self._actions(how),
                details={**details, "state": "above"}, score=1.0)]
        if dist > self.tolerance:
            return [self.finding(
                "loss_below_chance", "ok", f"Loss below chance level (ln {k} = {fmt(chance)})",
                summary=f"The train loss ends at {fmt(end)}, below the {fmt(chance)} of uniform guessing over {k} "
                        f"classes.", details=details)]
        summary = (f"The train loss ends at {fmt(end)}, {dist:.1%} from ln {k} = {fmt(chance)}: the loss of predicting "
                   f"all {k} classes with equal probability ({how})."
                   + (f" The accuracy, {fmt(acc)}, is at chance too." if acc is not None and abs(acc - 1 / k) < 0.5 / k
                      else ""))
        return [self.finding("chance_level_loss", "critical", f"Loss stuck at chance level: ln {k} = {fmt(chance)}",
                             summary=summary, evidence=c[["where", "value"]].tail(20).reset_index(drop=True),
                             actions=self._actions(how), details=details, score=1 - dist)]

    def _regression(self, run: Run) -> list[Finding] | None:
        o = run.outputs
        if o.empty or o["target_std"].isna().all():
            return None
        loss_name = str(run.config.get("loss") or "").lower()
        if loss_name and not any(w in loss_name for w in ("mse", "l2", "squared")):
            return None         # the target-variance level only holds for a squared error
        loss = main_segment(loss_rows(run, "train"))
        keys = ["segment", "epoch", "batch", "step"]
        loss = loss[loss["batch"].notna() | loss["step"].notna()]
        tgt = o[(o["phase"] == "train") | o["phase"].isna()].dropna(subset=["target_std"])
        if loss.empty or tgt.empty:
            return None
        j = loss[keys + ["value"]].merge(tgt[keys + ["target_std"]], on=keys, how="inner")
        j = j[(j["target_std"] > 0) & np.isfinite(j["value"])]
        if len(j) < 3:
            return None
        j = j.assign(loss_over_var=j["value"] / j["target_std"] ** 2)
        q = float(np.median(tail(j["loss_over_var"].to_numpy(dtype="float64"), self.tail_frac, 3)))
        details = {"loss_over_var": q, "r2_if_mse": 1 - q, "batches": len(j)}
        if q < self.learned_ratio:
            return [self.finding("loss_below_target_variance", "ok",
                                 f"Loss well below the target variance (loss/var = {q:.2f})",
                                 summary=f"In the last logged batches the loss is {q:.2f} of the target variance: the "
                                         f"predictions account for about {1 - q:.0%} of the targets' variance "
                                         f"(R^2 ~ {1 - q:.2f} if the loss is MSE).",
                                 details=details)]
        if q < 1 - self.tolerance * 3:
            return [self.finding("loss_near_target_variance", "info",
                                 f"Loss only {1 - q:.0%} below the target variance (loss/var = {q:.2f})",
                                 summary=f"In the last logged batches the loss is {q:.2f} of the target variance: "
                                         f"better "
                                         f"than predicting the mean (flagged from {fmt(1 - self.tolerance * 3)}), but "
                                         f"the predictions account for only about {1 - q:.0%} of the targets' variance "
                                         f"(R^2 ~ {1 - q:.2f} if the loss is MSE; a model that learned the task is "
                                         f"below {fmt(self.learned_ratio)}).",
                                 details=details, score=float(q))]
        ev = j[["epoch", "batch", "step", "value", "target_std", "loss_over_var"]].tail(20).reset_index(drop=True)
        summary = (f"In the last logged batches the train loss is {q:.2f}x the target variance (median of loss / "
                   f"target_std^2 over {len(ev)} batches): for a mean-squared error that is what predicting the batch "
                   f"mean scores (R^2 ~ {1 - q:.2f}). The model has learned little beyond the mean.")
        return [self.finding("chance_level_loss", "warning", f"Loss at the level of predicting the mean "
                             f"(loss/var = {_q(q)})", summary=summary, evidence=ev, actions=self._actions(None),
                             details=details, score=float(min(q, 2.0)))]

    @staticmethod
    def _classes(run: Run) -> tuple[int | None, str]:
        raw = run.meta.get("config_raw", {}) if hasattr(run, "meta") else {}
        classifier = False
        for src, cfg in (raw.items() if isinstance(raw, dict) else []):
            k, is_classifier = _hf_labels(cfg) if isinstance(cfg, dict) else (None, False)
            classifier |= is_classifier
            if k is not None:
                return k, f"{k} labels in id2label in {src}"
        for keys, what in ((_K_KEYS, "classes"), (_VOCAB_KEYS, "vocabulary")):
            if classifier and what == "vocabulary":       # a sequence classifier's chance is its labels, not its vocab
                continue
            for src, cfg in (raw.items() if isinstance(raw, dict) else []):
                for key, v in (cfg.items() if isinstance(cfg, dict) else []):
                    leaf = str(key).rsplit(".", 1)[-1].lower()
                    if leaf in keys:
                        try:
                            k = int(v)
                        except (TypeError, ValueError, OverflowError):
                            continue
                        if k >= 2:
                            return k, f"{key} = {k} in {src}"
            s = run.scalars
            if not s.empty:
                said = s[s["name"].astype(str).isin(keys) & s["param"].isna()]
                vals = pd.to_numeric(said["value"], errors="coerce").dropna()
                vals = vals[(vals >= 2) & (vals == vals.round())]
                if len(vals):
                    r = said.loc[vals.index[0]]
                    return int(vals.iloc[0]), f"{r['raw_name']} = {int(vals.iloc[0])} in {r['source']}"
        return None, ""

    @staticmethod
    def _accuracy(run: Run) -> float | None:
        s = run.scalars
        acc = s[(s["name"] == "accuracy") & s["param"].isna()]
        if acc.empty:
            return None
        acc = acc[acc["phase"] == "train"] if (acc["phase"] == "train").any() else acc
        v = float(np.mean(tail(pd.to_numeric(acc["value"]).dropna().to_numpy(dtype="float64"), 0.2)))
        return v / 100 if acc["value"].max() > 1.0 else v

    @staticmethod
    def _actions(k_from: str | None) -> list[str]:
        """What to do, for a classifier or language model (``k_from``: where K was read) or a regression (None)."""
        if k_from is None:
            return ["Check that the targets line up with the inputs (shuffled or misaligned targets give exactly "
                    "this) and that the inputs carry information about them.",
                    "Check the output layer receives gradient and is not squashed or scaled to a constant (a final "
                    "activation, a tiny head init, strong weight decay: see variance_collapse), and that targets "
                    "and predictions are on the same scale (normalised the same way).",
                    "Overfit a single batch: if the loss cannot drop below the target variance there, the bug is in "
                    "the model or the loss, not the data."]
        tokens = "vocab" in k_from or "token" in k_from
        return ["Check that labels line up with the inputs (a shuffled label array gives exactly this).",
                "Check the output layer receives gradient and the loss receives logits (not probabilities or an "
                f"argmax), with the right {'vocabulary size' if tokens else 'class count'}.",
                "Overfit a single batch: if the loss cannot leave the chance level there, the bug is in the model or "
                "the loss, not the data."]


_HF_CLASSIFIER = re.compile(r"For(Sequence|Token|Image|Audio|Video)Classification|ForMultipleChoice")


def _hf_labels(cfg: dict) -> tuple[int | None, bool]:
    """``(K, is_classifier)`` from a Hugging Face model config: ``id2label`` counts the labels (HF stores no
    ``num_labels``) when the model is a classifier (``problem_type``, ``architectures``) or names more than
    the two default labels; a regression (``problem_type: regression``) has none."""
    problem = str(cfg.get("problem_type") or "")
    arch = " ".join(str(v) for k, v in cfg.items() if str(k).split(".")[0] == "architectures")
    classifier = "classification" in problem or bool(_HF_CLASSIFIER.search(arch))
    if problem == "regression":
        return None, True
    labels = {str(k).split(".", 1)[1] for k in cfg if str(k).startswith("id2label.")}
    if labels and (classifier or len(labels) > 2):
        return (len(labels) if len(labels) >= 2 else None), classifier
    return None, classifier


def _q(q: float) -> str:
    """loss/var for a title: ``0.82``; a huge one (a diverged loss) in powers of ten."""
    return f"{q:.2f}" if abs(q) < 1e4 else fmt(q)
