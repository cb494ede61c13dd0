"""DETR ``log.txt`` (also Deformable/Conditional DETR): one JSON object per epoch.

``main.py`` of facebookresearch/detr appends, after every epoch,
``json.dumps({**{f'train_{k}': v}, **{f'test_{k}': v}, 'epoch': epoch, 'n_parameters': n})``::

    {"train_lr": 0.0001, "train_loss": 4.23, "train_loss_ce": 0.081, "test_loss": 2.97,
     "test_coco_eval_bbox": [0.71, 0.98, 0.87, -1.0, 0.16, 0.73, 0.74, 0.78, 0.84, -1.0, 0.50, 0.85],
     "epoch": 0, "n_parameters": 41279495}

- ``epoch`` (0-based) is the index; there is no step, so a run resumed into the
  same output directory shows up as the epoch going back (a new segment,
  detected centrally).
- DETR's ``test_*`` values are computed on the *validation* set (``val2017``):
  they are given phase ``val`` (a note says so), and the raw column
  ``phase_fixed`` marks that this context phase must win over the ``test``
  word in the name (the central canonicaliser otherwise prefers the name's).
- ``n_parameters`` is a property of the model, not a training curve: it goes to
  the config.
- ``test_coco_eval_bbox`` / ``test_coco_eval_masks`` are the 12 COCO summary
  numbers (AP, AP50, AP75, AP small/medium/large, AR@1/10/100, AR
  small/medium/large), kept as ``.../0`` ... ``.../11``; ``-1.0`` means "no
  object of that size" in COCO, a note says so.
"""
from __future__ import annotations

from pathlib import Path

from .base import ReadResult, SkipLog, register
from .jsonl import JsonlReader, Record


@register
class DetrLogReader(JsonlReader):
    name = "detr-log"
    description = "DETR log.txt: one JSON object per epoch with train_*, test_* (validation set), epoch"

    STEP_KEYS = ()
    CONFIG_KEYS = frozenset({"n_parameters"})

    def score(self, records: list[dict]) -> float:
        for r in records:
            keys = r.keys()
            train = any(k.startswith("train_") for k in keys)
            test = any(k.startswith("test_") for k in keys)
            if train and test and ("n_parameters" in keys or "epoch" in keys):
                return 0.9
            if train and "n_parameters" in keys:
                return 0.8
        return 0.0

    def score_long_line(self, head: bytes) -> float:
        return 0.6 if b'"train_loss' in head and b'"train_lr"' in head else 0.0

    def key_phase(self, name: str, row_phase: str | None) -> str | None:
        if name.startswith("test_"):
            return "val"
        if name.startswith("train_"):
            return "train"
        return row_phase

    def build(self, path: Path, records: list[Record], skipped: SkipLog) -> ReadResult:
        result = super().build(path, records, skipped)
        result.scalars["phase_fixed"] = result.scalars["raw_name"].str.startswith("test_").to_numpy(dtype=bool)
        return result

    def notes(self) -> list[str]:
        return ["DETR's test_* values are computed on the validation set: given phase 'val'"]
