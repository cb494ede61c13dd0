"""The threshold explorer re-runs one check with the slider's value; findings and chart follow."""
from __future__ import annotations

import numpy as np
import pytest

import collapse_nb as cnb
from collapse_nb.widgets import ThresholdExplorer, threshold_explorer
from collapse_nb.widgets.thresholds import make_slider, numeric_fields


def _threshold_line(fig):
    right = [a for a in fig.axes if a.get_ylabel().startswith("pred std / target std")][0]
    lines = [ln for ln in right.get_lines() if ln.get_label().startswith("collapse threshold")]
    return float(lines[0].get_ydata()[0])


def test_slider_reruns_the_check(small_run):
    te = threshold_explorer(small_run, "variance_collapse", "critical_ratio")
    assert isinstance(te, ThresholdExplorer)
    assert te.runs == 1 and te.slider.value == pytest.approx(0.1)
    ratio = te.findings[0].details["ratio_last"]
    assert 0.05 < ratio < 0.1
    assert [(f.code, f.severity) for f in te.findings] == [("variance_collapse", "critical")]
    te.slider.value = 0.05                                   # below the ratio: no longer critical
    assert te.runs == 2
    assert [(f.code, f.severity) for f in te.findings] == [("variance_collapse", "warning")]
    assert te.panel.shown == ["variance_collapse"]
    assert "WARNING" in te.panel.html.value and "CRITICAL" not in te.panel.html.value
    assert "variance_collapse__critical_ratio=0.05" in te.status.value


def test_findings_are_what_diagnose_returns(small_run):
    te = threshold_explorer(small_run, "variance_collapse", "warning_ratio", value=0.06)
    ref = cnb.diagnose(small_run, checks=["variance_collapse"], variance_collapse__warning_ratio=0.06)
    assert [(f.code, f.severity, f.title) for f in te.findings] == [(f.code, f.severity, f.title) for f in ref]
    assert te.findings[0].code == "outputs_spread_ok"


def test_chart_threshold_line_follows_the_slider(small_run):
    te = threshold_explorer(small_run, "variance_collapse", "critical_ratio")
    assert _threshold_line(te.figure) == pytest.approx(0.1)
    te.slider.value = 0.02
    assert _threshold_line(te.figure) == pytest.approx(0.02, rel=1e-3)


def test_chart_is_not_redrawn_when_its_arguments_do_not_change(small_run):
    te = threshold_explorer(small_run, "dead_parameters", "zero_grad")
    fig = te.figure
    te.slider.value = 1e-11
    assert te.runs == 2 and te.figure is fig


def test_dead_parameters_threshold(small_run):
    te = threshold_explorer(small_run, "dead_parameters", "critical_fraction")
    assert te.findings[0].severity == "warning"              # 2 of 6 dead, below 50%
    te.slider.value = 0.2                                    # 33% dead is now more than the fraction
    assert te.findings[0].severity == "critical"
    assert te.findings[0].details["n_dead"] == 2


def test_switching_field_and_check_replaces_the_slider(small_run):
    te = threshold_explorer(small_run, "variance_collapse", "critical_ratio")
    old = te.slider
    te.field_select.value = "min_rows"
    assert te.slider is not old and te.slider.description == "min_rows"
    assert te.slider.value == 3 and type(te.slider).__name__ == "IntSlider"
    assert te._slider_box.children == (te.slider,)
    runs = te.runs
    te.check_select.value = "dead_parameters"
    assert te.runs == runs + 1                               # one re-run, not two
    assert te.field == "zero_grad" and te.slider.description == "zero_grad"
    assert te.findings[0].check == "dead_parameters"
    assert te.figure.axes[0].get_title(loc="left").startswith("Gradient flow")


def test_bad_check_or_field():
    with pytest.raises(ValueError, match="unknown check 'nope'"):
        numeric_fields("nope")
    with pytest.raises(ValueError, match="has no numeric threshold 'phase'"):
        ThresholdExplorer(None, "variance_collapse", "phase")


def test_slider_kinds():
    import ipywidgets as w

    s = make_slider(w, "ratio", 0.1)
    assert type(s).__name__ == "FloatLogSlider" and s.min == -4 and s.max == 1
    s = make_slider(w, "ratio", 0.1, lo=1e-3, hi=1.0)
    assert np.isclose(s.min, -3) and np.isclose(s.max, 0)
    assert type(make_slider(w, "n", 5)).__name__ == "IntSlider"
    assert type(make_slider(w, "offset", 0.0)).__name__ == "FloatSlider"


def test_critical_ratio_cannot_pass_the_warning_ratio(small_run):
    te = threshold_explorer(small_run, "variance_collapse", "critical_ratio")
    assert te.partner_slider.description == "warning_ratio"
    assert te._slider_box.children == (te.slider, te.partner_slider)
    te.slider.value = 0.5                                     # above the warning ratio 0.3: it moves up too
    assert te.values == {"critical_ratio": 0.5, "warning_ratio": 0.5}
    ref = cnb.diagnose(small_run, checks=["variance_collapse"], variance_collapse__critical_ratio=0.5,
                       variance_collapse__warning_ratio=0.5)
    assert [(f.code, f.severity) for f in te.findings] == [(f.code, f.severity) for f in ref]
    assert "critical_ratio &le; warning_ratio" in te.status.value
    te.partner_slider.value = 0.02                            # the warning ratio below critical: critical follows
    assert te.slider.value == pytest.approx(0.02) and te.values["warning_ratio"] == pytest.approx(0.02)
    te.field_select.value = "warning_ratio"
    assert te.partner_slider.description == "critical_ratio"
    te.slider.value = 0.01
    assert te.partner_slider.value <= te.slider.value


def test_warning_rise_cannot_pass_the_critical_rise():
    te = ThresholdExplorer(None, "overfitting", "rise")
    assert te.partner_slider.description == "critical_rise"
    te.slider.value = 0.8
    assert te.values["critical_rise"] >= 0.8
