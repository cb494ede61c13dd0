"""The one training loop every zoo scenario shares, with switches for the faults it can inject.

:func:`train` runs mini-batch training of a model on a :class:`~collapse_nb.zoo.data.Data`
set as configured by a :class:`Spec`, and writes the run directory while it goes:

- ``capture.jsonl``: the :class:`collapse_nb.capture.Recorder`'s log (every ``spec.every`` steps);
- ``training_diagnostic.log``: the seed report's diagnostic blocks (every batch header,
  every ``spec.block_every`` optimizer steps a per-parameter block);
- ``tb/``: TensorBoard events; ``checkpoints/epoch_<e>.pt``; ``metrics.csv`` (per epoch).

Faults that live in the loop (the others are in the data or the model):

``report_loss="sum"``
    the epoch's train loss adds up the micro-batch losses of each optimizer step instead of
    averaging them: ``gradient_accumulation_steps`` times too high (the per-step and per-batch
    losses logged are right);
``lr_bug="per_batch"``
    the epoch-based schedule is stepped every optimizer step (like ``CosineAnnealingLR(T_max=epochs)``
    stepped per batch: warmup over ``warmup_epochs`` *steps*, then a cosine wave of period ``2 * epochs`` steps);
``lr_bug="warmup_never_ends"``
    the warmup length is converted to steps but the schedule is stepped per epoch, so the lr
    still rises at the last epoch.

Epochs are numbered from 1, batches from 0 within an epoch, optimizer steps from 0
(the capture log's ``step``; TensorBoard's step is the number of steps done).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .data import Data
from .writers import DiagnosticLog, TensorBoard, save_checkpoint, write_metrics

LR_BUGS = (None, "per_batch", "warmup_never_ends")


@dataclass
class Spec:
    """How to train (and what to record). Defaults: Adam at 1e-3, constant lr, MSE, no clipping."""

    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    optimizer: str = "adam"               # adam | adamw | sgd
    momentum: float = 0.0
    weight_decay: float = 0.0
    accum: int = 1                        # gradient accumulation steps
    clip: float | None = None             # clip_grad_norm_ max norm
    scheduler: str = "constant"           # constant | cosine (linear warmup over warmup_epochs, then cosine)
    warmup_epochs: int = 0
    min_lr: float = 0.0
    shuffle: bool = True
    report_loss: str = "mean"             # "sum": the accumulation reporting bug
    lr_bug: str | None = None
    every: int = 5                        # Recorder: record every n-th optimizer step
    activations: bool = False             # Recorder: activation statistics (frac_zero for dead ReLUs)
    log_every: int = 1                    # text log: a batch header every n batches
    block_every: int = 5                  # text log: an optimizer-step block every n steps
    title: str = "ZOO MODEL"

    def __post_init__(self) -> None:
        if self.optimizer not in ("adam", "adamw", "sgd"):
            raise ValueError(f"optimizer must be adam, adamw or sgd, got {self.optimizer!r}")
        if self.scheduler not in ("constant", "cosine"):
            raise ValueError(f"scheduler must be constant or cosine, got {self.scheduler!r}")
        if self.report_loss not in ("mean", "sum"):
            raise ValueError(f"report_loss must be mean or sum, got {self.report_loss!r}")
        if self.lr_bug not in LR_BUGS:
            raise ValueError(f"lr_bug must be one of {LR_BUGS}, got {self.lr_bug!r}")
        for k in ("epochs", "batch_size", "accum", "every", "log_every", "block_every"):
            if int(getattr(self, k)) < 1:
                raise ValueError(f"{k} must be >= 1, got {getattr(self, k)!r}")

    def lr_at(self, t: float, warmup: float | None = None) -> float:
        """The schedule at ``t`` (1-based epochs): linear warmup, then cosine to ``min_lr`` (or constant)."""
        base, warm, lo = self.lr, self.warmup_epochs if warmup is None else warmup, self.min_lr
        if warm and t <= warm:
            return base * t / warm
        if self.scheduler == "cosine":
            u = (t - warm) / max(1, self.epochs - warm)
            return lo + 0.5 * (base - lo) * (1 + math.cos(math.pi * u))
        return base

    def make_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        if self.optimizer == "sgd":
            return torch.optim.SGD(model.parameters(), lr=self.lr, momentum=self.momentum,
                                   weight_decay=self.weight_decay)
        cls = torch.optim.AdamW if self.optimizer == "adamw" else torch.optim.Adam
        return cls(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)


def _std(t: torch.Tensor) -> float:
    return t.std().item() if t.numel() > 1 else 0.0


class _Loss:
    """The task's loss, and what gets logged beside it (accuracy for classifiers, output stats for regression)."""

    def __init__(self, data: Data):
        self.classify = data.task == "classification"
        self.fn = nn.CrossEntropyLoss() if self.classify else nn.MSELoss()

    def extra(self, pred: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        return {"accuracy": (pred.argmax(-1) == y).float().mean().item()} if self.classify else {}


def train(model: nn.Module, data: Data, spec: Spec, out_dir: str | Path, config: dict[str, Any],
          seed: int = 0) -> dict[str, Any]:
    """Train ``model`` on ``data`` as ``spec`` says and write the run directory; returns a summary.

    ``config`` (the intended configuration) goes into the capture log's header. The caller
    seeds torch's global generator; the batch order comes from a generator seeded with ``seed``.
    """
    from ..capture import Recorder

    out = Path(out_dir)
    t0 = time.perf_counter()
    opt = spec.make_optimizer(model)
    lossf = _Loss(data)
    n, accum = spec.batch_size, spec.accum
    nb = data.n_train // n
    steps_per_epoch = nb // accum
    if steps_per_epoch < 1:
        raise ValueError(f"{data.n_train} training rows make {nb} batches of {n}: fewer than one optimizer "
                         f"step of {accum} micro-batches")
    order_gen = torch.Generator().manual_seed(seed)
    log = DiagnosticLog(out / "training_diagnostic.log", spec.title)
    tb = TensorBoard(out / "tb")
    rec = Recorder(model, opt, out / "capture.jsonl", every=spec.every, activations=spec.activations,
                   metadata=config, mode="w")
    params = list(model.named_parameters())
    rows: list[dict[str, Any]] = []
    skipped_hist: set[str] = set()
    step = 0
    try:
        for epoch in range(1, spec.epochs + 1):
            if spec.lr_bug != "per_batch":
                warm = spec.warmup_epochs * steps_per_epoch if spec.lr_bug == "warmup_never_ends" else None
                for g in opt.param_groups:
                    g["lr"] = spec.lr_at(epoch, warm)
            model.train()
            perm = torch.randperm(data.n_train, generator=order_gen) if spec.shuffle else None
            reported, step_loss = 0.0, 0.0
            extra_sum: dict[str, float] = {}
            for b in range(nb):
                idx = slice(b * n, (b + 1) * n) if perm is None else perm[b * n:(b + 1) * n]
                xb, yb = data.x_train[idx], data.y_train[idx]
                pred = model(xb)
                raw = lossf.fn(pred, yb)
                if not lossf.classify:
                    rec.log_outputs(pred, yb, epoch=epoch, batch=b)
                (raw / accum).backward()
                raw_v = raw.item()
                step_loss += raw_v
                reported += raw_v if spec.report_loss == "sum" else raw_v / accum   # "sum": never divided (the bug)
                extra = lossf.extra(pred, yb)
                for k, v in extra.items():
                    extra_sum[k] = extra_sum.get(k, 0.0) + v
                if (b + 1) % accum == 0:
                    if spec.lr_bug == "per_batch":
                        for g in opt.param_groups:
                            g["lr"] = spec.lr_at(step + 1)
                    step = _optimizer_step(model, opt, rec, spec, log, tb, params, step, step_loss / accum, extra,
                                           epoch, b, last=(b + 1) // accum == steps_per_epoch,
                                           skipped=skipped_hist)
                    step_loss = 0.0
                if b % spec.log_every == 0:
                    stats = None if lossf.classify else ((pred.mean().item(), _std(pred)), (yb.mean().item(), _std(yb)))
                    pred_stats, target_stats = stats or (None, None)
                    log.batch(epoch, b, nb, raw_v, accum, pred_stats, target_stats, extra=extra)
            opt.zero_grad()                       # micro-batches left over after the last full step are dropped
            row = _end_epoch(model, data, lossf, opt, rec, log, tb, epoch, step, reported / steps_per_epoch,
                             {k: v / nb for k, v in extra_sum.items()})
            rows.append(row)
            save_checkpoint(out / "checkpoints" / f"epoch_{epoch:03d}.pt", model, opt, epoch, step)
    except BaseException as exc:
        rec.close(error=exc)
        raise
    finally:
        log.close()
        tb.close()
    rec.close()
    write_metrics(out / "metrics.csv", rows)
    notes = [tb.missing] if tb.missing else []
    if skipped_hist:
        notes.append(f"{len(skipped_hist)} histogram tag(s) not written at some epochs: non-finite values")
    return {"epochs": rows, "steps": step, "batches_per_epoch": nb, "seconds": time.perf_counter() - t0,
            "notes": notes}


def _optimizer_step(model, opt, rec, spec: Spec, log: DiagnosticLog, tb: TensorBoard, params, step: int,
                    step_loss: float, extra: dict[str, float], epoch: int, batch: int, last: bool,
                    skipped: set[str]) -> int:
    """Clip, log, step, write the diagnostics; returns the number of optimizer steps done."""
    block = step % spec.block_every == 0
    norms = [p.grad.norm().item() if p.grad is not None else 0.0 for _, p in params] if block else []
    if spec.clip is not None:
        rec.set_clip_norm(torch.nn.utils.clip_grad_norm_(model.parameters(), spec.clip))
    before = [p.detach().clone() for _, p in params] if block else []
    rec.log(loss=step_loss, epoch=epoch, batch=batch, **extra)
    opt.step()
    lr = opt.param_groups[0]["lr"]
    tb.scalar("train/loss", step_loss, step + 1)
    tb.scalar("lr", lr, step + 1)
    if last:
        skipped.update(tb.histograms(model, step + 1))   # the epoch's last gradients, before zero_grad
    opt.zero_grad()
    if block:
        log.step_block(((k, w0.norm().item(), p.detach().norm().item(), (p.detach() - w0).norm().item(), g)
                        for (k, p), w0, g in zip(params, before, norms)), lr)
    return step + 1


def _end_epoch(model, data: Data, lossf: _Loss, opt, rec, log: DiagnosticLog, tb: TensorBoard, epoch: int,
               step: int, train_loss: float, train_extra: dict[str, float]) -> dict[str, Any]:
    """Validate, then log the epoch everywhere; returns its metrics.csv row."""
    model.eval()
    with torch.no_grad():
        pred = model(data.x_val)
        val_loss = lossf.fn(pred, data.y_val).item()
        val_extra = lossf.extra(pred, data.y_val)
        test_loss = None if data.x_test is None else lossf.fn(model(data.x_test), data.y_test).item()
    lr = opt.param_groups[0]["lr"]
    values = {"train_loss": train_loss, "val_loss": val_loss}
    values.update({f"train_{k}": v for k, v in train_extra.items()})
    values.update({f"val_{k}": v for k, v in val_extra.items()})
    if test_loss is not None:
        values["test_loss"] = test_loss
        rec.log(test_loss=test_loss, phase="test", epoch=epoch)
        tb.scalar("test/loss", test_loss, step)
    log.epoch_end(epoch, values, lr)
    rec.log(loss=train_loss, phase="train", epoch=epoch, immediate=True,
            **{k: v for k, v in train_extra.items()})
    rec.log(val_loss=val_loss, phase="val", epoch=epoch, **{f"val_{k}": v for k, v in val_extra.items()})
    if not lossf.classify:
        rec.log_outputs(pred, data.y_val, phase="val", epoch=epoch)
    tb.scalar("val/loss", val_loss, step)
    return {"epoch": epoch, **values, "lr": lr}
