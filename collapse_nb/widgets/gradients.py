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
from ..plots._common import DEAD_COLOR, fmt_num, shorten_names, tall
from ._common import as_run, draw, escape, grad_params, require_ipywidgets, show, with_params

ALL_STEPS = "all"
HEATMAP_VALUES = ("grad_norm", "weight_norm", "update_norm", "update_ratio")
FLOW_COLUMNS = ("param", "mean", "max", "min", "n_logged", "n_zero", "dead")
TAB_TITLES = ("gradient flow", "heatmap")


class GradientExplorer:
    """Layer filter (regex) and multi-select, a step slider and the gradient charts of the selection.

    Attributes tests and notebooks drive: ``layer_filter`` (Text; the list narrows as you type),
    ``layer_select`` (SelectMultiple), ``step_slider`` (SelectionSlider: ``"all"`` or a logged position),
    ``heatmap_value`` (Dropdown), ``tab`` (the charts' Tab); and read: ``params`` (all parameters),
    ``steps`` (logged positions), ``flow_table`` (the numbers the bars show; no rows, same columns, for
    an empty selection), ``figures`` (``"flow"``, ``"heatmap"``), ``filter_hint`` (HTML: how many
    parameters match), ``message`` (HTML: dead parameters by module, or why nothing is drawn), ``dead``
    (parameters whose gradient is 0 at every logged step of the whole run).

    The heatmap keeps one look while the controls move: its colour scale is that of the whole run (not
    of the selection), the update/weight ratio is always :func:`~collapse_nb.plots.update_ratio_heatmap`
    (diverging at 1e-3), and dead parameters have red names whatever value is shown. Only the visible
    tab's chart is rendered as a PNG; the other is rendered when its tab is selected.
    """

    def __init__(self, run_or_path: Any = None) -> None:
        w = require_ipywidgets()
        self.run = as_run(run_or_path)
        self.params = grad_params(self.run)
        g = plots.grads_over_time(self.run)
        self._grads = g
        self.steps = [float(x) for x in np.unique(g["x"].to_numpy(float))] if len(g) else []
        self.dead = set(plots.grad_flow_table(g).query("dead")["param"].astype(str)) if len(g) else set()
        unit = plots.table_timeline(self.run, self.run.grads).unit
        modules = list(dict.fromkeys(p.rsplit(".", 1)[0] for p in self.params))
        example = "|".join(m.rsplit(".", 1)[-1] for m in modules[:2]) or "a parameter name"
        self.layer_filter = w.Text(description="filter", placeholder=f"regex, e.g. {example}",
                                   continuous_update=True, layout=w.Layout(width="320px"))
        self.filter_hint = w.HTML()
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
        self.flow_table = empty_flow_table()
        self._holding = False
        self._pending: set[str] = set()           # charts drawn but not yet rendered (their tab is hidden)
        self._scales: dict[str, tuple[float, float]] = {}
        self.tab = w.Tab(children=[self.flow_out, self.heatmap_out], titles=TAB_TITLES)
        self.layer_filter.observe(lambda c: self._filter(c["new"]), names="value")
        self.layer_select.observe(lambda c: self._changed("all"), names="value")
        self.step_slider.observe(lambda c: self._changed("flow"), names="value")
        self.heatmap_value.observe(lambda c: self._changed("heatmap"), names="value")
        self.tab.observe(lambda c: self._render_visible(), names="selected_index")
        controls = w.VBox([w.HBox([self.layer_filter, self.heatmap_value]), self.filter_hint, self.layer_select,
                           self.step_slider])
        self.widget = w.VBox([controls, self.message, self.tab])
        self._hint(len(self.params))
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

    def _hint(self, n: int, pattern: str = "") -> None:
        if not self.params:
            self.filter_hint.value = ""
        elif not pattern:
            self.filter_hint.value = (f"<small>{len(self.params)} parameters; type a regex (case-insensitive) to "
                                      "narrow them: the list and the charts follow as you type</small>")
        else:
            self.filter_hint.value = (f"<small>{n} of {len(self.params)} parameters match "
                                      f"<code>{escape(pattern)}</code></small>")

    def _filter(self, pattern: str) -> None:
        """Options = parameters matching ``pattern`` (case-insensitive regex); all of them selected.
        Runs on every keystroke: a regex over the names, then the charts only when the matches changed."""
        try:
            rx = re.compile(pattern or "", re.IGNORECASE)
        except re.error as exc:
            self.filter_hint.value = (f"<small style='color:#b71c1c'>invalid regex {escape(pattern)}: {escape(exc)} "
                                      "(the list is unchanged)</small>")
            return
        options = [p for p in self.params if rx.search(p)]
        self._hint(len(options), pattern)
        if tuple(options) == tuple(self.layer_select.options):
            return                                  # "att" -> "atte": same matches, nothing to redraw
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
            pattern = self.layer_filter.value
            names = ", ".join(self.params[:3]) + (", ..." if len(self.params) > 3 else "")
            self.message.value = (f"<i>No parameter selected: the filter <code>{escape(pattern)}</code> matches "
                                  f"none of the {len(self.params)} parameters (they are named like "
                                  f"{escape(names)}).</i>"
                                  if pattern else "<i>No parameter selected: pick some in the list.</i>")
            self.figures.clear()
            self.flow_table = empty_flow_table()
            self._pending.clear()
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
            self._pending.add("flow")
            self.message.value = dead_html(self.flow_table, at)
        if which in ("all", "heatmap"):
            value = self.heatmap_value.value
            size = (10, tall(len(self.selected)))
            if value == "update_ratio":
                fig = draw(plots.update_ratio_heatmap, view, figsize=size)
            else:
                fig = draw(plots.gradient_heatmap, view, value=value, figsize=size)
            self._fix_scale(fig, value)
            self._mark_dead(fig)
            self.figures["heatmap"] = fig
            self._pending.add("heatmap")
        self._render_visible()

    def _render_visible(self) -> None:
        """Render (as a PNG) the chart of the visible tab when it changed since it was last shown."""
        which = ("flow", "heatmap")[self.tab.selected_index or 0]
        if which in self._pending and which in self.figures:
            show(self.flow_out if which == "flow" else self.heatmap_out, self.figures[which])
            self._pending.discard(which)

    def scale(self, value: str) -> tuple[float, float] | None:
        """The colour limits of the heatmap of ``value`` (log10), from the whole run: the same for any selection."""
        if value not in self._scales:
            g = self._grads
            if value == "update_ratio":
                v = plots.update_ratios(g).to_numpy(dtype=float, na_value=np.nan)
            elif value in g.columns:
                v = g[value].to_numpy(dtype=float, na_value=np.nan)
            else:
                return None
            v = v[np.isfinite(v) & (v > 0)]
            if not v.size:
                return None
            logv = np.log10(v)
            if value == "update_ratio":            # diverging at the reference 1e-3, as update_ratio_heatmap draws it
                centre = -3.0
                span = max(1.0, float(np.max(np.abs(logv - centre))))
                self._scales[value] = (centre - span, centre + span)
            else:
                lo, hi = float(logv.min()), float(logv.max())
                self._scales[value] = (lo, hi) if hi > lo else (lo - 0.5, hi + 0.5)
        return self._scales[value]

    def _fix_scale(self, fig: Any, value: str) -> None:
        limits = self.scale(value)
        if limits and fig.axes and fig.axes[0].images:
            fig.axes[0].images[0].set_clim(*limits)        # the colour bar follows its image

    def _mark_dead(self, fig: Any) -> None:
        """Dead parameters (gradient 0 at every logged step of the run) in red on any heatmap, said under it."""
        if not fig.axes or not fig.axes[0].images:
            return
        ax = fig.axes[0]
        rows = [p for p in self.selected]
        mat, _ = plots.grads_matrix(plots.grads_over_time(with_params(self.run, rows)), "grad_norm")
        names = dict(zip(shorten_names(list(mat.index)), mat.index))
        marked = 0
        for label in ax.get_yticklabels():
            if names.get(label.get_text()) in self.dead:
                label.set_color(DEAD_COLOR)
                label.set_fontweight("bold")
                marked += 1
        if marked:
            ax.set_xlabel(ax.get_xlabel() + "\nred names: dead (gradient = 0 at every logged step)")

    def _ipython_display_(self) -> None:           # pragma: no cover - needs a front end
        from IPython.display import display

        display(self.widget)


def empty_flow_table() -> pd.DataFrame:
    """A :func:`~collapse_nb.plots.grad_flow_table` with no rows (what an empty selection shows)."""
    return pd.DataFrame({c: pd.Series(dtype=bool if c == "dead" else object if c == "param" else float)
                         for c in FLOW_COLUMNS})


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
