"""loss_curves, lr_curve, val_train_ratio: the lines drawn are the run's table values."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402

import collapse_nb  # noqa: E402
from collapse_nb import plots  # noqa: E402
from collapse_nb.plots import _data  # noqa: E402
from collapse_nb import timeaxis  # noqa: E402

from . import (epoch_csv_run, example_run, no_step_rows, restarted_run, rows_of, source, text_log_run,  # noqa: E402
               write_jsonl)

AGREEING = "capture.jsonl, metrics.csv, training_diagnostic.log"      # the per-epoch losses of three files


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def lines(ax, label):
    found = [ln for ln in ax.get_lines() if ln.get_label() == label]
    assert found, f"no line labelled {label!r}; labels: {[ln.get_label() for ln in ax.get_lines()]}"
    return found


def hline_at(ax, y) -> bool:
    return any(np.allclose(ln.get_ydata(), [y, y]) for ln in ax.get_lines() if len(ln.get_ydata()) == 2)


def assert_labelled(ax):
    assert ax.get_title() or ax.get_title(loc="left")
    assert ax.get_xlabel() and ax.get_ylabel()


# ---------------------------------------------------------------- loss_curves

def test_loss_curves_of_a_text_log_shows_per_batch_and_per_epoch_train_loss():
    run = text_log_run()
    ax = plots.loss_curves(run)
    d = _data.metric_over_time(run, "loss")
    per_batch = d[(d["level"] == "step")]
    (ln,) = lines(ax, "train loss (per batch)")
    assert np.array_equal(ln.get_xdata(), per_batch["x"]) and np.allclose(ln.get_ydata(), per_batch["value"])
    (ln,) = lines(ax, "train loss (per epoch)")
    assert list(ln.get_xdata()) == [29, 59, 89, 119, 149, 179]
    assert np.allclose(ln.get_ydata(), run.epochs["train_loss"])
    (ln,) = lines(ax, "val loss")
    assert np.allclose(ln.get_ydata(), run.epochs["val_loss"])
    assert to_hex(ln.get_color()) == plots.PHASE_COLORS["val"]
    assert "batch" in ax.get_xlabel() and ax.get_ylabel() == "loss"
    assert_labelled(ax)
    assert ax.get_legend() is not None


def test_loss_curves_on_the_example_place_every_file_on_fractional_epochs():
    run = example_run()
    ax = plots.loss_curves(run)
    d = _data.metric_over_time(run, "loss")
    tl = timeaxis.metric_timeline(run, "loss")
    assert ax.get_xlabel() == tl.label and "epoch + batch/30: training_diagnostic.log" in ax.get_xlabel()
    assert ax.get_title() == "Loss over training (fractional epochs)"
    for label, name, n in (("train loss (per batch; training_diagnostic.log)", "training_diagnostic.log", 180),
                           ("train loss (per step; tb/events.out.tfevents…)", "tfevents", 60),
                           ("train loss (per step; capture.jsonl)", "capture.jsonl", 12)):
        rows = d[(d["source"] == source(run, name)) & (d["level"] == "step") & (d["phase"] == "train")]
        (ln,) = lines(ax, label)                                         # one line per file, named
        assert len(ln.get_xdata()) == len(rows) == n
        assert np.array_equal(ln.get_xdata(), rows["x"]) and np.allclose(ln.get_ydata(), rows["value"])
    text = rows_of(run, "training_diagnostic.log", "loss").dropna(subset=["batch"])
    (ln,) = lines(ax, "train loss (per batch; training_diagnostic.log)")
    assert np.allclose(ln.get_xdata(), np.sort(text["epoch"].astype(float) + text["batch"].astype(float) / 30))
    (ln,) = lines(ax, "train loss (per step; capture.jsonl)")
    assert ln.get_linestyle() == ":"                                      # the third file: dotted
    for phase in ("train", "val"):
        (ln,) = lines(ax, f"{phase} loss (per epoch; {AGREEING})")      # three files agree: one line
        assert list(ln.get_xdata()) == [2, 3, 4, 5, 6, 7]                 # at the end of epochs 1 to 6
        assert np.allclose(ln.get_ydata(), run.epochs[f"{phase}_loss"])
    (ln,) = lines(ax, "val loss (per step; tb/events.out.tfevents…)")   # TensorBoard's val loss at its steps
    assert np.allclose(ln.get_ydata(), run.epochs["val_loss"]) and np.allclose(ln.get_xdata(), [2, 3, 4, 5, 6, 7])
    drawn = sum(len(ln.get_xdata()) for ln in ax.get_lines())
    assert drawn == len(d) == 180 + 60 + 12 + 6 + 6 + 6                  # every placed row, none dropped
    assert not [t for t in ax.texts if t.get_text().startswith("not drawn")]
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert len(texts) == 6 and all("; " in t for t in texts)            # every entry names its file(s)


def test_loss_curves_per_epoch():
    run = example_run()
    ax = plots.loss_curves(run, x="epoch", logy=True)
    for phase in ("train", "val"):
        (ln,) = lines(ax, f"{phase} loss")
        assert np.array_equal(ln.get_xdata(), run.epochs["epoch"].astype(float))
        assert np.allclose(ln.get_ydata(), run.epochs[f"{phase}_loss"])
    assert ax.get_yscale() == "log" and ax.get_xlabel() == "epoch" and "log" in ax.get_ylabel()
    assert ax.get_title() == "Loss per epoch"


def test_loss_curves_mark_restarts_and_draw_each_segment(tmp_path):
    run = restarted_run(tmp_path)
    ax = plots.loss_curves(run, x="step")
    (restart,) = lines(ax, "restart (new segment)")
    assert list(restart.get_xdata()) == [20, 20]
    assert any("segment 1" in t.get_text() for t in ax.texts)
    first = lines(ax, "loss (no phase logged)")[0]
    grey = [ln for ln in ax.get_lines() if ln.get_color() == first.get_color()]
    assert [list(ln.get_xdata()) for ln in grey] == [[0, 10, 20, 30, 40], [20, 30, 40, 50, 60]]
    (val,) = lines(ax, "val loss")
    assert list(val.get_xdata()) == [0, 20, 40]
    assert ax.get_xlabel() == "step"


def test_loss_curves_per_epoch_with_restarts(tmp_path):
    ax = plots.loss_curves(restarted_run(tmp_path), x="epoch")
    (restart,) = lines(ax, "restart (new segment)")
    assert list(restart.get_xdata()) == [1, 1]                         # segment 1 starts in epoch 1


def test_loss_curves_mark_non_finite_losses(tmp_path):
    rows = [{"step": s, "loss": float("nan") if s == 2 else 1.0 / (s + 1)} for s in range(5)]
    run = collapse_nb.load(write_jsonl(tmp_path / "m.jsonl", rows))
    ax = plots.loss_curves(run)
    (bad,) = lines(ax, "NaN/inf loss")
    assert list(bad.get_xdata()) == [2]
    (ln,) = lines(ax, "loss (no phase logged)")
    assert list(ln.get_xdata()) == [0, 1, 3, 4]


def test_loss_curves_fall_back_to_epochs_when_nothing_was_logged_per_step(tmp_path):
    run = epoch_csv_run(tmp_path)
    ax = plots.loss_curves(run)
    assert ax.get_xlabel() == "epoch"
    (ln,) = lines(ax, "train loss")
    assert np.allclose(ln.get_ydata(), run.epochs["train_loss"])


def test_loss_curves_errors(tmp_path):
    with pytest.raises(ValueError, match="x must be one of 'auto', 'step', 'epoch'; got 'time'"):
        plots.loss_curves(example_run(), x="time")
    with pytest.raises(TypeError, match="needs a collapse_nb Run"):
        plots.loss_curves([1.0, 2.0])
    with pytest.raises(plots.MissingDataError, match="takes a Run, a long scalars table"):
        plots.loss_curves(example_run().epochs)            # a wide table: not one plots take
    only_epochs = collapse_nb.load(write_jsonl(tmp_path / "e.jsonl", no_step_rows()))
    with pytest.raises(plots.MissingDataError, match="Try x='epoch'"):
        plots.loss_curves(only_epochs, x="step")
    assert plots.loss_curves(only_epochs).get_xlabel() == "epoch"
    no_loss = collapse_nb.load(write_jsonl(tmp_path / "a.jsonl", [{"epoch": 1, "accuracy": 0.5}]))
    n = len(plt.get_fignums())
    with pytest.raises(plots.MissingDataError, match="run.epochs no train_loss/val_loss/test_loss/loss"):
        plots.loss_curves(no_loss)
    assert len(plt.get_fignums()) == n                                  # no figure left behind


def test_loss_curves_draw_into_a_given_axes():
    fig, axes = plt.subplots(1, 2)
    assert plots.loss_curves(example_run(), ax=axes[1]) is axes[1]
    assert not axes[0].get_lines() and axes[1].get_lines()


# ---------------------------------------------------------------- lr_curve

def test_lr_curve_one_line_per_param_group(tmp_path):
    run = restarted_run(tmp_path)
    ax = plots.lr_curve(run)
    pg0 = lines(ax, "lr (pg0)")[0]
    assert list(pg0.get_xdata()) == [0, 10, 20, 30, 40]
    assert list(pg0.get_ydata()) == [0.01, 0.01, 0.01, 0.005, 0.005]
    assert np.allclose(lines(ax, "lr (pg1)")[0].get_ydata(), 0.001)
    assert ax.get_title() == "Learning rate per param group" and ax.get_ylabel() == "learning rate"
    lines(ax, "restart (new segment)")


def test_lr_curve_on_the_example_shows_the_configured_rate():
    run = example_run()
    ax = plots.lr_curve(run)
    d = _data.metric_over_time(run, "lr")
    d = d[d["level"] == "step"]
    for name, short in (("training_diagnostic.log", "training_diagnostic.log"), ("capture.jsonl", "capture.jsonl"),
                        ("tfevents", "tb/events.out.tfevents…")):
        (ln,) = lines(ax, f"learning rate ({short})")
        rows = d[d["source"] == source(run, name)]
        assert len(rows) == len(rows_of(run, name, "lr").dropna(subset=["batch"] if name != "tfevents" else []))
        assert np.array_equal(ln.get_xdata(), rows["x"]) and np.allclose(ln.get_ydata(), rows["value"])
    (conf,) = lines(ax, "configured learning_rate = 0.001")
    assert list(conf.get_ydata()) == [0.001, 0.001]
    lines(ax, "per-epoch lr of metrics.csv: not drawn")                   # said, not dropped silently
    assert ax.get_xlabel() == timeaxis.metric_timeline(run, "lr").label
    assert ax.get_title() == "Learning rate"                              # one group per file, not per group
    assert_labelled(ax)


def test_lr_curve_of_a_text_log():
    run = text_log_run()
    ax = plots.lr_curve(run)
    (ln,) = lines(ax, "learning rate")
    raw = run.scalars[(run.scalars["name"] == "lr") & run.scalars["batch"].notna()]
    assert np.array_equal(ln.get_xdata(), (raw["epoch"].astype(float) - 1) * 30 + raw["batch"].astype(float))
    assert np.allclose(ln.get_ydata(), raw["value"])
    assert "counted" in ax.get_xlabel()


def test_lr_curve_per_epoch(tmp_path):
    run = epoch_csv_run(tmp_path, accumulation=2)
    ax = plots.lr_curve(run, x="epoch", logy=True, show_config=False)
    (ln,) = lines(ax, "learning rate")
    assert np.allclose(ln.get_ydata(), run.epochs["lr"])
    assert ax.get_xlabel() == "epoch" and ax.get_yscale() == "log"
    assert not [x for x in ax.get_lines() if x.get_label().startswith("configured")]


def test_lr_curve_without_lr(tmp_path):
    run = collapse_nb.load(write_jsonl(tmp_path / "e.jsonl", no_step_rows()))
    with pytest.raises(plots.MissingDataError, match="learning rate"):
        plots.lr_curve(run)


# ---------------------------------------------------------------- val_train_ratio

def test_val_train_ratio_on_the_example_sits_on_the_accumulation_line():
    run = example_run()
    ax = plots.val_train_ratio(run)
    (ln,) = lines(ax, "train loss / val loss")
    assert np.allclose(ln.get_ydata(), run.epochs["train_loss"] / run.epochs["val_loss"])
    assert np.array_equal(ln.get_xdata(), run.epochs["epoch"].astype(float))
    (acc,) = lines(ax, "gradient accumulation = 3 (config)")
    assert list(acc.get_ydata()) == [3, 3]
    assert hline_at(ax, 1.0)
    assert_labelled(ax)


def test_val_train_ratio_accumulation_given_or_absent(tmp_path):
    run = epoch_csv_run(tmp_path)
    ax = plots.val_train_ratio(run, accumulation=4)
    assert lines(ax, "gradient accumulation = 4 (given)")
    assert np.allclose(lines(ax, "train loss / val loss")[0].get_ydata(), 4.0)
    ax = plots.val_train_ratio(run)                                    # no config: only the line at 1
    assert hline_at(ax, 1.0) and not hline_at(ax, 4.0)


def test_val_train_ratio_uses_the_logged_accumulation_without_config():
    run = example_run()
    bare = collapse_nb.Run(run.scalars, {**run.meta, "config": {}})
    assert lines(plots.val_train_ratio(bare), "gradient accumulation = 3 (logged)")


def test_val_train_ratio_errors(tmp_path):
    run = epoch_csv_run(tmp_path, with_val=False)
    with pytest.raises(plots.MissingDataError, match="val_train_ratio needs run.epochs columns train_loss and "
                                                    "val_loss; missing val_loss"):
        plots.val_train_ratio(run)
    with pytest.raises(ValueError, match="accumulation must be a positive number; got 0"):
        plots.val_train_ratio(example_run(), accumulation=0)
    empty = collapse_nb.Run(pd.DataFrame(columns=example_run().scalars.columns).astype(example_run().scalars.dtypes))
    with pytest.raises(plots.MissingDataError):
        plots.val_train_ratio(empty)
