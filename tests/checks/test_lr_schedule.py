"""lr_schedule_mismatch: the logged lr against warmup + decay built from the config."""
from __future__ import annotations

import math

from collapse_nb.checks import LRScheduleMismatch
from tests.checks import DiagLog, load, write_config, write_jsonl, write_keras_csv

PEAK, LO = 1e-3, 1e-5


def cosine_epochs(epoch: int, warm: int = 2, total: int = 8) -> float:
    """1-based epochs: linear warmup to PEAK over ``warm`` epochs, then cosine to LO (collapse_nb.example's)."""
    if epoch <= warm:
        return PEAK * epoch / warm
    t = (epoch - warm) / (total - warm)
    return LO + 0.5 * (PEAK - LO) * (1 + math.cos(math.pi * t))


def _keras(tmp_path, lrs, **config):
    write_keras_csv(tmp_path / "training.log", [{"epoch": i, "loss": 1.0 / (i + 1), "lr": lr}
                                                for i, lr in enumerate(lrs)])
    write_config(tmp_path, **config)
    return load(tmp_path)


def test_warmup_cosine_as_configured(tmp_path):
    run = _keras(tmp_path, [cosine_epochs(e) for e in range(1, 9)], learning_rate=PEAK, warmup_epochs=2,
                 min_lr=LO, epochs=8)
    [f] = LRScheduleMismatch()(run)
    assert (f.code, f.severity) == ("lr_schedule_ok", "ok")
    assert f.title == "Learning rate follows warmup (2 epochs, to 0.001) + cosine decay to 1e-05 as configured"
    assert f.details["median_err"] < 1e-6 and f.details["epoch_offset"] == 1.0     # Keras counts epochs from 0
    assert list(f.evidence.columns) == ["epoch", "logged_lr", "expected_lr", "rel_err"]


def test_warmup_never_ends(tmp_path):
    run = _keras(tmp_path, [PEAK * (e + 1) / 10 for e in range(10)], learning_rate=PEAK, warmup_epochs=3, epochs=10)
    [f] = LRScheduleMismatch()(run)
    assert (f.code, f.severity) == ("lr_schedule_mismatch", "warning")
    assert f.details["problems"][0] == "warmup_never_ends"
    assert "still rising at epoch 9" in f.summary and "after 3 epochs" in f.summary


def test_peak_does_not_match(tmp_path):
    [f] = LRScheduleMismatch()(_keras(tmp_path, [5e-4] * 6, learning_rate=PEAK, epochs=6))
    assert f.details["problems"] == ["peak_mismatch"]
    assert "peaks at 0.0005, 0.5x the 0.001" in f.summary


def test_decay_per_batch_instead_of_per_epoch(tmp_path):
    log = DiagLog()
    steps_per_epoch, epochs = 6, 4
    total = steps_per_epoch * epochs
    for e in range(1, epochs + 1):
        for b in range(steps_per_epoch):
            i = (e - 1) * steps_per_epoch + b
            log.batch(e, b, steps_per_epoch, loss=1.0)
            lr = LO + 0.5 * (PEAK - LO) * (1 + math.cos(math.pi * i / total))      # cosine over all batches
            log.step({"w.weight": (1.0, 1.0, 0.001, 0.1)}, lr=lr)
    log.write(tmp_path / "training_diagnostic.log")
    write_config(tmp_path, learning_rate=PEAK, warmup_epochs=0, min_lr=LO, epochs=epochs)
    [f] = LRScheduleMismatch()(load(tmp_path))
    assert f.details["problems"][0] == "decays_per_batch"
    assert "scheduler.step() is being called every batch" in f.summary
    assert f.details["epochs_changing_within"] == (4, 4)


def test_step_based_linear_warmup_and_decay(tmp_path):
    def lr(step):
        return PEAK * step / 100 if step <= 100 else PEAK * (1000 - step) / 900
    write_jsonl(tmp_path / "log.jsonl", [{"step": s, "loss": 1.0, "lr": lr(s)} for s in range(0, 1000, 20)])
    write_config(tmp_path, learning_rate=PEAK, warmup_steps=100, max_steps=1000, lr_scheduler_type="linear")
    [f] = LRScheduleMismatch()(load(tmp_path))
    assert (f.code, f.details["unit"], f.details["best_shape"]) == ("lr_schedule_ok", "step", "linear")
    assert "warmup (100 steps, to 0.001) + linear decay to 0" in f.title


def test_run_stopped_during_warmup(tmp_path):
    [f] = LRScheduleMismatch()(_keras(tmp_path, [0.001, 0.002], learning_rate=0.003, warmup_epochs=3, epochs=3))
    assert f.code == "lr_schedule_ok" and "stopped during warmup" in f.summary


def test_needs_config_and_logged_lr(tmp_path):
    write_jsonl(tmp_path / "log.jsonl", [{"step": s, "loss": 1.0, "lr": 1e-3} for s in range(5)])
    [f] = LRScheduleMismatch()(load(tmp_path))
    assert f.code == "not_checked" and "learning_rate" in f.summary
