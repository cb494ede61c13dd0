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
    assert "invalid regex" in ge.filter_hint.value


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


def test_filter_narrows_as_you_type_and_says_how_many(small_run):
    ge = gradient_explorer(small_run)
    assert ge.layer_filter.continuous_update                  # no Enter needed
    assert "as you type" in ge.filter_hint.value
    assert ge.layer_filter.placeholder == "regex, e.g. encoder|key"          # from the run's own names
    ge.layer_filter.value = "^h"
    assert list(ge.layer_select.options) == ["head.weight", "head.bias"]
    assert "2 of 6 parameters match" in ge.filter_hint.value
    fig = ge.figures["flow"]
    ge.layer_filter.value = "^he"                             # the same matches: nothing redrawn
    assert ge.figures["flow"] is fig
    ge.layer_filter.value = "^hea("
    assert "invalid regex" in ge.filter_hint.value and list(ge.layer_select.options) == ["head.weight", "head.bias"]


def test_empty_selection_says_so_and_keeps_the_table_columns(small_run):
    ge = gradient_explorer(small_run)
    ge.layer_filter.value = "attention"                       # the names say attn
    assert ge.flow_table.empty and "n_logged" in ge.flow_table.columns
    assert "matches none of the 6 parameters" in ge.message.value and "encoder.weight" in ge.message.value
    ge.step_slider.value = ge.steps[-1]                       # used to raise KeyError: 'n_logged'
    assert ge.flow_table.empty and list(ge.flow_table.columns) == list(
        plots.grad_flow_table(plots.grads_over_time(small_run)).columns)


def _heatmap_look(fig):
    ax = fig.axes[0]
    im = ax.images[0]
    red = [t.get_text() for t in ax.get_yticklabels() if t.get_color() == plots.DEAD_COLOR]
    return im.get_cmap().name, tuple(round(v, 9) for v in im.get_clim()), red


def test_heatmap_keeps_its_colour_scale_and_dead_marking(example_run):
    ge = gradient_explorer(example_run)
    dead = {"attn.key_projection.weight", "attn.key_projection.bias"}
    assert dead <= ge.dead
    for value in ("grad_norm", "weight_norm", "update_norm", "update_ratio"):
        ge.heatmap_value.value = value
        cmap, clim, red = _heatmap_look(ge.figures["heatmap"])
        assert dead <= set(red), value                                 # dead names red whatever is shown
        assert cmap == ("PRGn" if value == "update_ratio" else "viridis")
        ge.layer_filter.value = "attn|projection"
        cmap2, clim2, red2 = _heatmap_look(ge.figures["heatmap"])
        assert (cmap2, clim2) == (cmap, clim), value                  # moving the filter keeps the scale
        assert dead <= set(red2)
        ge.layer_filter.value = ""
    cbar = ge.figures["heatmap"].axes[1]
    assert np.allclose(cbar.get_ylim(), ge.scale("update_ratio"))    # the colour bar shows that scale
    assert np.isclose(np.mean(ge.scale("update_ratio")), -3.0)       # centred on the 1e-3 reference


def test_only_the_visible_tab_is_rendered(small_run):
    ge = gradient_explorer(small_run)
    assert len(ge.flow_out.outputs) == 1 and ge.heatmap_out.outputs == ()
    ge.tab.selected_index = 1
    assert len(ge.heatmap_out.outputs) == 1
    ge.heatmap_value.value = "weight_norm"
    assert "image/png" in ge.heatmap_out.outputs[0]["data"]
