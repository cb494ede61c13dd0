"""loss_curves for runs without a 'loss' series: the objective the checks read, or each network's terms."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import collapse_nb  # noqa: E402
from collapse_nb import plots  # noqa: E402
from tests.test_series import _pix2pix, _ultralytics_csv  # noqa: E402


def _lines(ax):
    axes = [ax] + [a for a in ax.figure.axes if a is not ax]
    return {ln.get_label(): ln for a in axes for ln in a.get_lines() if not ln.get_label().startswith("_")}


def test_components_are_drawn_with_their_sum(tmp_path):
    run = collapse_nb.load(_ultralytics_csv(tmp_path / "results.csv"))
    ax = plots.loss_curves(run)
    lines = _lines(ax)
    total = lines["train: box_loss + cls_loss + dfl_loss"]
    assert np.allclose(total.get_ydata()[0], 1.5 + 0.5 + 2.0 + 0.3 + 1.2 + 0.8)
    assert {"val: box_loss + cls_loss + dfl_loss", "train: box_loss", "train: cls_loss"} <= set(lines)
    assert ax.get_xlabel() == "epoch"
    plt.close(ax.figure)


def test_a_gan_gets_one_axis_per_network(tmp_path):
    run = collapse_nb.load(_pix2pix(tmp_path / "loss_log.txt"))
    ax = plots.loss_curves(run)
    lines = _lines(ax)
    assert {"generator: g_gan", "generator: g_l1", "discriminator: d_fake", "discriminator: d_real"} == set(lines)
    assert len(ax.figure.axes) == 2 and "discriminator" in ax.figure.axes[1].get_ylabel()
    assert len(lines["generator: g_gan"].get_xdata()) == 40          # one point per epoch (iters restart)
    plt.close(ax.figure)
