"""output_std: prediction vs target spread, the collapse ratio and its threshold."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import collapse_nb  # noqa: E402
from collapse_nb import plots  # noqa: E402
from collapse_nb.plots import _data  # noqa: E402

from . import example_run, restarted_run, write_jsonl  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def labelled(ax, label):
    found = [ln for ln in ax.get_lines() if ln.get_label() == label]
    assert found, [ln.get_label() for ln in ax.get_lines()]
    return found


def outputs_run(tmp_path, phase_key=""):
    rows = [{"step": s, f"{phase_key}pred_std": 0.5 / (s + 1), f"{phase_key}target_std": 1.0,
             f"{phase_key}pred_mean": 0.0, f"{phase_key}target_mean": 0.1} for s in range(0, 50, 10)]
    return collapse_nb.load(write_jsonl(tmp_path / "out.jsonl", rows))


def test_output_std_on_the_example():
    run = example_run()
    ax = plots.output_std(run)
    o, _ = _data.outputs_over_time(run)
    (pred,) = labelled(ax, "prediction std")
    (target,) = labelled(ax, "target std")
    assert np.array_equal(pred.get_xdata(), o["x"]) and np.allclose(pred.get_ydata(), o["pred_std"])
    assert np.allclose(target.get_ydata(), o["target_std"])
    low = ax.ratio_ax                                                   # the ratio: its own panel, below
    (ratio,) = labelled(low, "pred std / target std")
    assert np.allclose(ratio.get_ydata(), o["std_ratio"])
    assert low.get_position().y1 <= ax.get_position().y0 + 1e-9        # under the spreads ...
    assert low.get_shared_x_axes().joined(ax, low)                     # ... on the same x axis
    (thr,) = labelled(low, "collapse threshold 0.1")
    assert list(thr.get_ydata()) == [0.1, 0.1]
    assert ax.get_yscale() == "log" and low.get_yscale() == "log"
    assert ax.get_title() == "Prediction vs target spread (train; training_diagnostic.log)"   # the file used
    assert low.get_xlabel() == "batch (counted, 30/epoch; no step logged)" and ax.get_ylabel() and low.get_ylabel()
    raw = o.sort_values(["epoch", "batch"])                             # every logged batch of the text log
    assert len(pred.get_xdata()) == len(run.outputs[run.outputs["phase"] == "train"]) == 180
    assert np.array_equal(pred.get_xdata(), (raw["epoch"].astype(float) - 1) * 30 + raw["batch"].astype(float))
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["prediction std", "target std"]
    assert [t.get_text() for t in low.get_legend().get_texts()] == [
        "pred std / target std", "below 0.1: collapsed (critical)", "0.1 to 0.3: warning", "collapse threshold 0.1",
        "1: same spread as the targets"]


def bands(ax):
    """The (bottom, top) of each shaded band of the ratio panel, by label."""
    out = {}
    for p in ax.patches:
        ys = p.get_path().vertices[:, 1]
        y = p.get_transform().transform(np.c_[np.zeros_like(ys), ys])[:, 1]
        data = ax.transData.inverted().transform(np.c_[np.zeros_like(y), y])[:, 1]
        out[p.get_label()] = (float(data.min()), float(data.max()))
    return out


def test_the_ratio_bands_are_the_checks_thresholds(monkeypatch):
    from collapse_nb.checks.variance_collapse import VarianceCollapse
    run = example_run()
    low = plots.output_std(run).ratio_ax
    b = bands(low)
    lo = low.get_ylim()[0]
    assert b["below 0.1: collapsed (critical)"] == pytest.approx((lo, VarianceCollapse.critical_ratio))
    assert b["0.1 to 0.3: warning"] == pytest.approx((VarianceCollapse.critical_ratio, VarianceCollapse.warning_ratio))
    from dataclasses import dataclass
    from collapse_nb.checks import variance_collapse

    @dataclass
    class Stricter(VarianceCollapse):
        critical_ratio: float = 0.2
        warning_ratio: float = 0.5

    monkeypatch.setattr(variance_collapse, "VarianceCollapse", Stricter)   # read from the check, never hard-coded
    low2 = plots.output_std(run).ratio_ax
    assert bands(low2)["0.2 to 0.5: warning"] == pytest.approx((0.2, 0.5))
    (ratio,) = labelled(low2, "pred std / target std")
    assert np.allclose(ratio.get_ydata(), labelled(low, "pred std / target std")[0].get_ydata())


def test_moving_the_threshold_moves_only_its_band():
    run = example_run()
    a = plots.output_std(run, threshold=0.05)
    b = plots.output_std(run, threshold=0.02)
    assert a.ratio_ax.get_ylim() == b.ratio_ax.get_ylim()              # the data's range sets the axis
    assert bands(b.ratio_ax)["below 0.02: collapsed (critical)"][1] == pytest.approx(0.02)
    assert a.get_ylim() == b.get_ylim()
    r = a.ratio_ax.get_lines()[0].get_ydata()
    assert a.ratio_ax.get_ylim()[0] < r.min() and a.ratio_ax.get_ylim()[1] > 1.0


def test_the_ratio_panel_in_a_given_axes():
    fig, (top, bottom) = plt.subplots(2, 1)
    ax = plots.output_std(example_run(), ax=top, ratio_ax=bottom, warning=0.2)
    assert ax is top and ax.ratio_ax is bottom and len(fig.axes) == 2
    assert "0.1 to 0.2: warning" in [t.get_text() for t in bottom.get_legend().get_texts()]
    with pytest.raises(ValueError, match="warning must be a positive number"):
        plots.output_std(example_run(), warning=0)


def test_output_std_threshold_and_linear_scale(tmp_path):
    run = outputs_run(tmp_path)
    ax = plots.output_std(run, threshold=0.25, logy=False)
    (thr,) = labelled(ax.ratio_ax, "collapse threshold 0.25")
    assert list(thr.get_ydata()) == [0.25, 0.25]
    (pred,) = labelled(ax, "prediction std")
    assert list(pred.get_xdata()) == [0, 10, 20, 30, 40]
    assert ax.get_yscale() == "linear" and ax.ratio_ax.get_xlabel() == "step"


def test_output_std_without_ratio(tmp_path):
    ax = plots.output_std(outputs_run(tmp_path), ratio=False)
    assert not hasattr(ax, "ratio_ax") and ax.get_xlabel() == "step"
    assert len(ax.figure.axes) == 1


def test_output_std_other_phase(tmp_path):
    run = outputs_run(tmp_path, phase_key="val_")
    ax = plots.output_std(run)                                         # no train rows: all rows
    assert len(labelled(ax, "prediction std")[0].get_xdata()) == 5
    ax = plots.output_std(run, phase="val")
    assert ax.get_title() == "Prediction vs target spread (val)"
    with pytest.raises(plots.MissingDataError, match="for phase 'train'"):
        plots.output_std(run, phase="train")


def test_output_std_without_outputs(tmp_path):
    with pytest.raises(plots.MissingDataError, match="output_std needs pred_std and target_std in run.outputs"):
        plots.output_std(restarted_run(tmp_path))
    with pytest.raises(ValueError, match="threshold must be a positive number"):
        plots.output_std(example_run(), threshold=-1)
