"""Two runs side by side."""
from __future__ import annotations

import numpy as np
import pytest

import collapse_nb as cnb
from collapse_nb.widgets import CompareExplorer, compare


@pytest.fixture
def both(small_run_dir, healthy_run_dir):
    return compare(str(small_run_dir), str(healthy_run_dir))


def test_table_numbers_come_from_the_tables_and_checks(both, small_run_dir):
    assert isinstance(both, CompareExplorer)
    assert both.labels == ["small", "healthy"]
    t = both.table
    run = cnb.load(small_run_dir)
    assert t.loc["last train loss", "small"] == pytest.approx(run.epochs["train_loss"].iloc[-1])
    assert t.loc["last val loss", "small"] == pytest.approx(run.epochs["val_loss"].iloc[-1])
    vc = cnb.diagnose(run, checks=["variance_collapse"])[0]
    assert t.loc["pred/target std ratio (last)", "small"] == pytest.approx(vc.details["ratio_last"])
    assert t.loc["pred/target std ratio (last)", "healthy"] == pytest.approx(0.5)
    assert t.loc["dead parameters", "small"] == "2 of 6"
    assert t.loc["dead parameters", "healthy"] == "0 of 6"
    assert t.loc["most severe finding", "small"] == "critical: variance_collapse"
    assert "2 of 6" in both.table_html.value


def test_six_charts_two_columns(both):
    assert set(both.figures) == {(c, i) for c in ("loss", "outputs", "gradients") for i in (0, 1)}
    assert all(len(both.outputs[k].outputs) == 1 for k in both.figures)
    dead_labels = [t.get_text() for t in both.figures[("gradients", 0)].axes[0].get_yticklabels()
                   if t.get_color() != "black"]
    assert dead_labels == ["attn.key.weight", "attn.key.bias"]


def test_same_y_range_and_controls(both):
    a, b = both.figures[("loss", 0)].axes[0], both.figures[("loss", 1)].axes[0]
    assert np.allclose(a.get_ylim(), b.get_ylim())
    both.share_y.value = False
    both.logy.value = False
    assert both.figures[("loss", 0)].axes[0].get_yscale() == "linear"
    both.x_axis.value = "epoch"
    assert both.figures[("loss", 1)].axes[0].get_xlabel() == "epoch"


def test_same_folder_names_get_a_and_b(small_run):
    c = compare(small_run, small_run)
    assert c.labels == ["A: small", "B: small"]
