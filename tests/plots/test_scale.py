"""Scale: 3,000 parameters stay a bounded figure (worst modules first, the rest said); 575 restarts
keep every boundary but name only a few segments."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import collapse_nb  # noqa: E402
from collapse_nb import plots  # noqa: E402
from collapse_nb.plots import _data, gradients  # noqa: E402
from collapse_nb.plots._common import MAX_SEGMENT_LABELS, segments_to_label  # noqa: E402

from . import write_jsonl  # noqa: E402

DEAD_MODULE = "model.blocks.7.layer3"


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def big_run(tmp_path_factory):
    """3,000 parameters in 1,500 modules (weight and bias each), one module dead, one exploding."""
    rng = np.random.default_rng(0)
    params = [f"model.blocks.{b}.layer{i}.{t}" for b in range(30) for i in range(50) for t in ("weight", "bias")]
    rows = []
    for s in range(0, 50, 10):
        r = {"step": s, "loss": 1.0 / (s + 1)}
        for p in params:
            g = 0.0 if p.startswith(DEAD_MODULE + ".") else 1e3 if p.startswith("model.blocks.2.layer9.") else \
                10 ** (-3 + rng.random())
            r[f"grad_norm/{p}"] = g
        rows.append(r)
    path = tmp_path_factory.mktemp("big") / "big.jsonl"
    return collapse_nb.load(write_jsonl(path, rows), cache=False)


def test_gradient_flow_of_3000_parameters_is_bounded_and_worst_first(big_run):
    assert big_run.grads["param"].nunique() == 3000
    ax = plots.gradient_flow(big_run)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert len(labels) == gradients.MAX_ROWS
    assert labels[:2] == [f"{DEAD_MODULE}.weight", f"{DEAD_MODULE}.bias"]          # dead module first
    assert labels[2:4] == ["model.blocks.2.layer9.weight", "model.blocks.2.layer9.bias"]   # then the farthest
    assert ax.figure.get_size_inches()[1] * ax.figure.dpi < 2000                   # not a 3,500-pixel wall
    assert "and 2,960 more parameters in 1,480 modules, not shown" in ax.get_xlabel().replace("\n", " ")
    assert ax.get_title(loc="left").startswith("Gradient flow per parameter (40 of 3,000 parameters)")


def test_few_parameters_keep_the_model_order(tmp_path):
    rows = [{"step": s, "grad_norm/b.weight": 1.0, "grad_norm/a.weight": 0.0} for s in range(3)]
    ax = plots.gradient_flow(collapse_nb.load(write_jsonl(tmp_path / "g.jsonl", rows)))
    assert [t.get_text() for t in ax.get_yticklabels()] == ["b.weight", "a.weight"]
    assert "not shown" not in ax.get_xlabel()


def test_heatmaps_and_distributions_are_capped_too(big_run):
    ax = plots.gradient_heatmap(big_run)
    assert ax.images[0].get_array().shape[0] == gradients.MAX_HEATMAP_ROWS
    assert "more parameters in" in ax.get_xlabel()
    ax = plots.grad_norm_distribution(big_run)
    assert len(ax.get_yticklabels()) == gradients.MAX_GROUPS
    assert DEAD_MODULE in [t.get_text() for t in ax.get_yticklabels()]
    assert "30 of 1,500 modules shown" in ax.get_xlabel().replace("\n", " ")


def test_worst_modules_takes_whole_modules_in_order():
    params = ["a.x.w", "a.x.b", "a.y.w", "a.y.b", "a.z.w", "a.z.b"]
    keep, left = _data.worst_modules(
        np.array(params, dtype=object), np.array([0, 0, 0, 1, 0, 0], bool), np.array([0, 0, 0, 0, 5, 0.0]), 4)
    assert [params[i] for i in keep] == ["a.y.w", "a.y.b", "a.z.w", "a.z.b"]
    assert left == {"params": 2, "modules": 1}


def test_575_restarts_name_a_few_segments_and_draw_every_boundary(tmp_path):
    rows, step = [], 0
    for seg in range(576):
        n = 3 + (40 if seg in (100, 300) else 0)
        rows += [{"step": step + k, "loss": 1.0 + 0.01 * k} for k in range(n)]
        step += n - 2                                   # the step goes back: a restart
    run = collapse_nb.load(write_jsonl(tmp_path / "r.jsonl", rows), cache=False)
    assert int(run.scalars["segment"].max()) == 575
    ax = plots.loss_curves(run)
    named = [t.get_text() for t in ax.texts if t.get_text().startswith("segment ")]
    assert len(named) <= MAX_SEGMENT_LABELS
    assert {"segment 100", "segment 300", "segment 575"} <= set(named)   # the longest ones and the last
    boundaries = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--" and len(set(ln.get_xdata())) == 1]
    assert len(boundaries) == 575
    assert "575 restarts, " in " ".join(ax.get_legend_handles_labels()[1])


def test_segments_to_label_keeps_labels_apart():
    starts = np.arange(100.0)
    chosen = segments_to_label(starts, 100.0)
    assert len(chosen) <= MAX_SEGMENT_LABELS and chosen[-1] == 99
    assert np.min(np.diff(starts[chosen])) >= 100 / (MAX_SEGMENT_LABELS + 2)
    assert segments_to_label([1.0, 5.0], 9.0) == [0, 1]
