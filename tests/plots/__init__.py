"""Tests of collapse_nb.plots, and small runs written the way real logs are (JSONL, CSV) for them."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import collapse_nb

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "data" / "example_run"


@lru_cache(maxsize=1)
def example_run():
    """The bundled example run (loaded once; tests must not modify it): a text log (epochs and batches,
    no step), a capture log and TensorBoard events (steps), a per-epoch CSV, checkpoints and a config."""
    return collapse_nb.load(EXAMPLE)


@lru_cache(maxsize=1)
def text_log_run():
    """Only the example's text log: per-batch rows with an epoch and a batch and no step, no checkpoints."""
    return collapse_nb.load(EXAMPLE / "training_diagnostic.log")


def source(run, name: str) -> str:
    """The run's file whose path ends with ``name`` (``"capture.jsonl"``, ``"tfevents"`` for the events file)."""
    found = [s for s in dict.fromkeys(run.scalars["source"].astype(str)) if s.endswith(name) or
             (name == "tfevents" and "tfevents" in s)]
    assert len(found) == 1, (name, found)
    return found[0]


def rows_of(run, name: str, metric: str | None = None):
    """``run.scalars`` rows of one file (and canonical metric)."""
    s = run.scalars
    keep = s["source"].astype(str) == source(run, name)
    if metric is not None:
        keep &= s["name"] == metric
    return s[keep.to_numpy(dtype=bool)]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def restarted_rows() -> list[dict]:
    """A run logged every 10 steps to step 40, restarted from step 20 and logged to step 60.

    Per-parameter norms: ``layer.0.weight`` alive, ``layer.1.weight`` dead (grad 0 everywhere),
    ``head.bias`` gradient 0 at one step only. Two lr param groups. val_loss every 20 steps, on
    the same line as the train loss (so the restart is one line).
    """
    rows = []
    for seg, steps in ((0, range(0, 50, 10)), (1, range(20, 70, 10))):
        for s in steps:
            r = {"step": s, "epoch": s // 20, "loss": 1.0 / (s + 1) + seg, "lr/pg0": 0.01 if s < 30 else 0.005,
                 "lr/pg1": 0.001, "grad_norm/layer.0.weight": 0.5 + s / 100, "grad_norm/layer.1.weight": 0.0,
                 "grad_norm/head.bias": 0.0 if s == 10 else 0.1 * (s + 1),
                 "weight_norm/layer.0.weight": 2.0, "update_norm/layer.0.weight": 0.002 * (1 + seg),
                 "weight_norm/head.bias": 0.0 if s == 0 else 1.0, "update_norm/head.bias": 0.0 if s == 0 else 1e-4}
            if s % 20 == 0:
                r["val_loss"] = 2.0 / (s + 1)
            rows.append(r)
    return rows


def restarted_run(tmp_path: Path):
    return collapse_nb.load(write_jsonl(tmp_path / "metrics.jsonl", restarted_rows()))


def epoch_csv_run(tmp_path: Path, accumulation: int | None = None, with_val: bool = True):
    """A Keras-style per-epoch CSV (no steps): train loss 4x the val loss; optionally a config giving
    gradient accumulation."""
    d = tmp_path / "run"
    d.mkdir()
    rows = ["epoch,loss,val_loss,lr" if with_val else "epoch,loss,lr"]
    for e in range(5):
        train = 4.0 - e * 0.1
        rows.append(f"{e},{train},{train / 4},{0.001 * e}" if with_val else f"{e},{train},{0.001 * e}")
    (d / "log.csv").write_text("\n".join(rows) + "\n")
    if accumulation is not None:
        (d / "config.yaml").write_text(f"gradient_accumulation_steps: {accumulation}\nlearning_rate: 0.003\n")
    return collapse_nb.load(d)


def no_step_rows() -> list[dict]:
    """A JSONL log with only a loss per epoch: nothing per step, no grads, no outputs."""
    return [{"epoch": e, "loss": 1.0 / (e + 1)} for e in range(3)]
