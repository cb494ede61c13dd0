"""val_below_train: the gap and its causes ranked by the evidence in the run."""
from __future__ import annotations

import pytest

from collapse_nb.checks import ValBelowTrain
from tests.checks import DiagLog, load, write_config, write_jsonl, write_keras_csv


def _diag(tmp_path, summed: bool, accum=3, epochs=4, batches=12, val=1.0, **config):
    """Per-batch raw losses ~1.0; the epoch train loss summed over ``accum`` micro-batches (the bug) or averaged."""
    log = DiagLog()
    for e in range(1, epochs + 1):
        losses = [1.0 + 0.01 * ((b * 7) % 5) for b in range(batches)]
        for b, loss in enumerate(losses):
            log.batch(e, b, batches, loss=loss, accum=accum)
        mean = sum(losses) / batches
        log.epoch_end(e, train_loss=mean * accum if summed else mean, val_loss=val * (1.0 if summed else 1 / 3))
    log.write(tmp_path / "training_diagnostic.log")
    write_config(tmp_path, gradient_accumulation_steps=accum, **config)
    return load(tmp_path)


def _csv(tmp_path, train, val, **config):
    write_keras_csv(tmp_path / "training.log", [{"epoch": i, "loss": t, "val_loss": v}
                                                for i, (t, v) in enumerate(zip(train, val))])
    if config:
        write_config(tmp_path, **config)
    return load(tmp_path)


def test_accumulation_seen_in_the_batch_losses(tmp_path):
    [f] = ValBelowTrain()(_diag(tmp_path, summed=True))
    assert (f.code, f.severity) == ("val_below_train", "warning")
    top = f.details["causes"][0]
    assert top["cause"] == "gradient_accumulation" and top["score"] == 0.95
    assert top["epoch_over_batch_mean"] == pytest.approx(3.0)
    assert f.details["ratio_median"] == pytest.approx(3.06, rel=0.01)
    assert "train/val = 3.1x, gradient_accumulation_steps = 3: the train loss looks summed over 3 micro-batches" \
           in f.summary
    assert f.actions[0].startswith("Divide the reported train loss by gradient_accumulation_steps (3)")


def test_accumulation_ruled_out_by_the_batch_losses(tmp_path):
    [f] = ValBelowTrain()(_diag(tmp_path, summed=False))
    causes = {c["cause"]: c for c in f.details["causes"]}
    assert causes["gradient_accumulation"]["score"] == 0.1
    assert "is about the mean per-batch loss (1.00x)" in causes["gradient_accumulation"]["text"]
    assert f.details["top_cause"] == "leakage_or_easier_split"


def test_accumulation_from_the_ratio_alone(tmp_path):
    [f] = ValBelowTrain()(_csv(tmp_path, [3.3, 3.0, 2.7, 2.4], [1.1, 1.0, 0.9, 0.8], gradient_accumulation_steps=3))
    top = f.details["causes"][0]
    assert top["cause"] == "gradient_accumulation" and top["score"] == 0.8      # no per-batch losses to confirm
    assert f.details["ratio_median"] == pytest.approx(3.0)


def test_accumulation_that_does_not_match(tmp_path):
    [f] = ValBelowTrain()(_csv(tmp_path, [8.0, 7.0, 6.0], [1.0, 0.9, 0.8], gradient_accumulation_steps=2))
    causes = {c["cause"]: c for c in f.details["causes"]}
    assert causes["gradient_accumulation"]["score"] == 0.15 and f.details["top_cause"] == "leakage_or_easier_split"
    assert causes["gradient_accumulation"]["explains"] == pytest.approx(0.33, abs=0.02)


def test_reduction_sum_matches_batch_size(tmp_path):
    [f] = ValBelowTrain()(_csv(tmp_path, [64.0, 60.0, 58.0], [2.0, 1.9, 1.8], batch_size=32))
    assert f.details["top_cause"] == "reduction_sum" and "reduction='sum'" in f.summary


def test_easier_validation_targets(tmp_path):
    rows = [{"step": s, "train/loss": 2.0, "val/loss": 0.5, "train/target_std": 1.0, "val/target_std": 0.5}
            for s in range(1, 9)]
    write_jsonl(tmp_path / "log.jsonl", rows)
    [f] = ValBelowTrain()(load(tmp_path))
    top = f.details["causes"][0]
    assert top["cause"] == "easier_validation_targets" and top["explains"] == pytest.approx(1.0)
    assert "validation targets vary less than the training targets (std 0.5 vs 1)" in f.summary


def test_dropout_sized_gap_is_ok(tmp_path):
    [f] = ValBelowTrain()(_csv(tmp_path, [1.2, 1.0, 0.9], [1.0, 0.85, 0.75], dropout=0.1))
    assert (f.code, f.severity) == ("val_train_gap_ok", "ok") and "dropout" in f.summary


def test_occasional_gap_is_info(tmp_path):
    [f] = ValBelowTrain()(_csv(tmp_path, [2.0, 1.4, 1.3, 1.3], [1.0, 1.0, 1.0, 0.97]))
    assert f.severity == "info" and f.details["fraction_above"] == 0.25


def test_usual_gap_is_ok(tmp_path):
    [f] = ValBelowTrain()(_csv(tmp_path, [1.0, 0.8, 0.6], [1.1, 0.9, 0.8]))
    assert f.code == "val_train_gap_ok" and "as usual" in f.summary


def test_needs_both_phases(tmp_path):
    write_jsonl(tmp_path / "log.jsonl", [{"step": s, "train/loss": 1.0} for s in range(3)])
    assert ValBelowTrain()(load(tmp_path))[0].code == "not_checked"
