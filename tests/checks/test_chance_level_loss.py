"""chance_level_loss: ln K for classifiers, the target variance for regression."""
from __future__ import annotations

import math

import pytest

from collapse_nb.checks import ChanceLevelLoss
from tests.checks import DiagLog, load, write_config, write_jsonl, write_keras_csv


def test_configured_class_count(tmp_path):
    write_keras_csv(tmp_path / "training.log", [{"epoch": i, "loss": math.log(10) + 0.01 * (5 - i)}
                                                for i in range(6)])
    write_config(tmp_path, num_classes=10)
    [f] = ChanceLevelLoss()(load(tmp_path))
    assert (f.code, f.severity) == ("chance_level_loss", "critical")
    assert f.details["k"] == 10 and f.details["chance_loss"] == pytest.approx(2.302585)
    assert "num_classes = 10" in f.details["k_from"] and "ln 10 = 2.3" in f.title


def test_inferred_from_loss_and_accuracy(tmp_path):
    write_jsonl(tmp_path / "log.jsonl", [{"step": s, "train/loss": math.log(5) + 0.002,
                                          "train/acc": 0.2 + 0.01 * (s % 2)} for s in range(20)])
    [f] = ChanceLevelLoss()(load(tmp_path))
    assert f.severity == "critical" and f.details["k"] == 5 and f.details["k_from"].startswith("inferred")
    assert "accuracy, 0.2" in f.summary


def test_inferred_needs_chance_accuracy(tmp_path):
    write_jsonl(tmp_path / "log.jsonl", [{"step": s, "train/loss": math.log(5), "train/acc": 0.9} for s in range(20)])
    assert ChanceLevelLoss()(load(tmp_path)) == []


def test_accuracy_in_percent(tmp_path):
    write_jsonl(tmp_path / "log.jsonl", [{"step": s, "train/loss": math.log(4), "train/acc": 25.0} for s in range(20)])
    assert ChanceLevelLoss()(load(tmp_path))[0].details["k"] == 4


def test_below_chance_is_ok(tmp_path):
    write_keras_csv(tmp_path / "training.log", [{"epoch": i, "loss": 2.0 / (i + 1)} for i in range(6)])
    write_config(tmp_path, num_labels=10)
    [f] = ChanceLevelLoss()(load(tmp_path))
    assert (f.code, f.severity) == ("loss_below_chance", "ok")


def _regression(tmp_path, loss_of_var):
    log = DiagLog()
    for b in range(20):
        std = 0.8 + 0.02 * (b % 5)
        log.batch(1, b, 20, loss=loss_of_var * std ** 2, pred=(0.0, 0.05), true=(0.0, std))
    log.write(tmp_path / "training_diagnostic.log")
    return load(tmp_path)


def test_regression_loss_at_target_variance(tmp_path):
    [f] = ChanceLevelLoss()(_regression(tmp_path, 1.02))
    assert (f.code, f.severity) == ("chance_level_loss", "warning")
    assert f.details["loss_over_var"] == pytest.approx(1.02, rel=1e-3)
    assert "predicting the batch mean" in f.summary


def test_regression_learning_is_ok(tmp_path):
    [f] = ChanceLevelLoss()(_regression(tmp_path, 0.3))
    assert (f.code, f.details["r2_if_mse"]) == ("loss_below_target_variance", pytest.approx(0.7, rel=1e-3))


def test_regression_skipped_for_non_squared_losses(tmp_path):
    _regression(tmp_path, 1.0)
    write_config(tmp_path, loss="mae")
    [f] = ChanceLevelLoss()(load(tmp_path))
    assert f.code == "not_checked"


def test_nothing_to_compare_with(tmp_path):
    write_jsonl(tmp_path / "log.jsonl", [{"step": s, "train/loss": 1.0} for s in range(5)])
    [f] = ChanceLevelLoss()(load(tmp_path))
    assert f.code == "not_checked" and "class count" in f.summary


def test_actions_depend_on_classification_or_regression(tmp_path):
    [reg] = ChanceLevelLoss()(_regression(tmp_path / "reg", 1.02))
    text = " ".join(reg.actions)
    assert "logits" not in text and "class count" not in text and "label" not in text.lower()
    assert "targets" in text and "target variance" in text
    write_keras_csv(tmp_path / "cls" / "training.log", [{"epoch": i, "loss": math.log(10)} for i in range(6)])
    write_config(tmp_path / "cls", num_classes=10)
    [cls] = ChanceLevelLoss()(load(tmp_path / "cls"))
    assert cls.severity == "critical" and "logits" in " ".join(cls.actions) and "class count" in " ".join(cls.actions)


def test_regression_a_little_below_the_variance_is_a_note_not_ok(tmp_path):
    # loss/var 0.82: better than the mean, but the predictions account for 18% of the variance: not "working"
    [f] = ChanceLevelLoss()(_regression(tmp_path, 0.82))
    assert (f.code, f.severity) == ("loss_near_target_variance", "info")
    assert "only 18% below the target variance" in f.title and "explains" not in f.summary
    [ok] = ChanceLevelLoss()(_regression(tmp_path / "good", 0.2))
    assert (ok.code, ok.severity) == ("loss_below_target_variance", "ok") and "explains" not in ok.summary
