"""detectron2 ``metrics.json``: JSON lines written by ``detectron2.utils.events.JSONWriter``.

Each line is ``json.dumps(scalars, sort_keys=True)`` of the latest values of one
iteration; evaluation results land on the line of the iteration they were run at::

    {"data_time": 0.0043, "eta_seconds": 99.86, "iteration": 19, "loss_cls": 0.72,
     "loss_box_reg": 0.66, "lr": 1.6e-05, "rpn/num_pos_anchors": 9.75, "time": 0.357,
     "total_loss": 2.168}
    {"bbox/AP": 40.1, "bbox/AP50": 61.3, "iteration": 299, "segm/AP": 35.2}

``iteration`` (0-based) is the step. Phases are per key, because one line can
hold both training and evaluation values: evaluator results (``bbox/``,
``segm/``, ``keypoints/``, ``sem_seg/``, ``panoptic_seg/``, ``box_proposals/``...)
are ``val``; losses and the per-batch model statistics (``fast_rcnn/``,
``mask_rcnn/``, ``roi_head/``, ``rpn/``) are ``train``; timings and ``lr`` have
no phase. A run restarted into the same output directory appends to the file,
so an iteration can appear twice: the central restart detector makes that a
new segment.
"""
from __future__ import annotations

from .base import register
from .jsonl import JsonlReader

#: Top-level keys of detectron2 evaluator results (``flatten_results_dict`` turns them into ``task/metric``).
EVAL_PREFIXES = ("bbox/", "segm/", "keypoints/", "sem_seg/", "panoptic_seg/", "box_proposals/", "lvis/",
                 "densepose/", "bbox_proposals/")
#: Per-batch statistics the standard models put into the event storage while training.
TRAIN_PREFIXES = ("fast_rcnn/", "mask_rcnn/", "roi_head/", "rpn/", "retinanet/", "sem_seg_head/")
_MARKERS = ("eta_seconds", "total_loss", "data_time")


@register
class Detectron2JsonReader(JsonlReader):
    name = "detectron2-json"
    description = "detectron2 metrics.json: JSON lines with 'iteration', loss_* and eval task/metric keys"

    STEP_KEYS = ("iteration",)

    def score(self, records: list[dict]) -> float:
        with_iter = [r for r in records if "iteration" in r]
        if not with_iter:
            return 0.0
        keys = {k for r in with_iter for k in r}
        lossy = any(k.startswith("loss_") for k in keys)
        marked = sum(m in keys for m in _MARKERS)
        evals = any(k.startswith(EVAL_PREFIXES) for k in keys)
        if (lossy and marked) or marked >= 2 or (lossy and evals):
            return 0.9
        if lossy or marked or evals:
            return 0.7
        return 0.0

    def score_long_line(self, head: bytes) -> float:
        return 0.0

    def key_phase(self, name: str, row_phase: str | None) -> str | None:
        if row_phase:
            return row_phase
        if name.startswith(EVAL_PREFIXES):
            return "val"
        if "loss" in name or name.startswith(TRAIN_PREFIXES):
            return "train"
        return None
