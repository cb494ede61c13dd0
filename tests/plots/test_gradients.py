"""gradient_flow, gradient_heatmap, update_ratio_heatmap: bars and cells are the run's per-parameter values."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402

import collapse_nb  # noqa: E402
from collapse_nb import plots  # noqa: E402
from collapse_nb.plots import _data  # noqa: E402

from . import example_run, no_step_rows, restarted_run, source, write_jsonl  # noqa: E402

DEAD = {"attn.query_projection.weight", "attn.query_projection.bias", "attn.key_projection.weight",
        "attn.key_projection.bias"}


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def container(ax, label):
    found = [c for c in ax.containers if c.get_label() == label]
    assert found, [c.get_label() for c in ax.containers]
    return found[0]


def tick_labels(ax):
    return {t.get_text(): t for t in ax.get_yticklabels()}


# ---------------------------------------------------------------- gradient_flow

def test_gradient_flow_bars_are_the_per_parameter_means_and_maxima():
    run = example_run()
    ax = plots.gradient_flow(run)
    t = _data.grad_flow_table(_data.grads_over_time(run))
    live = t[~t["dead"]]
    mean = container(ax, "mean over logged steps")
    assert np.allclose([b.get_width() for b in mean], live["mean"])
    assert [b.get_y() + b.get_height() / 2 for b in mean] == list(live.index)   # one row per parameter, in order
    mx = container(ax, "max over logged steps")
    assert np.allclose([b.get_width() for b in mx], live["max"])
    assert ax.get_xscale() == "log"
    n = int(run.grads.groupby("param", observed=True).size().max())
    assert n == 60                                                      # the text log: one block per optimizer step
    assert run.meta["table_sources"]["grads"]["used"] == source(run, "training_diagnostic.log")
    assert ax.get_title(loc="left") == f"Gradient flow per parameter over {n} logged steps (training_diagnostic.log)"
    assert "gradient norm" in ax.get_xlabel() and ax.get_ylabel() == "parameter"


def test_gradient_flow_marks_dead_parameters():
    ax = plots.gradient_flow(example_run())
    dead = container(ax, "dead: grad = 0 at all 60 logged steps")
    assert len(dead) == 4
    assert all(to_hex(b.get_facecolor(), keep_alpha=False) == plots.DEAD_COLOR for b in dead)
    assert sum(t.get_text() == "dead (grad = 0)" for t in ax.texts) == 4
    labels = tick_labels(ax)
    assert set(labels) >= DEAD
    for name, text in labels.items():
        assert (to_hex(text.get_color()) == plots.DEAD_COLOR) == (name in DEAD)


def test_gradient_flow_at_the_last_step_of_the_example_counts_batches():
    run = example_run()
    ax = plots.gradient_flow(run, step="last")
    g = run.grads
    last = g[(g["epoch"] == g["epoch"].max())]
    last = last[last["batch"] == last["batch"].max()]                   # epoch 6, batch 28: counted batch 178
    at = (float(last["epoch"].iloc[0]) - 1) * 30 + float(last["batch"].iloc[0])
    assert at == 178
    live = last[last["grad_norm"] > 0]
    bars = container(ax, "gradient norm at batch 178")
    assert np.allclose([b.get_width() for b in bars], live["grad_norm"])
    assert len(container(ax, "grad = 0 at this step")) == len(last) - len(live) == 4
    assert ax.get_title(loc="left") == "Gradient flow per parameter at batch 178 (training_diagnostic.log)"
    with pytest.raises(ValueError, match=r"step=2 was not logged; logged batch \(counted, 30/epoch; no step "
                                         r"logged\) values run from 1 to 178 \(60 values\)"):
        plots.gradient_flow(run, step=2)


def test_gradient_flow_at_one_step(tmp_path):
    run = restarted_run(tmp_path)
    ax = plots.gradient_flow(run, step=10)
    bars = container(ax, "gradient norm at step 10")
    assert np.allclose([b.get_width() for b in bars], [0.5 + 10 / 100])     # layer.0.weight only
    dead = container(ax, "grad = 0 at this step")
    assert len(dead) == 2                                               # layer.1.weight and head.bias
    assert ax.get_title(loc="left") == "Gradient flow per parameter at step 10"
    ax = plots.gradient_flow(run, step="last")
    assert ax.get_title(loc="left") == "Gradient flow per parameter at step 60"
    with pytest.raises(ValueError, match=r"step=15 was not logged; logged step values run from 0 to 60"):
        plots.gradient_flow(run, step=15)


def test_gradient_flow_shortens_long_names(tmp_path):
    names = [f"model.backbone.encoder.layers.{i}.self_attention.query_projection.weight" for i in range(3)]
    rows = [{"step": s, **{f"grad_norm/{n}": 0.1 * (i + 1) for i, n in enumerate(names)}} for s in range(3)]
    ax = plots.gradient_flow(collapse_nb.load(write_jsonl(tmp_path / "g.jsonl", rows)))
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == plots.shorten_names(names)
    assert all(len(lab) <= 40 for lab in labels) and len(set(labels)) == 3


def test_gradient_flow_without_grads(tmp_path):
    run = collapse_nb.load(write_jsonl(tmp_path / "e.jsonl", no_step_rows()))
    with pytest.raises(plots.MissingDataError, match="gradient_flow needs per-parameter norms in run.grads"):
        plots.gradient_flow(run)


# ---------------------------------------------------------------- gradient_heatmap

def test_gradient_heatmap_is_parameters_by_steps_in_log10():
    run = example_run()
    ax = plots.gradient_heatmap(run)
    img = ax.images[0].get_array()
    assert img.shape == (12, 60)
    mat, cols = _data.grads_matrix(_data.grads_over_time(run), "grad_norm")
    g = run.grads                                                       # columns: the text log's counted batches
    assert list(cols["x"]) == sorted(set((g["epoch"].astype(float) - 1) * 30 + g["batch"].astype(float)))
    assert ax.get_xlabel() == "batch (counted, 30/epoch; no step logged) (one column per logged step)"
    arr = mat.to_numpy(float)
    live = arr > 0
    assert np.allclose(img.data[live], np.log10(arr[live]))
    assert img.mask[~live].all()                                       # zeros are not on the colour scale ...
    overlay = ax.images[1]                                              # ... but drawn over in the dead colour
    assert to_hex(overlay.get_cmap()(1.0)) == plots.DEAD_COLOR
    assert (~overlay.get_array().mask == (arr == 0)).all()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["gradient norm = 0 (dead)"]
    assert ax.images[0].colorbar.ax.get_ylabel() == "log10(gradient norm)"
    labels = tick_labels(ax)
    assert {n for n, t in labels.items() if to_hex(t.get_color()) == plots.DEAD_COLOR} == DEAD
    assert ax.get_title(loc="left") and ax.get_xlabel() and ax.get_ylabel() == "parameter"


def test_gradient_heatmap_other_values_and_restarts(tmp_path):
    run = restarted_run(tmp_path)
    ax = plots.gradient_heatmap(run, value="weight_norm")
    img = ax.images[0].get_array()
    assert img.shape == (3, 10)
    assert "not logged / undefined" in [t.get_text() for t in ax.get_legend().get_texts()]
    dashed = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
    assert [ln.get_xdata()[0] for ln in dashed] == [4.5]                # between the two segments
    assert [t.get_text() for t in ax.get_xticklabels()][:6] == ["0", "10", "20", "30", "40", "20"]
    with pytest.raises(ValueError, match="value must be one of 'grad_norm', 'weight_norm', 'update_norm', "
                                         "'update_ratio'; got 'norm'"):
        plots.gradient_heatmap(run, value="norm")


def test_gradient_heatmap_without_the_value(tmp_path):
    rows = [{"step": s, "grad_norm/a.weight": 1.0} for s in range(3)]
    run = collapse_nb.load(write_jsonl(tmp_path / "g.jsonl", rows))
    with pytest.raises(plots.MissingDataError, match="update_norm"):
        plots.gradient_heatmap(run, value="update_norm")


# ---------------------------------------------------------------- update_ratio_heatmap

def test_update_ratio_heatmap_on_the_example():
    run = example_run()
    ax = plots.update_ratio_heatmap(run)
    img = ax.images[0]
    assert img.get_array().shape == (12, 60)
    g = _data.grads_over_time(run)
    mat, _ = _data.grads_matrix(g, _data.update_ratios(g))
    arr = mat.to_numpy(float)
    ok = np.isfinite(arr) & (arr > 0)
    assert np.allclose(img.get_array().data[ok], np.log10(arr[ok]))
    assert img.norm.vcenter == pytest.approx(-3)
    label = img.colorbar.ax.get_ylabel()
    assert "log10(update / weight)" in label and "0.001" in label
    assert ax.get_title(loc="left") == "Update / weight norm ratio per parameter and step (training_diagnostic.log)"


def test_update_ratio_heatmap_marks_zero_updates_and_reference(tmp_path):
    run = restarted_run(tmp_path)
    ax = plots.update_ratio_heatmap(run, reference=1e-2)
    assert ax.images[0].norm.vcenter == pytest.approx(-2)
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "update = 0 (frozen)" in texts                               # head.bias at step 0
    arr = ax.images[0].get_array()
    assert arr.shape == (3, 10)
    row = list(_data.grads_matrix(_data.grads_over_time(run), "grad_norm")[0].index).index("layer.0.weight")
    assert np.allclose(arr[row, :5], np.log10(0.001)) and np.allclose(arr[row, 5:], np.log10(0.002))


def test_update_ratio_heatmap_errors(tmp_path):
    rows = [{"step": s, "grad_norm/a.weight": 1.0} for s in range(3)]
    run = collapse_nb.load(write_jsonl(tmp_path / "g.jsonl", rows))
    with pytest.raises(plots.MissingDataError, match="update_norm and weight_norm"):
        plots.update_ratio_heatmap(run)
    with pytest.raises(ValueError, match="reference must be a positive number"):
        plots.update_ratio_heatmap(example_run(), reference=0)
