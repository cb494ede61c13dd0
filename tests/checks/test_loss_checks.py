"""nonfinite_loss, loss_plateau, loss_divergence, overfitting on written logs."""
from __future__ import annotations

import math

import numpy as np
import pytest

from collapse_nb.checks import LossDivergence, LossPlateau, NonfiniteLoss, Overfitting
from tests.checks import load, write_jsonl, write_keras_csv


def _steps(tmp_path, train, val=None, n=None):
    n = n or 50
    rows = []
    for s in range(n):
        r = {"iter": s * 10, "train/loss": train(s)}
        if val is not None:
            r["val/loss"] = val(s)
        rows.append(r)
    write_jsonl(tmp_path / "log.jsonl", rows)
    return load(tmp_path)


def _epochs(tmp_path, train, val=None):
    rows = [{"epoch": i, "loss": t, **({"val_loss": val[i]} if val is not None else {})} for i, t in enumerate(train)]
    write_keras_csv(tmp_path / "training.log", rows)
    return load(tmp_path)


# ----------------------------------------------------------------------------- nonfinite

def test_nan_loss_first_step_and_last_finite(tmp_path):
    run = _steps(tmp_path, lambda s: math.nan if s >= 31 else (math.inf if s == 30 else 2.0 - s / 100))
    [f] = NonfiniteLoss()(run)
    assert (f.code, f.severity) == ("nonfinite_loss", "critical")
    d = f.details
    assert d["first_where"] == "step 300" and d["inf"] == 1 and d["nan"] == 19
    assert d["last_finite_before"] == pytest.approx(1.71) and d["first_phase"] == "train"
    assert d["first_line"] == 31 and d["first_source"].endswith("log.jsonl")
    assert f.title == "Loss became inf at step 300"


def test_huge_val_loss_is_warning(tmp_path):
    [f] = NonfiniteLoss()(_steps(tmp_path, lambda s: 1.0, val=lambda s: 2e5 if s == 40 else 1.0))
    assert f.severity == "warning" and f.details["huge"] == 1 and f.details["first_phase"] == "val"


def test_finite_loss_ok(tmp_path):
    [f] = NonfiniteLoss()(_steps(tmp_path, lambda s: 1.0))
    assert (f.code, f.severity, f.details["n"]) == ("loss_finite", "ok", 50)


# ----------------------------------------------------------------------------- plateau

def test_stuck_loss_is_a_plateau_warning(tmp_path):
    rng = np.random.default_rng(1)
    # the seed report: 1.09 then flat at ~0.98, with batch noise
    run = _steps(tmp_path, lambda s: (1.09 if s == 0 else 0.98) + 0.05 * rng.standard_normal(), n=80)
    [f] = LossPlateau()(run)
    assert (f.code, f.severity) == ("loss_plateau", "warning")
    assert abs(f.details["improvement"]) < 0.01 + 0.02 and f.details["overall_improvement"] < 0.3
    assert "stuck near where it started" in f.summary


def test_converged_loss_is_info(tmp_path):
    [f] = LossPlateau()(_epochs(tmp_path, [2.0, 1.0, 0.5, 0.3, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2]))
    assert (f.code, f.severity) == ("loss_plateau", "info") and f.details["unit"] == "epochs"
    assert f.details["overall_improvement"] == pytest.approx(0.9)


def test_rising_again_after_learning_is_info(tmp_path):
    [f] = LossPlateau()(_epochs(tmp_path, [3.0, 1.0, 0.5, 0.4, 0.45, 0.5, 0.55, 0.6]))
    assert (f.severity, f.details["state"]) == ("info", "rising again") and "rising again" in f.title


def test_decreasing_loss_ok(tmp_path):
    [f] = LossPlateau()(_steps(tmp_path, lambda s: 3.0 * 0.97 ** s))
    assert (f.code, f.severity) == ("loss_decreasing", "ok") and f.details["improvement"] > 0.3


def test_too_short_is_info(tmp_path):
    [f] = LossPlateau()(_steps(tmp_path, lambda s: 1.0, n=3))
    assert f.code == "not_checked"


# ----------------------------------------------------------------------------- divergence

def test_divergence(tmp_path):
    run = _steps(tmp_path, lambda s: 2.0 - s * 0.03 if s < 30 else 1.1 + (s - 30) * 0.5, n=50)   # min 1.1, ends ~10
    [f] = LossDivergence()(run)
    assert f.code == "loss_divergence" and f.severity in ("warning", "critical")
    assert f.details["factor"] > 3 and f.details["min_where"] == "step 300"


def test_single_spike_is_not_divergence(tmp_path):
    run = _steps(tmp_path, lambda s: 50.0 if s == 45 else 1.0 - s / 100)
    assert [f.code for f in LossDivergence()(run)] == ["loss_not_diverging"]


def test_divergence_per_epoch_critical(tmp_path):
    [f] = LossDivergence()(_epochs(tmp_path, [1.0, 0.5, 0.4, 0.5, 2.0, 8.0]))
    assert f.severity == "critical" and f.details["factor"] == pytest.approx(20.0)


# ----------------------------------------------------------------------------- overfitting

def test_overfitting_per_epoch(tmp_path):
    train = [2.0, 1.5, 1.0, 0.7, 0.5, 0.35, 0.25]
    val = [2.1, 1.7, 1.4, 1.45, 1.6, 1.75, 1.9]
    [f] = Overfitting()(_epochs(tmp_path, train, val))
    assert (f.code, f.severity) == ("overfitting", "warning")
    d = f.details
    assert d["val_min"] == 1.4 and d["val_min_where"] == "epoch 2"
    assert d["rise"] == pytest.approx((1.825 - 1.4) / 1.4)
    assert d["consecutive_train_down_val_worse"] == 4
    assert "Keep the checkpoint from epoch 2" in f.actions[0]


def test_overfitting_by_iteration_is_critical(tmp_path):
    run = _steps(tmp_path, lambda s: 3.0 * 0.9 ** s, val=lambda s: 3.0 - s * 0.2 if s < 5 else 2.0 + (s - 5) * 0.2,
                 n=20)
    [f] = Overfitting()(run)
    assert f.severity == "critical" and f.details["val_min_where"] == "step 50"


def test_healthy_train_val_ok(tmp_path):
    [f] = Overfitting()(_epochs(tmp_path, [2.0, 1.5, 1.2, 1.0, 0.9], [2.1, 1.6, 1.3, 1.1, 1.0]))
    assert (f.code, f.severity) == ("no_overfitting", "ok")


def test_no_val_is_info(tmp_path):
    [f] = Overfitting()(_steps(tmp_path, lambda s: 1.0))
    assert f.code == "not_checked"


# ----------------------------------------------------------------------------- spikes

def _noisy(s: int) -> float:
    return 3.0 - s / 400 + 0.02 * math.sin(s * 1.7)


def test_a_spike_that_recovers_is_info_with_its_recovery_time(tmp_path):
    from collapse_nb.checks import LossSpikes
    run = _steps(tmp_path, lambda s: 9.0 if s in (100, 101) else (5.0 if s == 102 else _noisy(s)), n=300)
    [f] = LossSpikes()(run)
    assert (f.code, f.severity) == ("loss_spikes", "info")
    assert f.details["spikes"] == 1 and f.details["largest_where"] == "step 1000"
    assert f.details["largest"] == pytest.approx(9.0 / _noisy(90), rel=0.05)
    assert f.details["median_recovery_steps"] == 30          # back within 10% at step 1030 (logged every 10)


def test_a_spike_that_never_recovers_is_a_warning(tmp_path):
    from collapse_nb.checks import LossSpikes
    run = _steps(tmp_path, lambda s: 8.0 + 0.01 * s if s >= 200 else _noisy(s), n=300)
    [f] = LossSpikes()(run)
    assert (f.code, f.severity) == ("loss_spike_unrecovered", "warning") and f.details["unrecovered"] == 1


def test_noise_is_not_a_spike_and_epochs_cannot_show_one(tmp_path):
    from collapse_nb.checks import LossSpikes
    [f] = LossSpikes()(_steps(tmp_path / "a", _noisy, n=300))
    assert f.code == "no_loss_spikes"
    [g] = LossSpikes()(_epochs(tmp_path / "b", [1.0 - i / 100 for i in range(50)]))
    assert g.code == "not_checked" and "once per epoch" in g.details["missing"]


def test_plateau_sentences_quote_logged_values_never_a_fitted_fall_over_100_percent(tmp_path):
    """A steep linear fall to near 0: the fitted trend over the window is more than 100% of its median."""
    import re
    [f] = LossPlateau()(_steps(tmp_path, lambda s: 10.0 - 0.199 * s if s < 50 else 0.05, n=50))
    assert f.code == "loss_decreasing"
    falls = [float(x) for x in re.findall(r"fell (?:only )?([\d.]+)%", f.summary)]
    assert falls and all(x <= 100 for x in falls)
    assert f"{f.details['window_first']:.3g}" in f.summary and f.details["window_min_where"] in f.summary


def test_one_component_diverging_while_the_total_does_not(tmp_path):
    """A detector's box term falls while its cls term climbs back: the sum hides it."""
    rows = [{"iteration": s * 20, "total_loss": 3.0 - s / 100 + 0.001 * s, "loss_box_reg": 2.0 - s / 100,
             "loss_cls": 0.05 if s < 20 else 0.05 + (s - 20) * 0.02} for s in range(60)]
    write_jsonl(tmp_path / "metrics.jsonl", rows)
    fs = LossDivergence()(load(tmp_path))
    codes = [f.code for f in fs]
    assert codes == ["loss_component_diverging", "loss_not_diverging"]
    assert fs[0].details["component"] == "loss_cls" and fs[0].details["factor"] > 3


def test_val_below_train_on_one_evaluation_does_not_pass(tmp_path):
    from collapse_nb.checks import ValBelowTrain
    [f] = ValBelowTrain()(_epochs(tmp_path, [0.5], [0.55]))
    assert f.code == "not_checked" and "1 evaluation" in f.details["missing"]


def test_a_component_judged_alone_does_not_claim_a_total(tmp_path):
    rows = [{"iteration": s * 10, **({"loss_cls": 0.5} if s % 2 else {"loss_box": 0.1 if s < 20 else 0.1 + s / 20})}
            for s in range(80)]
    write_jsonl(tmp_path / "metrics.jsonl", rows)
    fs = LossDivergence()(load(tmp_path))
    assert [f.code for f in fs] == ["loss_component_diverging"]
    assert "total did not diverge" not in fs[0].summary and "could not be judged" in fs[0].summary


def test_finite_losses_without_a_training_objective_say_so(tmp_path):
    write_jsonl(tmp_path / "log.jsonl", [{"step": s, "val/loss": 1.0 / (s + 1)} for s in range(5)])
    [f] = NonfiniteLoss()(load(tmp_path))
    assert (f.code, f.severity) == ("loss_finite", "ok")
    assert f.title == "The one logged loss series is finite (not a training objective)"
