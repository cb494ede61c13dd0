"""The run explorer and its run picker."""
from __future__ import annotations

import pytest

import collapse_nb as cnb
from collapse_nb.findings import by_severity
from collapse_nb.widgets import RunExplorer, RunPicker, explore, find_run_dirs

from ._runs import write_small_run


def test_find_run_dirs(tmp_path):
    write_small_run(tmp_path / "a")
    write_small_run(tmp_path / "group" / "b")
    (tmp_path / "empty").mkdir()
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "x.log").write_text("loss: 1\n")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.md").write_text("hi")
    assert find_run_dirs(tmp_path) == [tmp_path / "a", tmp_path / "group" / "b"]
    assert find_run_dirs(tmp_path, max_depth=1) == [tmp_path / "a"]
    assert find_run_dirs(tmp_path / "missing") == []


def test_picker_dropdown_sets_the_path_and_loads(tmp_path):
    write_small_run(tmp_path / "a")
    picker = RunPicker(root=tmp_path)
    assert [v for _, v in picker.chooser.options] == ["", str(tmp_path / "a")]
    loaded = []
    picker.on_load(loaded.append)
    picker.chooser.value = str(tmp_path / "a")
    assert picker.path.value == str(tmp_path / "a")
    picker.load_button.click()
    assert picker.run is not None and loaded == [picker.run]
    assert "loaded" in picker.status.value


def test_picker_reports_a_bad_path(tmp_path):
    picker = RunPicker(tmp_path / "no_such_run", root=tmp_path)
    assert picker.load() is None and picker.run is None
    assert "could not load" in picker.status.value and "no_such_run" in picker.status.value


def test_explore_a_path_builds_every_tab(small_run_dir):
    ex = explore(str(small_run_dir), root=small_run_dir.parent)
    assert isinstance(ex, RunExplorer)
    assert ex.tabs.titles == RunExplorer.TAB_TITLES
    assert len(ex.tabs.children) == 6
    assert "metrics.jsonl: jsonl" in ex.summary.value
    assert [f.code for f in ex.findings] == [f.code for f in cnb.diagnose(ex.run)]
    assert ex.panel.shown[0] == by_severity(cnb.diagnose(ex.run))[0].code and "variance_collapse" in ex.panel.shown
    assert ex.gradients.params and ex.thresholds.check == "variance_collapse"
    assert len(ex.curves_out.outputs) == 1 and len(ex.outputs_out.outputs) == 1


def test_curves_follow_axis_scale_and_epoch_range(small_run):
    ex = explore(small_run)
    loss_ax = ex.curves_figure.axes[0]
    assert loss_ax.get_xlabel() == "step"
    assert ex.epoch_range.value == (1, 4)
    ex.x_axis.value = "epoch"
    loss_ax = ex.curves_figure.axes[0]
    assert loss_ax.get_xlabel() == "epoch"
    ex.epoch_range.value = (2, 3)
    assert ex.curves_figure.axes[0].get_xlim() == (1.5, 3.5)
    ex.x_axis.value = "step"
    assert ex.curves_figure.axes[0].get_xlim() == (5.0, 15.0)   # end of epoch 1 .. end of epoch 3
    ex.logy.value = True
    assert ex.curves_figure.axes[0].get_yscale() == "log"


def test_loading_another_run_rebuilds_the_tabs(small_run, healthy_run_dir):
    ex = explore(small_run)
    ex.picker.path.value = str(healthy_run_dir)
    ex.picker.load_button.click()
    assert "variance_collapse" not in [f.code for f in ex.findings]
    assert "outputs_spread_ok" in ex.panel.shown
    assert str(healthy_run_dir) in ex.run.sources[0]


def test_explore_a_bad_path_raises_the_loader_error(tmp_path):
    with pytest.raises(cnb.CollapseNBError, match="nothing_here"):
        explore(tmp_path / "nothing_here")


def test_explore_a_list_of_files(small_run_dir):
    ex = explore([small_run_dir / "metrics.jsonl"])
    assert ex.picker.path.value == "" and len(ex.run.scalars) > 0


def test_explore_the_bundled_example(example_run):
    ex = explore(example_run)
    codes = [f.code for f in ex.findings]
    assert {"variance_collapse", "dead_parameters", "val_below_train"} <= set(codes)
    ex.gradients.layer_filter.value = "key_projection"
    assert all("key_projection" in p for p in ex.gradients.layer_select.options)
    assert ex.gradients.flow_table["dead"].all()


def _epoch_points(ax, phase="val"):
    """x of the per-epoch points of a phase's loss on the curves chart (the line with one point per epoch)."""
    lines = [ln for ln in ax.get_lines() if ln.get_label().startswith(f"{phase} loss")
             and ("per epoch" in ln.get_label() or "(" not in ln.get_label())]
    return [list(map(float, ln.get_xdata())) for ln in lines]


def test_x_axis_offers_only_axes_that_draw_something_different(example_run, small_run):
    ex = explore(example_run)
    assert [v for _, v in ex.x_axis.options] == ["step", "epoch"]
    assert "fractional epochs" in ex.x_axis.options[0][0]             # what "per step" means on this run
    ex.x_axis.value = "step"
    per_step = ex.curves_figure.axes[0]
    n_step = len(per_step.get_lines())
    ex.x_axis.value = "epoch"
    per_epoch = ex.curves_figure.axes[0]
    assert len(per_epoch.get_lines()) < n_step                        # the per-batch lines are gone
    assert per_epoch.get_xlabel() != per_step.get_xlabel()
    assert not ex.x_axis.disabled


def test_a_run_with_only_epoch_losses_offers_one_axis_and_says_why(tmp_path):
    (tmp_path / "m.csv").write_text("epoch,loss,val_loss\n1,1.0,1.1\n2,0.8,0.9\n3,0.7,0.85\n")
    ex = explore(cnb.load(tmp_path))
    assert [v for _, v in ex.x_axis.options] == ["epoch"] and ex.x_axis.disabled
    assert "not offered: per step: no loss was logged per step or batch" in ex.axis_note.value


def test_epoch_range_uses_the_timeline_placement_on_both_axes(example_run):
    """Epochs 2-4 on a fractional-epoch axis: epoch e spans [e, e + 1) and its values sit at e + 1
    (timeaxis.Timeline.epoch_end), on the per-step view and on the per-epoch view alike."""
    from collapse_nb import timeaxis

    tl = timeaxis.metric_timeline(example_run, "loss")
    assert tl.kind == "epoch"
    ends = [tl.epoch_end(0, e) for e in range(1, 7)]
    ex = explore(example_run)
    views = {}
    for axis in ("step", "epoch"):
        ex.x_axis.value = axis
        ex.epoch_range.value = (2, 4)
        ax = ex.curves_figure.axes[0]
        views[axis] = (ax.get_xlim(), _epoch_points(ax))
        assert "epochs 2&ndash;4 span x = 2 to 5" in ex.range_note.value
        ex.epoch_range.value = (1, 6)
    assert views["step"][0] == views["epoch"][0] == (2.0, 5.0)
    assert views["epoch"][1] == [ends]                               # the per-epoch view moved to the epoch ends
    assert ends in views["step"][1]                                   # where the per-step view has them
