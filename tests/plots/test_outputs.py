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
    right = ax.right_ax
    (ratio,) = labelled(right, "pred std / target std (right)")
    assert np.allclose(ratio.get_ydata(), o["std_ratio"])
    (thr,) = labelled(right, "collapse threshold 0.1 (right)")
    assert list(thr.get_ydata()) == [0.1, 0.1]
    assert right.get_ylim()[1] >= 0.3                                  # the threshold is never on the edge
    assert ax.get_yscale() == "log" and right.get_yscale() == "log"
    assert ax.get_title() == "Prediction vs target spread (train; training_diagnostic.log)"   # the file used
    assert ax.get_xlabel() == "batch (counted, 30/epoch; no step logged)" and ax.get_ylabel() and right.get_ylabel()
    raw = o.sort_values(["epoch", "batch"])                             # every logged batch of the text log
    assert len(pred.get_xdata()) == len(run.outputs[run.outputs["phase"] == "train"]) == 180
    assert np.array_equal(pred.get_xdata(), (raw["epoch"].astype(float) - 1) * 30 + raw["batch"].astype(float))
    legend = right.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["prediction std", "target std",
                                                          "pred std / target std (right)",
                                                          "collapse threshold 0.1 (right)"]


def test_output_std_threshold_and_linear_scale(tmp_path):
    run = outputs_run(tmp_path)
    ax = plots.output_std(run, threshold=0.25, logy=False)
    (thr,) = labelled(ax.right_ax, "collapse threshold 0.25 (right)")
    assert list(thr.get_ydata()) == [0.25, 0.25]
    (pred,) = labelled(ax, "prediction std")
    assert list(pred.get_xdata()) == [0, 10, 20, 30, 40]
    assert ax.get_yscale() == "linear" and ax.get_xlabel() == "step"


def test_output_std_without_ratio(tmp_path):
    ax = plots.output_std(outputs_run(tmp_path), ratio=False)
    assert not hasattr(ax, "right_ax")
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
