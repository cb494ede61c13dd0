"""Plot functions take a DataFrame plus hue=/ax= as seaborn's do, besides a Run."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import collapse_nb  # noqa: E402
from collapse_nb import plots  # noqa: E402
from collapse_nb.plots import _data  # noqa: E402

from . import example_run, restarted_rows, write_jsonl  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def labelled(ax):
    return {ln.get_label(): ln for ln in ax.get_lines() if not ln.get_label().startswith(("_", "restart"))}


def two_runs(tmp_path):
    a = collapse_nb.load(write_jsonl(tmp_path / "a.jsonl", restarted_rows()))
    rows = [{"step": s, "loss": 2.0 / (s + 1), "pred_std": 0.5, "target_std": 1.0, "grad_norm/layer.0.weight": 0.2,
             "grad_norm/layer.1.weight": 0.3} for s in range(0, 30, 5)]
    b = collapse_nb.load(write_jsonl(tmp_path / "b.jsonl", rows))
    return a, b, pd.concat([a.scalars.assign(run="a"), b.scalars.assign(run="b")], ignore_index=True)


def test_loss_curves_of_concatenated_runs_by_run(tmp_path):
    a, b, df = two_runs(tmp_path)
    ax = plots.loss_curves(df)                            # several runs: hue="run" by default
    lines = labelled(ax)
    assert set(lines) == {"a (no phase)", "a (val)", "b (no phase)"}   # the runs by colour, phases by line style
    d_b, _ = _data.metric_points(b, "loss")
    assert np.allclose(lines["b (no phase)"].get_xdata(), d_b["x"]) and np.allclose(lines["b (no phase)"].get_ydata(),
                                                                               d_b["value"])
    assert lines["a (no phase)"].get_color() != lines["b (no phase)"].get_color()
    assert ax.get_xlabel() == "step" and ax.get_title() == "Loss over training by run"


def test_a_run_with_hue_and_a_placed_table(tmp_path):
    a, _, _ = two_runs(tmp_path)
    ax = plots.loss_curves(a, hue="phase")
    assert set(labelled(ax)) == {"no phase loss", "val loss"}          # the JSONL's loss has no phase
    train = [ln for ln in ax.get_lines() if ln.get_label() in ("no phase loss", "_nolegend_")
             and ln.get_color() == labelled(ax)["no phase loss"].get_color()]
    assert len(train) == 2                                # the restart breaks the line: one per segment
    d = _data.metric_over_time(a, "loss").assign(run="mine")
    d.attrs["xlabel"] = "step"
    fig, given = plt.subplots()
    ax = plots.loss_curves(d, ax=given, hue="run")        # a placed table drawn where it is, into a given axes
    assert ax is given and ax.get_xlabel() == "step"
    assert {"mine (no phase)", "mine (val)"} == set(labelled(ax))
    with pytest.raises(ValueError, match="hue='nope' is not a column"):
        plots.loss_curves(a, hue="nope")


def test_lr_curve_by_param_group(tmp_path):
    a, _, _ = two_runs(tmp_path)
    ax = plots.lr_curve(a.scalars)
    assert set(labelled(ax)) == {"pg0", "pg1"}
    assert np.allclose(sorted(set(labelled(ax)["pg1"].get_ydata())), [0.001])


def test_output_std_from_the_outputs_table_and_by_run(tmp_path):
    run = example_run()
    from_run = plots.output_std(run)
    o = run.outputs
    from_df = plots.output_std(o)                         # run.outputs: placed on its own rows' time axis
    a, b = labelled(from_run)["prediction std"], labelled(from_df)["prediction std"]
    assert np.allclose(a.get_ydata(), b.get_ydata())
    assert from_df.ratio_ax.get_xlabel() == "batch (counted, 30/epoch; no step logged)"
    two = pd.concat([o.assign(run="x"), o.assign(run="y")], ignore_index=True)
    ax = plots.output_std(two)
    assert {"x prediction std", "y prediction std", "x target std", "y target std"} <= set(labelled(ax))
    assert {"x std ratio", "y std ratio"} <= set(labelled(ax.ratio_ax))


def test_gradient_flow_from_grads_by_hue(tmp_path):
    a, b, _ = two_runs(tmp_path)
    g = pd.concat([a.grads.assign(run="a"), b.grads.assign(run="b")], ignore_index=True)
    ax = plots.gradient_flow(g)
    labels = [c.get_label() for c in ax.containers]
    assert "a: mean gradient norm" in labels and "b: mean gradient norm" in labels and "a: dead (grad = 0)" in labels
    bars = next(c for c in ax.containers if c.get_label() == "b: mean gradient norm")
    assert sorted(round(p.get_width(), 6) for p in bars) == [0.2, 0.3]
    flow = plots.gradient_flow(a.grads)                   # one run's table: as from the run
    assert [t.get_text() for t in flow.get_yticklabels()] == \
        [t.get_text() for t in plots.gradient_flow(a).get_yticklabels()]


def test_grad_norm_distribution_uses_seaborn_when_installed(monkeypatch):
    sns = pytest.importorskip("seaborn")
    calls = []
    real = sns.boxplot
    monkeypatch.setattr(sns, "boxplot", lambda **kw: calls.append(kw) or real(**kw))
    run = example_run()
    ax = plots.grad_norm_distribution(run, by="param")
    assert len(calls) == 1 and calls[0]["orient"] == "h" and calls[0]["log_scale"] is True
    g = run.grads
    live = g[g["grad_norm"] > 0]
    assert set(calls[0]["data"]["value"]) == set(live["grad_norm"].astype(float))
    dead = [t.get_text() for t in ax.get_yticklabels() if t.get_color() == plots.DEAD_COLOR]
    assert len(dead) == 4 and all(n.startswith("attn.") for n in dead)
    assert sum(t.get_text() == "dead (0 at every step)" for t in ax.texts) == 4
