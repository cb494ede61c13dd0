"""Teaching gradient flow: the networks really vanish, explode or flow, and the widget shows it."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

import collapse_nb as cnb  # noqa: E402
from collapse_nb import teaching  # noqa: E402
from collapse_nb.widgets import TeachingExplorer, plot_layer_grads, teaching_explorer  # noqa: E402
from collapse_nb.widgets._common import new_figure  # noqa: E402


@pytest.fixture(scope="module")
def demos():
    return teaching.train_many(steps=15)


def test_demo_verdicts(demos):
    assert {k: r.verdict for k, r in demos.items()} == {
        "deep sigmoid": "vanishing", "deep tanh, small init": "vanishing", "relu, large init": "exploding",
        "residual relu + layer norm": "healthy"}
    assert demos["deep sigmoid"].first_last_ratio < 1e-6


def test_library_checks_agree(demos):
    def codes(r):
        return {f.code for f in cnb.diagnose(r.to_run(), checks=["vanishing_gradients", "exploding_gradients"])}

    assert "vanishing_gradients" in codes(demos["deep sigmoid"])
    assert "exploding_gradients" in codes(demos["relu, large init"])
    assert codes(demos["residual relu + layer norm"]) == {"gradients_not_vanishing", "gradients_finite"}


def test_recording_is_a_tidy_run(demos):
    r = demos["deep sigmoid"]
    assert len(r.loss) == 15 and set(r.grads["layer"]) == set(range(-1, 12))
    run = r.to_run()
    assert len(run.grads) == len(r.grads)
    g = run.grads.assign(param=run.grads["param"].astype(str)).set_index(["step", "param"])["grad_norm"]
    ref = r.grads.set_index(["step", "param"])["grad_norm"]
    assert np.allclose(g.loc[ref.index], ref)


def test_same_seed_same_numbers():
    a, b = teaching.train(depth=3, steps=4), teaching.train(depth=3, steps=4)
    assert a.grads["grad_norm"].tolist() == b.grads["grad_norm"].tolist()


def test_bad_config():
    with pytest.raises(ValueError, match="activation must be one of"):
        teaching.NetConfig(activation="gelu")
    with pytest.raises(ValueError, match="depth must be an int >= 1"):
        teaching.train(depth=0)


def test_layer_chart(demos):
    fig = new_figure()
    ax = plot_layer_grads(demos, ax=fig.add_subplot())
    lines = [ln for ln in ax.get_lines() if not ln.get_label().startswith("NaN")]
    assert [ln.get_label().split(":")[0] for ln in lines] == list(demos)
    sigmoid = lines[0].get_ydata()
    assert sigmoid[0] < 1e-6 * sigmoid[-1]                      # falls towards the input layer
    with pytest.raises(ValueError, match="stat must be"):
        plot_layer_grads(demos, ax=ax, stat="mean")


def test_widget_trains_what_the_controls_say():
    te = teaching_explorer()
    assert isinstance(te, TeachingExplorer) and te.results == {}
    te.steps.value = 10
    te.train_button.click()
    assert list(te.results) == ["10 x sigmoid"]
    assert te.results["10 x sigmoid"].verdict == "vanishing"
    assert "vanishing" in te.verdict.value and "vanishing_gradients" in te.verdict.value
    te.activation.value, te.init.value, te.norm.value, te.residual.value = "relu", "kaiming", "layer", True
    te.train()
    assert len(te.results) == 2
    assert te.results["10 x relu (kaiming, layer norm, residual)"].verdict == "healthy"
    assert len(te.figure.axes[0].get_lines()) == 2 and len(te.out.outputs) == 1
    te.keep.value = False
    te.depth.value = 2
    te.train()
    assert list(te.results) == ["2 x relu (kaiming, layer norm, residual)"]
    te.clear_button.click()
    assert te.results == {} and te.out.outputs == ()
