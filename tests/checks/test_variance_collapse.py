"""variance_collapse: prediction std vs target std from the diagnostic log's y_pred / y_true lines."""
from __future__ import annotations

import numpy as np
import pytest

from collapse_nb.checks import VarianceCollapse
from tests.checks import DiagLog, load, write_jsonl


def _run(tmp_path, pred_std, epochs=4, batches=10, target_std=1.0):
    """``pred_std(i)`` for the i-th logged batch (0-based over the whole run)."""
    log = DiagLog()
    i = 0
    for e in range(1, epochs + 1):
        for b in range(batches):
            log.batch(e, b, batches, loss=1.0, pred=(0.01, pred_std(i)), true=(0.0, target_std))
            i += 1
    log.write(tmp_path / "training_diagnostic.log")
    return load(tmp_path)


def test_collapse_developing_during_training(tmp_path):
    # 0.8 for 15 batches, then falling by 0.75 a batch to 0.02: under 0.3 from the 19th batch (0.8 * 0.75**4 = 0.25)
    run = _run(tmp_path, lambda i: 0.8 if i < 15 else max(0.02, 0.8 * 0.75 ** (i - 14)))
    [f] = VarianceCollapse()(run)
    assert f.code == "variance_collapse" and f.severity == "critical"
    assert f.details["ratio_last"] == pytest.approx(0.02, rel=1e-3)
    assert f.details["ratio_first"] == pytest.approx(0.8, rel=1e-3)
    assert f.details["trend"] == "falling"
    onset = f.details["onset"]
    assert onset["where"] == "epoch 2 batch 8" and not onset["from_start"]
    assert "1:50" in f.title and "developed during training" in f.summary
    assert list(f.evidence["epoch"]) == [1.0, 2.0, 3.0, 4.0]
    assert f.evidence["ratio"].iloc[0] == pytest.approx(0.8) and f.evidence["one_in"].iloc[-1] == "1:50"
    assert f.actions and "output head" in f.actions[0]


def test_warning_band_and_thresholds(tmp_path):
    run = _run(tmp_path, lambda i: 0.2)
    [f] = VarianceCollapse()(run)
    assert f.severity == "warning" and f.details["trend"] == "flat"
    assert VarianceCollapse(critical_ratio=0.25)(run)[0].severity == "critical"
    assert VarianceCollapse(warning_ratio=0.15)(run)[0].code == "outputs_spread_ok"


def test_healthy_outputs_are_ok(tmp_path):
    rng = np.random.default_rng(0)
    [f] = VarianceCollapse()(_run(tmp_path, lambda i: 0.9 + 0.05 * rng.standard_normal()))
    assert f.code == "outputs_spread_ok" and f.severity == "ok"
    assert 0.8 < f.details["ratio_last"] < 1.0


def test_single_epoch_uses_windows(tmp_path):
    [f] = VarianceCollapse(windows=4)(_run(tmp_path, lambda i: 0.05, epochs=1, batches=20))
    assert len(f.evidence) == 4 and list(f.evidence["rows"]) == [5, 5, 5, 5]
    assert f.evidence["window"].iloc[0] == "epoch 1 batch 0 .. epoch 1 batch 4"


def test_missing_statistics_is_info(tmp_path):
    write_jsonl(tmp_path / "log.jsonl", [{"step": s, "loss": 1.0} for s in range(5)])
    [f] = VarianceCollapse()(load(tmp_path))
    assert (f.code, f.severity, f.check) == ("not_checked", "info", "variance_collapse")
    assert "no prediction/target std" in f.summary


def test_too_few_rows_is_info(tmp_path):
    [f] = VarianceCollapse()(_run(tmp_path, lambda i: 0.01, epochs=1, batches=2))
    assert f.code == "not_checked" and "only 2 batch(es)" in f.title


def test_metrics_named_pred_std_in_jsonl(tmp_path):
    write_jsonl(tmp_path / "log.jsonl", [{"step": s, "pred_std": 0.01, "target_std": 1.0} for s in range(10)])
    [f] = VarianceCollapse()(load(tmp_path))
    assert f.severity == "critical" and f.details["ratio_last"] == pytest.approx(0.01)
    assert f.details["onset"]["where"] == "step 0"
