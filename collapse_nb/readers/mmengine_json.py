"""OpenMMLab JSON logs: mmengine ``vis_data/scalars.json`` and mmcv ``*.log.json``.

mmengine (``LocalVisBackend``) writes one object per line. Training rows carry
``step`` = the global iteration plus ``epoch`` and ``iter``; validation rows are
written once per evaluation with ``step`` = the *epoch* (when training is
epoch-based) and no ``lr``/``loss``/``epoch``/``iter``/``memory``::

    {"lr": 0.08, "data_time": 0.00026, "loss": 2.80, "time": 0.073, "epoch": 1, "iter": 96,
     "memory": 2965, "step": 96}
    {"accuracy/top1": 24.375, "accuracy/top5": 60.94, "data_time": 0.030, "time": 0.055, "step": 1}

Training rows get phase ``train`` and ``step`` (``iter`` becomes the batch only
when it differs from ``step``). Validation rows get phase ``val`` and, in an
epoch-based run, their ``step`` goes to ``epoch`` (so the central restart
detector does not see the step fall from 96 to 1); in an iteration-based run
(no ``epoch`` in training rows) it stays the step.

The older mmcv ``*.log.json`` starts with an ``env_info``/``config``/``seed``
line (kept as configuration), and every row has ``"mode": "train"|"val"``,
``epoch`` and ``iter``: ``iter`` is the batch within the epoch in an
epoch-based run (it falls back at each new epoch), the global step otherwise,
and the number of validation batches in ``val`` rows (then ignored)::

    {"mode": "train", "epoch": 1, "iter": 50, "lr": 0.02, "memory": 3601, "data_time": 0.05,
     "loss": 1.2, "time": 0.4}
    {"mode": "val", "epoch": 1, "iter": 625, "lr": 0.02, "bbox_mAP": 0.302}
"""
from __future__ import annotations

import math

from .base import register
from ._json_common import as_counter, as_float
from .jsonl import Context, JsonlReader, Record

_TRAIN_MARKERS = ("epoch", "iter", "memory")


def _is_train_row(rec: dict) -> bool:
    """mmengine training rows carry ``lr`` and ``epoch``/``iter``/``memory``; validation rows none of them."""
    return "lr" in rec or any(k in rec for k in _TRAIN_MARKERS)


@register
class MMEngineJsonReader(JsonlReader):
    name = "mmengine-json"
    description = ("OpenMMLab JSON logs: mmengine scalars.json (val rows' step is the epoch) "
                   "and mmcv *.log.json (mode/epoch/iter rows)")

    def __init__(self) -> None:
        self.by_epoch = True        # training rows have an epoch
        self.iter_is_batch = True   # mmcv: ``iter`` falls back at each epoch
        self.val_epochs = 0         # validation rows whose step was read as the epoch

    def score(self, records: list[dict]) -> float:
        for r in records:
            if "data_time" not in r:
                continue
            if "step" in r and any(k in r for k in _TRAIN_MARKERS):
                return 0.9
            if r.get("mode") in ("train", "val") and "epoch" in r and "iter" in r:
                return 0.9
        if any("env_info" in r for r in records) and any(r.get("mode") == "train" for r in records):
            return 0.85
        return 0.0

    def score_long_line(self, head: bytes) -> float:
        return 0.0

    def prepare(self, records: list[Record]) -> None:
        """Is the run epoch-based? Is mmcv's ``iter`` a batch index (it falls back) or the step?"""
        train = [r for _, r in records if not self.is_config_record(r) and self._mode(r) != "val"
                 and _is_train_row(r)]
        self.by_epoch = any("epoch" in r for r in train)
        iters = [as_float(r.get("iter")) for r in train if "mode" in r]
        self.iter_is_batch = not iters or any(b <= a for a, b in zip(iters, iters[1:]))

    def notes(self) -> list[str]:
        if self.val_epochs:
            return [f"{self.val_epochs} validation rows: their 'step' is the epoch in an epoch-based mmengine "
                    "run, read as the epoch"]
        return []

    def context(self, rec: dict) -> Context:
        if "mode" in rec:
            return self._mmcv_context(rec)
        ctx = Context(used={"step"})
        step = as_counter(rec.get("step"))
        if not _is_train_row(rec):
            ctx.phase = "val"
            if self.by_epoch:
                ctx.epoch = step
                self.val_epochs += 1
            else:
                ctx.step = step
            return ctx
        ctx.phase, ctx.step = "train", step
        ctx.used |= {"epoch", "iter"}
        ctx.epoch = as_counter(rec.get("epoch"))
        it = as_counter(rec.get("iter"))
        if not math.isnan(it) and it != step:
            ctx.batch = it
        return ctx

    def _mmcv_context(self, rec: dict) -> Context:
        ctx = Context(used={"mode", "epoch", "iter"})
        ctx.phase = self.phase_of(rec, ctx)
        ctx.epoch = as_counter(rec.get("epoch"))
        if ctx.phase == "train":
            it = as_counter(rec.get("iter"))
            if self.iter_is_batch and self.by_epoch:
                ctx.batch = it
            else:
                ctx.step = it
        return ctx

    @staticmethod
    def _mode(rec: dict) -> str | None:
        v = rec.get("mode")
        return v if isinstance(v, str) else None
