"""Histograms over time (plots.histograms) on a run written with torch's SummaryWriter.add_histogram."""
from __future__ import annotations

import numpy as np
import pytest

import collapse_nb as cnb

torch = pytest.importorskip("torch")
pytest.importorskip("tensorboard")

from collapse_nb.plots import MissingDataError  # noqa: E402
from collapse_nb.plots.histograms import (MAX_RIDGES, histogram_grid, histogram_tags,  # noqa: E402
                                          plot_histograms)

STEPS = [10, 20, 30, 40, 50]


@pytest.fixture(scope="module")
def hist_run(tmp_path_factory):
    """Five steps: a gradient whose spread shrinks 1/step around 0, a dead gradient (all 0), a weight around 2."""
    from torch.utils.tensorboard import SummaryWriter

    d = tmp_path_factory.mktemp("tb_hist")
    rng = np.random.default_rng(0)
    w = SummaryWriter(str(d))
    for i, step in enumerate(STEPS, start=1):
        w.add_scalar("train/loss", 1.0 / i, step)
        w.add_histogram("gradients/fc.weight", torch.tensor(rng.normal(0.0, 1.0 / i, 2000)), step)
        w.add_histogram("gradients/dead.weight", torch.zeros(300), step)
        w.add_histogram("parameters/fc.weight", torch.tensor(rng.normal(2.0, 0.1, 500)), step)
    w.close()
    return cnb.load(d)


def _fig():
    from matplotlib.figure import Figure

    return Figure(figsize=(8, 5))


def test_grid_keeps_every_count_and_the_spread(hist_run):
    steps, edges, counts = histogram_grid(hist_run, "gradients/fc.weight", bins=50)
    assert list(steps) == STEPS and len(edges) == 51 and counts.shape == (5, 50)
    assert np.allclose(counts.sum(axis=1), 2000)                    # every value lands in some bin
    centres = (edges[:-1] + edges[1:]) / 2
    spread = [np.sqrt((row * centres ** 2).sum() / row.sum()) for row in counts]
    assert all(a > b for a, b in zip(spread, spread[1:]))           # the std shrinks step after step
    assert spread[0] == pytest.approx(1.0, rel=0.15) and spread[-1] == pytest.approx(0.2, rel=0.25)


def test_tags_gradients_first_and_parameter_names(hist_run):
    assert histogram_tags(hist_run) == ["gradients/fc.weight", "gradients/dead.weight", "parameters/fc.weight"]
    steps, _, _ = histogram_grid(hist_run, "dead.weight")           # a parameter name naming one tag
    assert list(steps) == STEPS
    with pytest.raises(ValueError, match="names several histograms"):
        histogram_grid(hist_run, "fc.weight")
    with pytest.raises(ValueError, match="no histogram tag 'nope'; the run has 3"):
        histogram_grid(hist_run, "nope")


def test_ridge_one_curve_per_step_latest_in_front(hist_run):
    ax = plot_histograms(hist_run, ax=_fig().add_subplot())        # default tag: the first gradient
    assert ax.get_title(loc="left").startswith("gradients/fc.weight: histogram per step (5 steps")
    fills = ax.collections
    assert len(fills) == 5
    bases = [float(np.min(f.get_paths()[0].vertices[:, 1])) for f in fills]
    assert bases == sorted(bases, reverse=True)                     # first step at the top (back)
    assert [f.get_zorder() for f in fills] == sorted(f.get_zorder() for f in fills)
    assert [t.get_text() for t in ax.get_yticklabels()][-1] == "50"
    _, _, counts = histogram_grid(hist_run, "gradients/fc.weight")
    tops = [line.get_ydata() - base for line, base in zip(ax.get_lines(), bases)]
    peak = counts.max()
    assert np.allclose(tops[-1], counts[-1] / peak)                 # heights: counts scaled by the peak


def test_heatmap_step_by_value(hist_run):
    fig = _fig()
    ax = plot_histograms(hist_run, "parameters/fc.weight", kind="heatmap", ax=fig.add_subplot())
    mesh = ax.collections[0]
    steps, edges, counts = histogram_grid(hist_run, "parameters/fc.weight")
    arr = mesh.get_array()
    assert arr.shape == (len(edges) - 1, len(steps))               # value bins x steps
    assert np.allclose(arr.filled(0), counts.T)
    assert (arr.mask == (counts.T <= 0)).all()
    assert ax.get_xlabel() == "step" and ax.get_ylabel() == "value"
    assert type(mesh.norm).__name__ == "LogNorm"
    assert 1.5 < edges[0] < 2.0 < edges[-1] < 2.5


def test_dead_gradient_says_so(hist_run):
    ax = plot_histograms(hist_run, "gradients/dead.weight", ax=_fig().add_subplot())
    assert "every value is 0 at every step" in [t.get_text() for t in ax.texts]
    ax = plot_histograms(hist_run, "gradients/fc.weight", ax=_fig().add_subplot())
    assert not ax.texts


def test_many_steps_are_thinned(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    w = SummaryWriter(str(tmp_path))
    for step in range(100):
        w.add_histogram("gradients/w", torch.randn(50), step)
    w.close()
    ax = plot_histograms(cnb.load(tmp_path), ax=_fig().add_subplot())
    assert len(ax.collections) == MAX_RIDGES
    assert f"{MAX_RIDGES} of 100 steps" in ax.get_title(loc="left")


def test_without_histograms_and_bad_arguments(tmp_path, hist_run):
    (tmp_path / "m.csv").write_text("epoch,loss\n1,1.0\n2,0.8\n")
    with pytest.raises(MissingDataError, match="run.histograms; this run has none"):
        plot_histograms(cnb.load(tmp_path))
    with pytest.raises(ValueError, match="kind must be one of 'ridge', 'heatmap'"):
        plot_histograms(hist_run, kind="violin")


def test_a_dead_gradient_is_one_spike_on_the_example():
    import collapse_nb as cnb
    from collapse_nb.example import default_example_dir
    from collapse_nb.plots.histograms import constant_value, histogram_grid
    run = cnb.load(default_example_dir())
    tag = "gradients/attn.query_projection.weight"                   # a dead parameter of the example
    assert constant_value(run, tag) == 0.0                            # from the histograms' own min and max
    steps, edges, counts = histogram_grid(run, tag)
    assert edges[0] == -0.5 and edges[-1] == 0.5
    assert ((counts > 0).sum(axis=1) == 1).all()                      # every step: all of it in one bin
