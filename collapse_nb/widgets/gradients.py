"""The gradient explorer: gradient flow and a parameter x step heatmap, for the layers you pick.

>>> ge = gradient_explorer(run)                  # doctest: +SKIP
>>> ge.layer_filter.value = "attn"               # only parameters matching the regex  # doctest: +SKIP
>>> ge.step_slider.value = ge.steps[-1]          # gradient flow at the last logged step  # doctest: +SKIP
>>> ge.flow_table[ge.flow_table["dead"]]         # what the bars show: plots.grad_flow_table  # doctest: +SKIP

The charts are :func:`collapse_nb.plots.gradient_flow` and :func:`~collapse_nb.plots.gradient_heatmap`
drawn on the run restricted to the selected parameters; the dead-parameter list is the
``dead`` column of :func:`collapse_nb.plots.grad_flow_table`, grouped by module.
"""
from __future__ import annotations

import re
from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np
import pandas as pd

from .. import plots
from ..plots._common import fmt_num, tall
from ._common import as_run, draw, escape, grad_params, require_ipywidgets, show, with_params

ALL_STEPS = "all"
HEATMAP_VALUES = ("grad_norm", "weight_norm", "update_norm", "update_ratio")


class GradientExplorer:
    """Layer filter (regex) and multi-select, a step slider and the gradient charts of the selection.

    Attributes tests and notebooks drive: ``layer_filter`` (Text), ``layer_select`` (SelectMultiple),
    ``step_slider`` (SelectionSlider: ``"all"`` or a logged position), ``heatmap_value`` (Dropdown);
    and read: ``params`` (all parameters), ``steps`` (logged positions), ``flow_table`` (the
    numbers the bars show), ``figures`` (``"flow"``, ``"heatmap"``), ``message`` (HTML: dead
    parameters by module, or why nothing is drawn).
    """

    def __init__(self, run_or_path: Any = None) -> None:
        w = require_ipywidgets()
        self.run = as_run(run_or_path)
        self.params = grad_params(self.run)
        g = plots.grads_over_time(self.run)
        self.steps = [float(x) for x in np.unique(g["x"].to_numpy(float))] if len(g) else []
        unit = plots.table_timeline(self.run, self.run.grads).unit
        self.layer_filter = w.Text(description="filter", placeholder="regex, e.g. attn|head",
                                   continuous_update=False, layout=w.Layout(width="320px"))
        self.layer_select = w.SelectMultiple(options=self.params, value=tuple(self.params),
                                             rows=min(12, max(3, len(self.params))), description="layers",
                                             layout=w.Layout(width="420px"))
        self.step_slider = w.SelectionSlider(
            options=[("all steps", ALL_STEPS)] + [(f"{unit} {fmt_num(x)}", x) for x in self.steps],
            value=ALL_STEPS, description=unit, continuous_update=False, layout=w.Layout(width="520px"))
        self.heatmap_value = w.Dropdown(options=HEATMAP_VALUES, value="grad_norm", description="heatmap")
        self.message = w.HTML()
        self.flow_out, self.heatmap_out = w.Output(), w.Output()
        self.figures: dict[str, Any] = {}
        self.flow_table = pd.DataFrame()
        self._holding = False
        self.layer_filter.observe(lambda c: self._filter(c["new"]), names="value")
        self.layer_select.observe(lambda c: self._changed("all"), names="value")
        self.step_slider.observe(lambda c: self._changed("flow"), names="value")
        self.heatmap_value.observe(lambda c: self._changed("heatmap"), names="value")
        controls = w.VBox([w.HBox([self.layer_filter, self.heatmap_value]), self.layer_select, self.step_slider])
        self.widget = w.VBox([controls, self.message, w.Tab(children=[self.flow_out, self.heatmap_out],
                                                             titles=("gradient flow", "heatmap"))])
        self.redraw()

    # ------------------------------------------------------------------ state
    @property
    def selected(self) -> list[str]:
        return list(self.layer_select.value)

    @contextmanager
    def _hold(self) -> Iterator[None]:
        self._holding = True
        try:
            yield
        finally:
            self._holding = False

    def _filter(self, pattern: str) -> None:
        """Options = parameters matching ``pattern`` (case-insensitive regex); all of them selected."""
        try:
            rx = re.compile(pattern or "", re.IGNORECASE)
        except re.error as exc:
            self.message.value = f"<span style='color:#b71c1c'>invalid regex {escape(pattern)}: {escape(exc)}</span>"
            return
        options = [p for p in self.params if rx.search(p)]
        with self._hold():
            self.layer_select.options = options
            self.layer_select.value = tuple(options)
        self.redraw()

    def _changed(self, which: str) -> None:
        if not self._holding:
            self.redraw(which)

    # ------------------------------------------------------------------ drawing
    def redraw(self, which: str = "all") -> None:
        """Draw the charts of the current selection (``which``: ``"all"``, ``"flow"`` or ``"heatmap"``)."""
        if not self.params:
            self.message.value = ("<i>No per-parameter gradient norms in this run (run.grads is empty): nothing to "
                                  "explore.</i>")
            return
        if not self.selected:
            self.message.value = "<i>No parameter selected (the filter matches none).</i>"
            self.figures.clear()
            self.flow_table = pd.DataFrame()
            show(self.flow_out)
            show(self.heatmap_out)
            return
        view = with_params(self.run, self.selected)
        at = self.step_slider.value
        if which in ("all", "flow"):
            g = plots.grads_over_time(view)
            self.flow_table = plots.grad_flow_table(g, at=None if at == ALL_STEPS else at)
            self.figures["flow"] = draw(plots.gradient_flow, view, step=None if at == ALL_STEPS else at,
                                        figsize=(9, tall(len(self.selected), per_row=0.3)))
            show(self.flow_out, self.figures["flow"])
            self.message.value = dead_html(self.flow_table, at)
        if which in ("all", "heatmap"):
            self.figures["heatmap"] = draw(plots.gradient_heatmap, view, value=self.heatmap_value.value,
                                           figsize=(10, tall(len(self.selected))))
            show(self.heatmap_out, self.figures["heatmap"])

    def _ipython_display_(self) -> None:           # pragma: no cover - needs a front end
        from IPython.display import display

        display(self.widget)


def dead_html(flow: pd.DataFrame, at: Any = ALL_STEPS) -> str:
    """The dead parameters of a :func:`~collapse_nb.plots.grad_flow_table`, grouped by module, as escaped HTML."""
    if flow.empty:
        return "<i>No finite gradient norm for the selection.</i>"
    dead = flow[flow["dead"]]
    when = "at every logged step" if at == ALL_STEPS else "at this step"
    if dead.empty:
        return f"{len(flow)} parameter(s) shown; none has a zero gradient {when}."
    by_module = dead.groupby(dead["param"].str.rsplit(".", n=1).str[0], sort=False)["param"].apply(list)
    items = "".join(f"<li><code>{escape(m)}</code>: {escape(', '.join(p.rsplit('.', 1)[-1] for p in ps))}</li>"
                    for m, ps in by_module.items())
    return (f"<b style='color:#b71c1c'>{len(dead)} of {len(flow)} parameter(s) have gradient exactly 0 {when}"
            f"</b>, by module:<ul style='margin:2px 0'>{items}</ul>")


def gradient_explorer(run_or_path: Any = None) -> GradientExplorer:
    """A :class:`GradientExplorer` for a run (or a path; ``None``: the bundled example). Show ``.widget``."""
    return GradientExplorer(run_or_path)
