"""The gradient explorer: the layer filter narrows the options, the selection and the step drive the charts."""
from __future__ import annotations

import numpy as np

import collapse_nb as cnb
from collapse_nb import plots
from collapse_nb.widgets import GradientExplorer, gradient_explorer
from ._runs import PARAMS


def _bar_labels(fig):
    return [t.get_text() for t in fig.axes[0].get_yticklabels()]


def test_starts_with_every_parameter(small_run):
    ge = gradient_explorer(small_run)
    assert isinstance(ge, GradientExplorer)
    assert list(ge.layer_select.options) == PARAMS
    assert list(ge.layer_select.value) == PARAMS
    assert _bar_labels(ge.figures["flow"]) == PARAMS
    assert ge.figures["heatmap"].axes[0].images[0].get_array().shape == (len(PARAMS), 20)
    assert len(ge.flow_out.outputs) == 1 and "image/png" in ge.flow_out.outputs[0]["data"]


def test_regex_filter_narrows_options_and_charts(small_run):
    ge = gradient_explorer(small_run)
    ge.layer_filter.value = "attn|HEAD"                      # case-insensitive
    expected = ["attn.key.weight", "attn.key.bias", "head.weight", "head.bias"]
    assert list(ge.layer_select.options) == expected
    assert list(ge.layer_select.value) == expected
    assert _bar_labels(ge.figures["flow"]) == expected
    assert ge.figures["heatmap"].axes[0].images[0].get_array().shape[0] == 4
    assert list(ge.flow_table["param"]) == expected
    assert ge.flow_table.set_index("param")["dead"].to_dict() == {
        "attn.key.weight": True, "attn.key.bias": True, "head.weight": False, "head.bias": False}
    assert "2 of 4 parameter(s) have gradient exactly 0" in ge.message.value
    assert "<code>attn.key</code>: weight, bias" in ge.message.value
    ge.layer_filter.value = ""
    assert list(ge.layer_select.options) == PARAMS


def test_selection_drives_the_charts(small_run):
    ge = gradient_explorer(small_run)
    ge.layer_select.value = ("head.weight",)
    assert _bar_labels(ge.figures["flow"]) == ["head.weight"]
    assert list(ge.flow_table["param"]) == ["head.weight"]
    assert "none has a zero gradient" in ge.message.value


def test_flow_numbers_are_the_library_table(small_run):
    ge = gradient_explorer(small_run)
    ref = plots.grad_flow_table(plots.grads_over_time(small_run))
    assert np.allclose(ge.flow_table["mean"], ref["mean"])
    assert np.allclose(ge.flow_table["max"], ref["max"])


def test_step_slider_shows_one_step(small_run):
    ge = gradient_explorer(small_run)
    assert ge.steps == [float(s) for s in range(1, 21)]
    assert ge.flow_table["n_logged"].max() == 20
    ge.step_slider.value = 3.0
    assert ge.flow_table["n_logged"].max() == 1
    head = ge.flow_table.set_index("param").loc["head.weight", "mean"]
    assert np.isclose(head, 0.1 * 1.3)                       # the value logged at step 3
    assert "at step 3" in ge.figures["flow"].axes[0].get_title(loc="left")
    ge.step_slider.value = "all"
    assert ge.flow_table["n_logged"].max() == 20


def test_heatmap_value_switch(small_run):
    ge = gradient_explorer(small_run)
    before = ge.figures["heatmap"]
    ge.heatmap_value.value = "weight_norm"
    assert ge.figures["heatmap"] is not before
    arr = ge.figures["heatmap"].axes[0].images[0].get_array()
    assert np.allclose(arr.compressed(), 0.0)                # log10(1.0): every weight norm is 1
    assert ge.figures["flow"] is not None


def test_invalid_regex_keeps_options_and_says_why(small_run):
    ge = gradient_explorer(small_run)
    ge.layer_filter.value = "(("
    assert list(ge.layer_select.options) == PARAMS
    assert "invalid regex" in ge.message.value


def test_filter_matching_nothing_clears_charts(small_run):
    ge = gradient_explorer(small_run)
    ge.layer_filter.value = "no_such_layer"
    assert ge.layer_select.options == ()
    assert ge.figures == {} and ge.flow_out.outputs == ()
    assert "No parameter selected" in ge.message.value


def test_run_without_gradients(tmp_path):
    (tmp_path / "m.csv").write_text("epoch,loss,val_loss\n1,1.0,1.1\n2,0.8,0.9\n")
    ge = gradient_explorer(cnb.load(tmp_path))
    assert ge.params == [] and ge.steps == []
    assert "run.grads is empty" in ge.message.value
