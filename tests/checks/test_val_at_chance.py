"""val_at_chance: a validation loss at ln K, an AUC at 0.5, an accuracy at 1/K, while training learns."""
from __future__ import annotations

import json
import math

import pytest

from collapse_nb.checks import ValAtChance
from tests.checks import load, write_config, write_jsonl, write_keras_csv


def _history(path, **series):
    """What ``json.dump(model.fit(...).history, f)`` writes."""
    path.write_text(json.dumps({k: list(v) for k, v in series.items()}))
    return path


def test_val_auc_below_chance_early_then_recovered(tmp_path):
    _history(tmp_path / "training_history.json",
             loss=[2.4, 2.2, 2.1, 1.9, 1.8, 1.7], auc=[0.91, 0.94, 0.95, 0.96, 0.96, 0.97],
             val_loss=[3.1, 3.2, 2.3, 1.9, 1.8, 1.7], val_auc=[0.43, 0.48, 0.65, 0.92, 0.97, 0.98])
    [f] = ValAtChance()(load(tmp_path))
    assert (f.code, f.severity) == ("val_at_chance_recovered", "info")
    assert f.details["spans"] == [["epoch 1", "epoch 2"]] and f.details["points_at_chance"] == 2
    assert "0.43, 0.48" in f.summary and "train side was 0.91-0.94" in f.summary
    assert "left chance from epoch 3 (0.65)" in f.summary


def test_val_loss_at_ln_k_throughout_while_train_learns(tmp_path):
    k = 11
    rows = [{"epoch": e, "loss": 2.38 - 0.05 * e, "accuracy": 0.14 + 0.02 * e,
             "val_loss": math.log(k) + 0.02 * (-1) ** e, "val_accuracy": 0.09 + 0.003 * e} for e in range(10)]
    write_keras_csv(tmp_path / "training.log", rows)
    write_config(tmp_path, num_classes=k)
    [f] = ValAtChance()(load(tmp_path))
    assert (f.code, f.severity) == ("val_at_chance", "critical")
    assert f.details["chance"] == pytest.approx(math.log(k)) and "num_classes = 11" in f.details["chance_from"]
    assert "never left it" in f.summary and "does not generalise" in f.summary
    assert "val_accuracy" in " ".join(f.details["also_at_chance"])          # the accuracy at 1/11 too


def test_accuracy_in_percent_with_a_class_count(tmp_path):
    write_jsonl(tmp_path / "log.jsonl", [{"epoch": e, "train/loss": 1.0 / (e + 1), "val/acc": 10.0 + 0.2 * e}
                                         for e in range(6)])
    write_config(tmp_path, num_classes=10)
    [f] = ValAtChance()(load(tmp_path))
    assert f.code == "val_at_chance" and f.details["last"] == pytest.approx(0.11)


def test_better_than_chance_is_ok(tmp_path):
    _history(tmp_path / "training_history.json", loss=[0.7, 0.5, 0.4], auc=[0.7, 0.8, 0.85],
             val_loss=[0.7, 0.55, 0.45], val_auc=[0.68, 0.79, 0.84])
    [f] = ValAtChance()(load(tmp_path))
    assert (f.code, f.severity) == ("val_above_chance", "ok")


def test_no_chance_level_known_is_not_checked(tmp_path):
    write_jsonl(tmp_path / "log.jsonl", [{"epoch": e, "train/loss": 1.0, "val/loss": 1.2} for e in range(5)])
    [f] = ValAtChance()(load(tmp_path))
    assert f.code == "not_checked" and "no validation AUC" in f.details["missing"]


def test_corpus_pneumonia_early_validation_collapse(corpus):
    import collapse_nb as cnb

    run = cnb.load(corpus("keras-pneumonia-val-collapse-early", "training_history.json"))
    [f] = ValAtChance()(run)
    assert f.code == "val_at_chance_recovered"
    assert f.details["spans"] == [["epoch 1", "epoch 2"]] and "val_auc" in f.details["series"]


def test_a_regression_run_is_not_applicable(tmp_path):
    write_jsonl(tmp_path / "log.jsonl", [{"epoch": e, "train/mse": 1.0 / (e + 1), "val/mse": 1.1 / (e + 1)}
                                         for e in range(5)])
    [f] = ValAtChance()(load(tmp_path))
    assert f.details["not_applicable"] and "regression" in f.details["missing"]
