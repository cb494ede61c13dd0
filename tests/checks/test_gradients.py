"""vanishing_gradients, exploding_gradients, update_ratio, clipping_saturated (from JSON-lines metrics)."""
from __future__ import annotations

import math

import pytest

from collapse_nb.checks import ClippingSaturated, ExplodingGradients, UpdateRatio, VanishingGradients
from tests.checks import load, write_config, write_jsonl

LAYERS = ["embed.weight", "blocks.0.fc.weight", "blocks.1.fc.weight", "blocks.2.fc.weight", "head.weight"]


def _run(tmp_path, steps=20, total=None, grad=None, weight=None, update=None, config=None):
    """Per step: total ``grad_norm`` (``total(s)``) and per layer grad/weight/update norms (``f(layer, s)``)."""
    rows = []
    for s in range(steps):
        r = {"step": s, "train/loss": 1.0 / (s + 1)}
        if total is not None:
            r["grad_norm"] = total(s)
        for p in LAYERS if grad is not None else []:
            r[f"grad_norm/{p}"] = grad(p, s)
            r[f"weight_norm/{p}"] = weight(p, s) if weight else 3.0
            if update is not None:
                r[f"update_norm/{p}"] = update(p, s)
        rows.append(r)
    write_jsonl(tmp_path / "log.jsonl", rows)
    if config:
        write_config(tmp_path, **config)
    return load(tmp_path)


# ----------------------------------------------------------------------------- vanishing

def test_total_norm_below_sagemaker_threshold_is_critical(tmp_path):
    [f] = VanishingGradients()(_run(tmp_path, total=lambda s: 1e-9))
    assert (f.code, f.severity) == ("vanishing_gradients", "critical")
    assert f.details["total_below"] == 1.0 and f.details["total_from"] == "logged"
    assert "below 1e-07 at 100% of 20 logged steps" in f.summary


def test_one_layer_orders_of_magnitude_below_the_rest(tmp_path):
    run = _run(tmp_path, grad=lambda p, s: 1e-6 if p == "blocks.1.fc.weight" else 0.01)
    [f] = VanishingGradients()(run)
    assert f.severity == "warning"
    assert f.evidence["param"].tolist() == ["blocks.1.fc.weight"]
    assert f.evidence["rule"].tolist() == ["relative to other layers"]
    assert "3 orders of magnitude below the median layer" in f.summary


def test_autotrainer_first_last_rule(tmp_path):
    # first layer 5e-5 (< 1e-4) and 1/2000 of the last one's (< 1e-3); the middle layers are in between
    g = {"embed.weight": 5e-5, "blocks.0.fc.weight": 1e-3, "blocks.1.fc.weight": 3e-3, "blocks.2.fc.weight": 1e-2,
         "head.weight": 0.1}
    [f] = VanishingGradients(relative_orders=9)(_run(tmp_path, grad=lambda p, s: g[p]))
    assert f.details["first"] == "embed.weight" and f.details["last"] == "head.weight"
    assert f.details["first_last_median"] == pytest.approx(5e-4)
    assert "AUTOTRAINER" in f.summary and set(f.evidence["rule"]) == {"first/last layer"}


def test_healthy_gradients_ok(tmp_path):
    [v] = VanishingGradients()(_run(tmp_path, total=lambda s: 1.0, grad=lambda p, s: 0.05))
    [e] = ExplodingGradients()(_run(tmp_path, total=lambda s: 1.0, grad=lambda p, s: 0.05))
    assert (v.code, v.severity) == ("gradients_not_vanishing", "ok")
    assert (e.code, e.severity) == ("gradients_finite", "ok") and e.details["n"] == 20 + 20 * 5


def test_zero_gradients_are_left_to_dead_parameters(tmp_path):
    [f] = VanishingGradients()(_run(tmp_path, grad=lambda p, s: 0.0 if p == "blocks.1.fc.weight" else 0.05))
    assert f.severity == "ok"


# ----------------------------------------------------------------------------- exploding

def test_nonfinite_gradient_is_critical_with_first_step(tmp_path):
    run = _run(tmp_path, total=lambda s: math.inf if s >= 12 else 1.0,
               grad=lambda p, s: math.nan if (p == "head.weight" and s >= 12) else 0.05)
    [f] = ExplodingGradients()(run)
    assert (f.code, f.severity) == ("exploding_gradients", "critical")
    assert f.details["first_nonfinite"] == "step 12" and f.details["nonfinite"] == 8 + 8
    assert "head.weight" in f.summary


def test_huge_norm_and_spikes(tmp_path):
    run = _run(tmp_path, steps=40, total=lambda s: 5e8 if s == 30 else (300.0 if s in (20, 25) else 1.0))
    [f] = ExplodingGradients()(run)
    assert f.severity == "critical" and f.details["max"] == 5e8
    assert f.details["spikes"] == 3
    assert set(f.evidence["rule"]) == {"above threshold", "spike"}
    assert ExplodingGradients(threshold=1e9)(run)[0].severity == "warning"


def test_early_spike_is_not_counted(tmp_path):
    [f] = ExplodingGradients()(_run(tmp_path, steps=40, total=lambda s: 500.0 if s == 0 else 1.0))
    assert f.code == "gradients_finite"


def test_first_layer_exploding(tmp_path):
    [f] = ExplodingGradients()(_run(tmp_path, grad=lambda p, s: 100.0 if p == "embed.weight" else 0.5))
    assert f.severity == "warning" and f.details["first_last_median"] == pytest.approx(200.0)


def test_no_gradients_is_info(tmp_path):
    for check in (VanishingGradients(), ExplodingGradients(), UpdateRatio()):
        [f] = check(_run(tmp_path))
        assert f.code == "not_checked" and f.severity == "info"


# ----------------------------------------------------------------------------- update ratio

def test_update_ratio_out_of_band(tmp_path):
    upd = {"embed.weight": 3e-3, "blocks.0.fc.weight": 1e-8, "blocks.1.fc.weight": 3e-3, "blocks.2.fc.weight": 0.9,
           "head.weight": 3e-3}
    [f] = UpdateRatio()(_run(tmp_path, grad=lambda p, s: 0.05, update=lambda p, s: upd[p]))
    assert (f.code, f.severity) == ("update_ratio", "warning")
    assert f.details["too_small"] == ["blocks.0.fc.weight"] and f.details["too_big"] == ["blocks.2.fc.weight"]
    assert f.details["median_ratio"] == pytest.approx(1e-3)
    assert set(f.evidence["issue"]) == {"too small", "too big"}


def test_update_ratio_in_band_and_dead_left_out(tmp_path):
    run = _run(tmp_path, grad=lambda p, s: 0.0 if p == "embed.weight" else 0.05,
               update=lambda p, s: 1e-9 if p == "embed.weight" else 3e-3)
    [f] = UpdateRatio()(run)
    assert (f.code, f.severity) == ("updates_in_band", "ok") and f.details["layers"] == 4


# ----------------------------------------------------------------------------- clipping

def test_clipping_saturated(tmp_path):
    run = _run(tmp_path, total=lambda s: 4.0 + s % 3, config={"max_grad_norm": 1.0})
    [f] = ClippingSaturated()(run)
    assert (f.code, f.severity) == ("clipping_saturated", "warning")
    assert f.details["fraction_clipped"] == 1.0 and f.details["clip"] == 1.0
    assert f.details["median_scale"] == pytest.approx(0.2)
    assert "at 100% of 20 steps" in f.summary


def test_clipping_rare_is_ok(tmp_path):
    run = _run(tmp_path, total=lambda s: 5.0 if s == 3 else 0.5, config={"clip_grad_norm": 1.0})
    [f] = ClippingSaturated()(run)
    assert (f.code, f.severity) == ("clipping_ok", "ok") and f.details["fraction_clipped"] == pytest.approx(0.05)


def test_clipping_needs_a_configured_value(tmp_path):
    [f] = ClippingSaturated()(_run(tmp_path, total=lambda s: 4.0))
    assert f.code == "not_checked" and "clip" in f.summary


def test_clipping_from_per_parameter_norms(tmp_path):
    run = _run(tmp_path, grad=lambda p, s: 1.0, config={"gradient_clip_val": 1.0})   # total sqrt(5) = 2.24
    [f] = ClippingSaturated()(run)
    assert f.severity == "warning" and f.details["norm_from"] == "combined from the per-parameter norms"
    assert f.details["median_norm"] == pytest.approx(math.sqrt(5))


def test_an_isolated_nan_grad_norm_the_run_survived_is_a_warning(tmp_path):
    """HF Trainer logs "grad_norm": NaN for an overflow step it skipped; the loss goes on normally."""
    rows = [{"step": s, "loss": 2.0 - s / 1000, "grad_norm": math.nan if s == 400 else 0.8} for s in range(0, 1000, 5)]
    write_jsonl(tmp_path / "a" / "log.jsonl", rows)
    [f] = ExplodingGradients()(load(tmp_path / "a"))
    assert (f.severity, f.details["survived"]) == ("warning", True) and "survived" in f.title
    rows[-1]["grad_norm"] = math.nan              # NaN at the end: the run did not get past it
    rows[-1]["loss"] = math.nan
    write_jsonl(tmp_path / "b" / "log.jsonl", rows)
    [g] = ExplodingGradients()(load(tmp_path / "b"))
    assert (g.severity, g.details["survived"]) == ("critical", False)


def test_vanishing_title_is_a_whole_sentence(tmp_path):
    rows = [{"step": s, "loss": 1.0 / (s + 1), "grad_norm/a.weight": 1e-9, "weight_norm/a.weight": 1.0,
             "grad_norm/b.weight": 0.1, "weight_norm/b.weight": 1.0} for s in range(10)]
    write_jsonl(tmp_path / "log.jsonl", rows)
    [f] = VanishingGradients()(load(tmp_path))
    assert f.code == "vanishing_gradients"
    # the problem's sentence is cut at a parenthesis in the summary; the title is a whole sentence of its own
    assert f.title == "Vanishing gradients: 1 parameter(s) have a median gradient norm below 1e-07"
    assert f.title.count("(") == f.title.count(")")
