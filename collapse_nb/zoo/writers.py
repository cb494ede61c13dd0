"""What a zoo run leaves behind, besides the capture log: the files a real training script writes.

- :class:`DiagnosticLog`: ``training_diagnostic.log`` in the seed report's diagnostic-block format
  (``EPOCH e | BATCH b/n | TRAINING MODE`` headers, ``raw_loss``, ``y_pred_for_loss mean/std``,
  ``--- OPTIMIZER STEP DIAGNOSTICS ---`` blocks with per-parameter norms);
- :class:`TensorBoard`: ``tb/events.out.tfevents.*`` (``train/loss``, ``val/loss``, ``lr`` scalars;
  ``parameters/<name>`` and ``gradients/<name>`` histograms);
- :func:`save_checkpoint`: ``checkpoints/epoch_<e>.pt`` (``{model, optimizer, epoch, global_step}``);
- :func:`write_metrics`, :func:`write_config`, :func:`write_json`: ``metrics.csv``, ``config.yaml``,
  ``scenario.json``.
"""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch

RULE = "=" * 80


def _f(v: float, digits: int) -> str:
    return f"{v:.{digits}f}" if math.isfinite(v) else str(v)      # nan / inf / -inf as Python writes them


class DiagnosticLog:
    """A text log in the seed report's diagnostic-block format.

    >>> log = DiagnosticLog("run/training_diagnostic.log", "MY MODEL")           # doctest: +SKIP
    >>> log.batch(1, 0, 30, raw_loss=0.9, accum=3, pred=(0.0, 0.1), target=(0.0, 1.0))  # doctest: +SKIP
    """

    def __init__(self, path: str | Path, title: str, config_name: str = "config.yaml"):
        self.path = Path(path)
        self._f = open(self.path, "w")
        self._f.write(f"{title} - TRAINING DIAGNOSTICS\n{RULE}\nConfig: {config_name}\n{RULE}\n\n")

    def step_block(self, params: Iterable[tuple[str, float, float, float, float]], lr: float) -> None:
        """One optimizer step: ``(name, weight_norm_before, weight_norm_after, weight_change, grad_norm)``."""
        w = self._f.write
        w("\n--- OPTIMIZER STEP DIAGNOSTICS ---\n")
        for name, before, after, change, grad in params:
            w(f"{name}:\n  weight_norm_before: {_f(before, 8)}\n  weight_norm_after: {_f(after, 8)}\n"
              f"  weight_change: {_f(change, 8)}\n  grad_norm: {_f(grad, 8)}\n")
        w(f"optimizer_step_executed: True\ncurrent_lr: {_f(lr, 8)}\n")

    def batch(self, epoch: int, batch: int, n_batches: int, raw_loss: float, accum: int,
              pred: tuple[float, float] | None = None, target: tuple[float, float] | None = None,
              extra: Mapping[str, float] | None = None) -> None:
        """A training batch's header and values (pred/target are ``(mean, std)``; ``extra`` more ``key: value``)."""
        w = self._f.write
        w(f"\n{RULE}\nEPOCH {epoch} | BATCH {batch}/{n_batches} | TRAINING MODE\n{RULE}\n")
        w(f"raw_loss (full batch loss): {_f(raw_loss, 8)}\n")
        w(f"effective_cycle (gradient_accumulation_steps): {accum}\n")
        if pred is not None and target is not None:
            w(f"y_pred_for_loss mean/std: {_f(pred[0], 6)} / {_f(pred[1], 6)}\n")
            w(f"y_true_for_loss mean/std: {_f(target[0], 6)} / {_f(target[1], 6)}\n")
        for k, v in (extra or {}).items():
            w(f"{k}: {_f(v, 6)}\n")

    def epoch_end(self, epoch: int, values: Mapping[str, float], lr: float) -> None:
        """``Epoch e complete | train_loss=... val_loss=... lr=...``."""
        body = " ".join(f"{k}={_f(v, 6)}" for k, v in values.items())
        self._f.write(f"\nEpoch {epoch} complete | {body} lr={_f(lr, 8)}\n")

    def close(self) -> None:
        self._f.close()


class TensorBoard:
    """``torch.utils.tensorboard.SummaryWriter`` under ``<run>/tb``; a no-op when tensorboard is missing."""

    def __init__(self, log_dir: str | Path, enabled: bool = True, max_bins: int = 30):
        self.writer = None
        self.max_bins = max_bins
        self.missing = None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:      # tensorboard is optional: `pip install tensorboard`
            self.missing = f"no TensorBoard events written ({exc}); pip install tensorboard"
            return
        self.writer = SummaryWriter(log_dir=str(log_dir))

    def scalar(self, tag: str, value: float, step: int) -> None:
        if self.writer is not None:
            self.writer.add_scalar(tag, value, step)

    def histograms(self, model: torch.nn.Module, step: int) -> list[str]:
        """``parameters/<name>`` and ``gradients/<name>`` histograms; returns the tags skipped (non-finite)."""
        skipped: list[str] = []
        if self.writer is None:
            return skipped
        for name, p in model.named_parameters():
            for tag, t in ((f"parameters/{name}", p.detach()),
                           (f"gradients/{name}", None if p.grad is None else p.grad.detach())):
                if t is None:
                    continue
                if not bool(torch.isfinite(t).all()):     # a histogram of nan/inf cannot be binned
                    skipped.append(tag)
                    continue
                self.writer.add_histogram(tag, t, step, max_bins=self.max_bins)
        return skipped

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def save_checkpoint(path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, epoch: int,
                    global_step: int) -> Path:
    """``torch.save({"model", "optimizer", "epoch", "global_step"})``, the usual training checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
                "global_step": global_step}, path)
    return path


def write_metrics(path: str | Path, rows: list[dict[str, Any]]) -> Path:
    """One row per epoch (``epoch, train_loss, val_loss, lr, ...``)."""
    path = Path(path)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def write_config(path: str | Path, config: Mapping[str, Any]) -> Path:
    import yaml

    path = Path(path)
    path.write_text(yaml.safe_dump(dict(config), sort_keys=False))
    return path


def write_json(path: str | Path, obj: Mapping[str, Any]) -> Path:
    path = Path(path)
    path.write_text(json.dumps(obj, indent=2, default=str) + "\n")
    return path
