"""Two runs side by side: loss curves, prediction spread (std ratio), gradient flow with dead parameters.

>>> cmp = compare("runs/before_fix", "runs/after_fix")     # doctest: +SKIP
>>> cmp.table                                              # the numbers compared  # doctest: +SKIP
>>> cmp.x_axis.value = "epoch"; cmp.share_y.value = True   # doctest: +SKIP

Every number in the table comes from the runs' tables (``run.epochs``) and checks
(``variance_collapse``, ``dead_parameters``); every chart is a library plot.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from .. import plots
from ..diagnose import diagnose
from ._common import as_run, draw, escape, require_ipywidgets, run_label, show

#: The rows of the comparison: (chart name, plot function)
CHARTS = (("loss", plots.loss_curves), ("outputs", plots.output_std), ("gradients", plots.gradient_flow))


def _last(epochs: pd.DataFrame, col: str) -> float:
    if col not in epochs.columns:
        return math.nan
    v = pd.to_numeric(epochs[col], errors="coerce").dropna()
    return float(v.iloc[-1]) if len(v) else math.nan


def compare_table(runs: list[Any], labels: list[str]) -> pd.DataFrame:
    """One column per run: last train / val loss (``run.epochs``), the last std ratio
    (``variance_collapse``'s ``ratio_last``), dead / all parameters (``dead_parameters``) and the
    most severe finding."""
    cols = {}
    for run, label in zip(runs, labels):
        all_found = diagnose(run)
        by: dict[str, Any] = {}
        for f in all_found:                        # most severe first: each check's first finding
            by.setdefault(f.check, f)
        vc, dp = by.get("variance_collapse"), by.get("dead_parameters")
        n_dead = dp.details.get("n_dead") if dp is not None else None
        n_all = dp.details.get("n_params") if dp is not None else None
        # diagnose orders problems by root cause; the most severe is the lowest severity rank (stable)
        top = min(all_found, key=lambda f: f.rank) if all_found else None
        cols[label] = {
            "last train loss": _last(run.epochs, "train_loss"),
            "last val loss": _last(run.epochs, "val_loss"),
            "pred/target std ratio (last)": vc.details.get("ratio_last", math.nan) if vc is not None else math.nan,
            "dead parameters": f"{n_dead} of {n_all}" if n_dead is not None else "not checked",
            "most severe finding": f"{top.severity}: {top.code}" if top is not None else "none",
        }
    return pd.DataFrame(cols)


class CompareExplorer:
    """Two runs in two columns. Controls: ``x_axis`` (Dropdown), ``logy`` (Checkbox), ``share_y``
    (Checkbox: the same y range in both columns). Read: ``runs``, ``labels``, ``table`` (DataFrame),
    ``figures`` (``(chart, 0 | 1)`` -> Figure), ``outputs`` (same keys -> Output widget)."""

    def __init__(self, run_a: Any, run_b: Any, labels: tuple[str, str] | None = None) -> None:
        w = require_ipywidgets()
        self.runs = [as_run(run_a), as_run(run_b)]
        if labels is None:
            labels = (run_label(self.runs[0], "run A"), run_label(self.runs[1], "run B"))
            if labels[0] == labels[1]:
                labels = (f"A: {labels[0]}", f"B: {labels[1]}")
        self.labels = list(labels)
        self.table = compare_table(self.runs, self.labels)
        self.x_axis = w.Dropdown(options=["auto", "step", "epoch"], value="auto", description="x axis")
        self.logy = w.Checkbox(value=True, description="log-scale loss", indent=False)
        self.share_y = w.Checkbox(value=True, description="same y range", indent=False)
        self.figures: dict[tuple[str, int], Any] = {}
        self.outputs = {(name, i): w.Output() for name, _ in CHARTS for i in (0, 1)}
        for c in (self.x_axis, self.logy):
            c.observe(lambda _c: self.redraw(("loss",)), names="value")
        self.share_y.observe(lambda _c: self.redraw(("loss", "outputs")), names="value")
        heads = [w.HTML(f"<h4 style='margin:4px 0'>{escape(lab)}</h4>") for lab in self.labels]
        grid = w.GridspecLayout(len(CHARTS) + 1, 2)
        for i in (0, 1):
            grid[0, i] = heads[i]
            for r, (name, _) in enumerate(CHARTS, start=1):
                grid[r, i] = self.outputs[(name, i)]
        self.table_html = w.HTML(self._table_html())
        self.widget = w.VBox([w.HBox([self.x_axis, self.logy, self.share_y]), self.table_html, grid])
        self.redraw()

    def _table_html(self) -> str:
        t = self.table.astype(object).map(lambda v: f"{v:.4g}" if isinstance(v, float) else v)
        return t.to_html(escape=True, border=0)

    def redraw(self, charts: tuple[str, ...] = ("loss", "outputs", "gradients")) -> None:
        """Draw ``charts`` of both runs with the current controls."""
        kwargs = {"loss": {"x": self.x_axis.value, "logy": self.logy.value}, "outputs": {}, "gradients": {}}
        for name, plot in CHARTS:
            if name not in charts:
                continue
            for i, run in enumerate(self.runs):
                self.figures[(name, i)] = draw(plot, run, figsize=(7, 3.8), **kwargs[name])
            if self.share_y.value and name != "gradients":
                _share_y([self.figures[(name, 0)], self.figures[(name, 1)]])
            for i in (0, 1):
                show(self.outputs[(name, i)], self.figures[(name, i)])

    def _ipython_display_(self) -> None:           # pragma: no cover - needs a front end
        from IPython.display import display

        display(self.widget)


def _share_y(figs: list[Any]) -> None:
    """Give the first axes of each figure the union of their y ranges (when both drew data)."""
    axes = [f.axes[0] for f in figs if f.axes and f.axes[0].has_data()]
    if len(axes) < 2 or any(a.get_yscale() != axes[0].get_yscale() for a in axes):
        return
    lims = np.array([a.get_ylim() for a in axes])
    for a in axes:
        a.set_ylim(lims[:, 0].min(), lims[:, 1].max())


def compare(run_a: Any, run_b: Any, labels: tuple[str, str] | None = None) -> CompareExplorer:
    """A :class:`CompareExplorer` of two runs (or paths); show ``.widget``."""
    return CompareExplorer(run_a, run_b, labels)
