"""Helpers for the check tests: write real log files (the formats the readers take) and load them.

The tests build small runs the way a training script would leave them: a JSON-lines metrics
file, a Keras CSV, the seed report's diagnostic-block text log, a ``config.yaml``; then
``collapse_nb.load`` reads the directory. Nothing is built by hand in the tables' dtypes.
"""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any, Iterable

import yaml

import collapse_nb as cnb

RULE = "=" * 80


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> Path:
    """One JSON object per line (NaN/inf written as ``NaN``/``Infinity``, as ``json.dumps`` does)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_keras_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    """A Keras ``CSVLogger`` file: ``epoch`` first, then the metrics."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def write_config(run_dir: Path, **cfg: Any) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    p = run_dir / "config.yaml"
    p.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return p


class DiagLog:
    """The seed report's diagnostic-block log, written the way ``collapse_nb.example`` writes it."""

    def __init__(self) -> None:
        self.parts = ["TEST RUN - TRAINING DIAGNOSTICS\n" + RULE + "\n"]

    def batch(self, epoch: int, batch: int, n: int, loss: float, pred: tuple[float, float] | None = None,
              true: tuple[float, float] | None = None, accum: int | None = None) -> "DiagLog":
        s = f"\n{RULE}\nEPOCH {epoch} | BATCH {batch}/{n} | TRAINING MODE\n{RULE}\n"
        s += f"raw_loss (full batch loss): {_num(loss, 8)}\n"
        if accum is not None:
            s += f"effective_cycle (gradient_accumulation_steps): {accum}\n"
        if pred is not None:
            s += f"y_pred_for_loss mean/std: {_num(pred[0], 6)} / {_num(pred[1], 6)}\n"
        if true is not None:
            s += f"y_true_for_loss mean/std: {_num(true[0], 6)} / {_num(true[1], 6)}\n"
        self.parts.append(s)
        return self

    def step(self, params: dict[str, tuple[float, float, float, float]], lr: float | None = None) -> "DiagLog":
        """``params``: name -> (weight_norm_before, weight_norm_after, weight_change, grad_norm)."""
        s = "\n--- OPTIMIZER STEP DIAGNOSTICS ---\n"
        for name, (before, after, change, grad) in params.items():
            s += (f"{name}:\n  weight_norm_before: {_num(before, 8)}\n  weight_norm_after: {_num(after, 8)}\n"
                  f"  weight_change: {_num(change, 8)}\n  grad_norm: {_num(grad, 8)}\n")
        s += "optimizer_step_executed: True\n"
        if lr is not None:
            s += f"current_lr: {lr:.8f}\n"
        self.parts.append(s)
        return self

    def epoch_end(self, epoch: int, train_loss: float, val_loss: float | None = None,
                  lr: float | None = None) -> "DiagLog":
        s = f"\nEpoch {epoch} complete | train_loss={train_loss:.6f}"
        if val_loss is not None:
            s += f" val_loss={val_loss:.6f}"
        if lr is not None:
            s += f" lr={lr:.8f}"
        self.parts.append(s + "\n")
        return self

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(self.parts))
        return path


def _num(x: float, digits: int) -> str:
    return str(x) if isinstance(x, float) and not math.isfinite(x) else f"{x:.{digits}f}"


def load(path: Path) -> cnb.Run:
    return cnb.load(path)


def by_code(findings, code: str):
    """The one finding with ``code`` (assertion error listing the codes otherwise)."""
    hits = [f for f in findings if f.code == code]
    assert len(hits) == 1, f"expected one {code!r}, got {[(f.code, f.severity) for f in findings]}"
    return hits[0]


def codes(findings) -> set[str]:
    return {f.code for f in findings}


def problems(findings) -> list:
    return [f for f in findings if f.severity in ("critical", "warning")]
