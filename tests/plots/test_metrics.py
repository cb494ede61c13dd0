"""plot_all_metrics: every logged scalar has a panel (or a value), grouped by name prefix, on its time axis."""
from __future__ import annotations

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import collapse_nb  # noqa: E402
from collapse_nb import plots  # noqa: E402
from collapse_nb.plots import _data, metrics  # noqa: E402

from . import text_log_run, write_jsonl  # noqa: E402

YOLO_COLS = ["epoch", "train/box_loss", "train/cls_loss", "metrics/precision(B)", "metrics/mAP50(B)",
             "val/box_loss", "val/cls_loss", "lr/pg0", "lr/pg1"]


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def yolo_run(tmp_path, epochs=6):
    """An Ultralytics results.csv (space-padded): loss components per phase, metrics/..., lr per param group."""
    rows = [",".join(f"{c:>22}" for c in YOLO_COLS)]
    for e in range(epochs):
        vals = [e, 1.5 - 0.1 * e, 3.0 - 0.2 * e, 0.1 + 0.05 * e, 0.2 + 0.04 * e, 2.0 - 0.05 * e, 2.5 - 0.1 * e,
                0.07 - 0.01 * e, 0.003 + 0.001 * e]
        rows.append(",".join(f"{v:>22}" for v in vals))
    p = tmp_path / "results.csv"
    p.write_text("\n".join(rows) + "\n")
    return collapse_nb.load(p)


def panel(axes, title_start):
    found = [a for a in axes if a.get_title(loc="left").startswith(title_start)]
    assert len(found) == 1, [a.get_title(loc="left") for a in axes]
    return found[0]


def lines(ax):
    return {ln.get_label(): ln for ln in ax.get_lines() if not ln.get_label().startswith("_")}


def test_yolo_names_are_grouped_by_prefix(tmp_path):
    run = yolo_run(tmp_path)
    p = _data.metric_panels(run)
    assert _data.metric_groups(run) == ["metrics/", "train/", ""]
    assert list(p.loc[p["group"] == "metrics/", "title"]) == ["metrics/mAP50(B)", "metrics/precision(B)"]
    box = p[p["name"] == "box_loss"].iloc[0]
    assert box["group"] == "train/" and box["phases"] == ("train", "val") and box["title"] == \
        "train/box_loss, val/box_loss"
    lr = p[p["name"] == "lr"].iloc[0]                   # a prefix only one panel has: the "other names" figure
    assert lr["prefix"] == "lr/" and lr["group"] == "" and lr["params"] == ("pg0", "pg1")
    assert set(p["kind"]) == {"curve"}


def test_train_and_val_of_one_name_share_a_panel_on_the_epoch_axis(tmp_path):
    run = yolo_run(tmp_path)
    axes = plots.plot_all_metrics(run, prefix="train/")
    assert len(axes) == 2                               # box_loss, cls_loss; nothing else
    ax = panel(axes, "train/box_loss, val/box_loss")
    ls = lines(ax)
    assert set(ls) == {"train", "val"}
    assert list(ls["train"].get_xdata()) == [0, 1, 2, 3, 4, 5]          # the epoch, as the per-epoch plots place it
    assert np.allclose(ls["train"].get_ydata(), [1.5 - 0.1 * e for e in range(6)])
    assert np.allclose(ls["val"].get_ydata(), [2.0 - 0.05 * e for e in range(6)])
    assert ax.get_xlabel() == "epoch"
    mets = plots.plot_all_metrics(run, prefix="metrics")                 # with or without the slash
    assert [a.get_title(loc="left") for a in mets] == ["metrics/mAP50(B) (val)", "metrics/precision(B) (val)"]
    lr = plots.plot_all_metrics(run, prefix="")[0]
    assert set(lines(lr)) == {"no phase (pg0)", "no phase (pg1)"}       # each param group a line


def test_panels_use_the_time_axis_of_the_files_logging_them():
    run = text_log_run()                                 # epochs and batches, no step: counted batches
    axes = plots.plot_all_metrics(run, names=["loss"])
    ax = axes[0]
    d, label = _data.metric_points(run, "loss")
    assert label == "batch (counted, 30/epoch; no step logged)" == ax.get_xlabel()
    train = d[d["phase"] == "train"].sort_values("x")
    assert np.allclose(lines(ax)["train"].get_xdata(), train["x"])
    assert np.allclose(lines(ax)["train"].get_ydata(), train["value"])


def test_a_series_logged_once_is_a_value_not_a_plot(tmp_path):
    rows = [{"step": s, "loss": 1.0 / (s + 1), "train/acc": s / 10} for s in range(0, 50, 10)]
    rows.append({"step": 50, "final/score": 0.75})
    run = collapse_nb.load(write_jsonl(tmp_path / "m.jsonl", rows))
    p = _data.metric_panels(run)
    assert p.loc[p["name"] == "final_score", "kind"].item() == "value"
    axes = plots.plot_all_metrics(run)
    titles = [a.get_title(loc="left") for a in axes]
    assert not any("score" in t for t in titles)         # no panel with a -0.04..0.04 axis around one point
    text = "\n".join(t.get_text() for a in axes for t in a.texts)
    assert "final/score = 0.75 at step 50" in text
    assert not axes[-1].axison                           # the values are text, not an axes


def test_thousands_of_series_are_capped_and_said(tmp_path):
    rows = [{"step": s, **{f"g{i % 3}/m{i}": float(i + s) for i in range(3000)}} for s in range(3)]
    run = collapse_nb.load(write_jsonl(tmp_path / "many.jsonl", rows), cache=False)
    assert set(_data.metric_groups(run)) == {"g0/", "g1/", "g2/"}
    lay = metrics.metric_layout(run, "g0/")
    assert len(lay["panels"]) == metrics.MAX_PANELS and len(lay["left_out"]) == 1000 - metrics.MAX_PANELS
    assert lay["size"][1] < 20                           # bounded, whatever the number of series
    axes = plots.plot_all_metrics(run, "g0/")
    assert len([a for a in axes if a.axison]) == metrics.MAX_PANELS
    note = "\n".join(t.get_text() for a in axes for t in a.texts)
    assert f"{1000 - metrics.MAX_PANELS:,} more series not drawn (at most {metrics.MAX_PANELS} panels a figure)" in note


def test_several_runs_from_one_dataframe_by_hue(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = yolo_run(tmp_path / "a"), yolo_run(tmp_path / "b", epochs=4)
    df = pd.concat([a.scalars.assign(run="long"), b.scalars.assign(run="short")], ignore_index=True)
    axes = plots.plot_all_metrics(df, prefix="train/")
    ls = lines(panel(axes, "train/box_loss"))
    assert set(ls) == {"long (train)", "long (val)", "short (train)", "short (val)"}
    assert list(ls["short (train)"].get_xdata()) == [0, 1, 2, 3]
    assert ls["long (train)"].get_color() != ls["short (train)"].get_color()
    axes = plots.plot_all_metrics(a, prefix="train/", hue="phase")          # a Run with an explicit hue
    assert set(lines(axes[0])) == {"train", "val"}


def test_into_a_given_axes_and_errors(tmp_path):
    run = yolo_run(tmp_path)
    fig = plt.figure(figsize=(10, 4), layout="constrained")
    ax = fig.add_subplot()
    axes = plots.plot_all_metrics(run, prefix="metrics/", ax=ax)
    assert axes[0] is ax and set(fig.axes) == set(axes)
    with pytest.raises(plots.MissingDataError, match="with the prefix 'nope/'"):
        plots.plot_all_metrics(run, prefix="nope/")
    with pytest.raises(TypeError, match="needs a collapse_nb Run"):
        plots.plot_all_metrics([1, 2])


def test_seaborn_is_optional(tmp_path, monkeypatch):
    run = yolo_run(tmp_path)
    monkeypatch.setitem(sys.modules, "seaborn", None)    # `import seaborn` now raises ImportError
    assert plots._common.seaborn() is None
    axes = plots.plot_all_metrics(run, prefix="train/")
    assert set(lines(axes[0])) == {"train", "val"}
    ax = plots.grad_norm_distribution(collapse_nb.load(write_jsonl(tmp_path / "g.jsonl", [
        {"step": s, "grad_norm/a.weight": 0.1 * (s + 1), "grad_norm/b.weight": 0.0} for s in range(5)])))
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b"]
