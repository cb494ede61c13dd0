"""The run explorer: pick a run, then its summary, curves, outputs, gradients, findings and thresholds in tabs.

>>> ex = explore("runs/my_failed_run")          # or explore() for the bundled example  # doctest: +SKIP
>>> ex.widget                                   # show it in a notebook  # doctest: +SKIP
>>> ex.picker.path.value = "runs/other"; ex.picker.load_button.click()   # doctest: +SKIP

The run picker is a path box plus a chooser: ``ipyfilechooser.FileChooser`` when that package
is installed, else a Dropdown of the run directories found under a root folder
(:func:`find_run_dirs`). Every tab is a view of the same :class:`~collapse_nb.run.Run`.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Callable

from .. import plots, timeaxis
from ..plots._data import epoch_columns
from ..plots.objective import has_objective
from ..diagnose import diagnose
from ..errors import CollapseNBError
from ._common import as_run, draw, escape, require_ipywidgets, show
from .findings import FindingsPanel
from .gradients import GradientExplorer
from .thresholds import ThresholdExplorer

#: File names a training run leaves (what makes a folder a run directory for the chooser).
RUN_FILE_SUFFIXES = (".log", ".csv", ".tsv", ".json", ".jsonl", ".txt", ".yaml", ".yml", ".pt", ".pth", ".bin",
                     ".ckpt", ".safetensors")
SKIP_DIRS = {"__pycache__", "node_modules", "site-packages", ".git", ".venv", "venv"}


def find_run_dirs(root: str | os.PathLike, max_depth: int = 3, limit: int = 200) -> list[Path]:
    """Folders under ``root`` (``root`` included, ``max_depth`` levels down, at most ``limit``) holding a
    file a run leaves (a log, a metrics CSV/JSON, a config, a checkpoint or TensorBoard events), sorted."""
    root = Path(root)
    found: list[Path] = []
    if not root.is_dir():
        return found
    base = len(root.parts)
    for here, dirs, files in os.walk(root):
        depth = len(Path(here).parts) - base
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIP_DIRS) if depth < max_depth else []
        if any(f.endswith(RUN_FILE_SUFFIXES) or "tfevents" in f for f in files if not f.startswith(".")):
            found.append(Path(here))
            if len(found) >= limit:
                break
    return sorted(found)


class RunPicker:
    """A path box, a chooser and a load button. ``load()`` reads the path (empty: the bundled example),
    sets ``run`` and calls the ``on_load`` callbacks; errors are shown in ``status``, not raised."""

    def __init__(self, path: str | os.PathLike | None = None, root: str | os.PathLike | None = None) -> None:
        w = require_ipywidgets()
        self.run: Any = None
        self.callbacks: list[Callable[[Any], None]] = []
        self.path = w.Text(value=str(path) if path is not None else "", description="run path",
                           placeholder="a file or folder; empty: the bundled example", layout=w.Layout(width="560px"))
        self.load_button = w.Button(description="load", button_style="primary", icon="folder-open")
        self.status = w.HTML()
        self.root = Path(root) if root is not None else Path.cwd()
        try:
            from ipyfilechooser import FileChooser
        except ImportError:
            dirs = find_run_dirs(self.root)
            self.chooser = w.Dropdown(options=[("(choose a run found under " + str(self.root) + ")", "")]
                                      + [(str(d.relative_to(self.root)) or ".", str(d)) for d in dirs],
                                      value="", description="runs", layout=w.Layout(width="560px"))
            self.chooser.observe(lambda c: self._chosen(c["new"]), names="value")
        else:                                           # pragma: no cover - optional package
            self.chooser = FileChooser(str(self.root), show_only_dirs=False, title="or choose a file or folder")
            self.chooser.register_callback(lambda fc: self._chosen(fc.selected or ""))
        self.load_button.on_click(lambda _b: self.load())
        self.widget = w.VBox([w.HBox([self.path, self.load_button]), self.chooser, self.status])

    def _chosen(self, path: str) -> None:
        if path:
            self.path.value = path

    def on_load(self, callback: Callable[[Any], None]) -> None:
        self.callbacks.append(callback)

    def load(self) -> Any:
        """Load ``path.value``; returns the run, or ``None`` when it could not be read (see ``status``)."""
        text = self.path.value.strip()
        try:
            run = as_run(text or None)
        except (CollapseNBError, OSError, ValueError) as exc:
            self.status.value = f"<span style='color:#b71c1c'>could not load {escape(text)}: {escape(exc)}</span>"
            return None
        self.run = run
        self.status.value = f"loaded <code>{escape(text or 'the bundled example')}</code>: {escape(repr(run))}"
        for cb in self.callbacks:
            cb(run)
        return run


class RunExplorer:
    """A :class:`RunPicker` over tabs: Summary, Curves (x axis, log scale, an epoch range slider),
    Outputs, Gradients (:class:`GradientExplorer`), Findings (:class:`FindingsPanel`) and
    Thresholds (:class:`ThresholdExplorer`). Loading another run rebuilds the tabs.

    Attributes: ``picker``, ``run``, ``findings``, ``x_axis``, ``logy``, ``epoch_range``,
    ``curves_figure``, ``outputs_figure``, ``gradients``, ``panel``, ``thresholds``, ``tabs``.
    """

    TAB_TITLES = ("summary", "curves", "outputs", "gradients", "findings", "thresholds")

    def __init__(self, run_or_path: Any = None, root: str | os.PathLike | None = None) -> None:
        w = require_ipywidgets()
        self._w = w
        run = as_run(run_or_path)            # a path that cannot be read raises the loader's error here
        shown = run_or_path if isinstance(run_or_path, (str, os.PathLike)) else None
        self.picker = RunPicker(shown, root)
        self.picker.run = run
        self.tabs = w.Tab()
        self.widget = w.VBox([self.picker.widget, self.tabs])
        self.picker.on_load(self.show_run)
        self.show_run(run)

    def show_run(self, run: Any) -> None:
        """Build every tab for ``run`` (what loading a run calls)."""
        w = self._w
        self.run = as_run(run)
        self.findings = diagnose(self.run)
        self.summary = w.HTML(f"<pre style='white-space:pre-wrap'>{escape(self.run.summary())}</pre>")
        epochs = self.run.epochs["epoch"].dropna() if "epoch" in self.run.epochs else []
        lo, hi = (int(min(epochs)), int(max(epochs))) if len(epochs) else (0, 0)
        self.timeline = timeaxis.metric_timeline(self.run, "loss")
        options, not_offered = curve_axes(self.run, self.timeline)
        self.x_axis = w.Dropdown(options=options, value=options[0][1], description="x axis",
                                 layout=w.Layout(width="360px"),
                                 disabled=len(options) < 2, style={"description_width": "initial"})
        self.logy = w.Checkbox(value=False, description="log scale", indent=False)
        self.epoch_range = w.IntRangeSlider(value=(lo, hi), min=lo, max=max(hi, lo + 1), description="epochs",
                                            continuous_update=False, disabled=not len(epochs))
        self.axis_note = w.HTML(not_offered)         # which x axes are not offered for this run, and why
        self.range_note = w.HTML()                   # where the selected epochs lie on the x axis
        self.curves_out, self.outputs_out = w.Output(), w.Output()
        for c in (self.x_axis, self.logy, self.epoch_range):
            c.observe(lambda _c: self.draw_curves(), names="value")
        self.draw_curves()
        self.outputs_figure = draw(plots.output_std, self.run)
        show(self.outputs_out, self.outputs_figure)
        self.gradients = GradientExplorer(self.run)
        self.panel = FindingsPanel(self.findings)
        self.thresholds = ThresholdExplorer(self.run, "variance_collapse", "critical_ratio")
        self.tabs.children = [self.summary, w.VBox([w.HBox([self.x_axis, self.logy, self.epoch_range]),
                                                    self.axis_note, self.range_note, self.curves_out]),
                              self.outputs_out, self.gradients.widget, self.panel.widget, self.thresholds.widget]
        self.tabs.titles = self.TAB_TITLES

    def draw_curves(self) -> None:
        """Loss and learning-rate curves with the chosen x axis and scale, limited to the epoch range.

        Per-epoch values sit where the run's :class:`~collapse_nb.timeaxis.Timeline` puts them on either
        axis: on a fractional-epoch axis epoch ``e`` spans ``[e, e + 1)`` and its values sit at its end."""
        fig = _new_two_row_figure()
        ax_loss, ax_lr = fig.axes
        for plot, ax, kw in ((plots.loss_curves, ax_loss, {"logy": self.logy.value}), (plots.lr_curve, ax_lr, {})):
            try:
                plot(self.run, ax=ax, x=self.x_axis.value, **kw)
            except (plots.MissingDataError, ValueError) as exc:
                ax.clear()
                plots.draw_unavailable(exc, ax=ax)
            else:
                if self.x_axis.value == "epoch" and self.timeline.kind == "epoch":
                    place_epoch_values(ax, self.timeline)
        self.range_note.value = ""
        if not self.epoch_range.disabled:
            limits = self._x_limits(ax_loss)
            for ax in fig.axes:
                if limits and ax.has_data():
                    ax.set_xlim(*limits)
            if limits:
                lo, hi = self.epoch_range.value
                self.range_note.value = (f"<small>epochs {lo}&ndash;{hi} span x = {limits[0]:.4g} to {limits[1]:.4g} "
                                         f"on this axis{escape(self._placement_words())}</small>")
        self.curves_figure = fig
        show(self.curves_out, fig)

    def _placement_words(self) -> str:
        if self.timeline.kind == "epoch":
            return "; epoch e runs from e to e + 1 and its per-epoch values sit at its end (e + 1)"
        if self.x_axis.value == "epoch":
            return "; epoch e's values sit at e"
        return f"; per-epoch values sit at the last {self.timeline.unit} of their epoch"

    def _x_limits(self, ax: Any) -> tuple[float, float] | None:
        """The x range of the selected epochs, as the Timeline places them: epoch numbers on a plain epoch
        axis, else from where epoch ``lo`` begins to where epoch ``hi`` ends."""
        lo, hi = self.epoch_range.value
        tl = self.timeline
        if self.x_axis.value == "epoch" and tl.kind != "epoch" or tl.kind is None:
            return lo - 0.5, hi + 0.5
        start = tl.epoch_end(0, lo - 1) if lo > self.epoch_range.min else math.nan   # where epoch lo begins
        if tl.kind == "epoch":
            start = float(lo)
        end = tl.epoch_end(0, hi)
        if math.isnan(end):
            return None
        return (ax.get_xlim()[0] if math.isnan(start) else start), end

    def _ipython_display_(self) -> None:           # pragma: no cover - needs a front end
        from IPython.display import display

        display(self.widget)


def curve_axes(run: Any, tl: Any = None) -> tuple[list[tuple[str, str]], str]:
    """The x axes the curves tab offers for ``run`` (``(label, value)`` options for ``loss_curves(x=value)``)
    and an escaped HTML note naming those not offered and why. Only axes that draw something different
    are offered: per step (on the loss's own time axis) when the loss was logged per step or batch, per
    epoch when ``run.epochs`` has a loss column."""
    tl = tl if tl is not None else timeaxis.metric_timeline(run, "loss")
    s = run.scalars
    if not (s["name"] == "loss").any() and has_objective(run):
        return [("as logged (the loss's components)", "auto")], ("<small>one x axis: the loss is drawn from its "
                                                                 "components as they were logged</small>")
    d = plots.metric_over_time(run, "loss")
    per_step = bool(len(d) and (d["level"] == "step").any())
    cols = epoch_columns(run.epochs, "loss")
    per_epoch = any(run.epochs[c].notna().any() for c in cols.values())
    words = {"step": "per step (x: step)", "batch": "per batch (x: counted batches)",
             "epoch": "per step and batch (x: fractional epochs)"}
    options: list[tuple[str, str]] = []
    missing: list[str] = []
    if per_step:
        options.append((words.get(tl.kind or "", "per step"), "step"))
    else:
        missing.append("per step: no loss was logged per step or batch")
    if per_epoch:
        options.append(("per epoch (x: epoch)", "epoch"))
    else:
        missing.append("per epoch: run.epochs has no loss column")
    if not options:
        return [("no loss logged", "auto")], "<small>no loss was logged: there is no curve to draw</small>"
    note = "; ".join(missing)
    return options, (f"<small>not offered: {escape(note)}</small>" if note else "")


def place_epoch_values(ax: Any, tl: Any) -> None:
    """Move what ``loss_curves(x="epoch")`` drew at epoch ``e`` to where ``tl`` (a fractional-epoch
    Timeline) places epoch ``e``'s values, so both views of the curves tab agree."""
    import numpy as np
    import pandas as pd

    for line in ax.get_lines():
        x_is_data, _ = line.get_transform().contains_branch_seperately(ax.transData)
        xs = np.asarray(line.get_xdata(), dtype=float)
        if x_is_data and xs.size:
            line.set_xdata(tl.positions(pd.DataFrame({"epoch": xs})))
    ax.relim()
    ax.autoscale_view()
    ax.set_xlabel("epoch (per-epoch values at the epoch's end, as on the per-step axis)")


def _new_two_row_figure() -> Any:
    from ._common import new_figure

    fig = new_figure((9, 6.5))
    fig.subplots(2, 1, sharex=False, height_ratios=[2, 1])
    return fig


def explore(run_or_path: Any = None, root: str | os.PathLike | None = None) -> RunExplorer:
    """A :class:`RunExplorer` for a run, a path, or (``None``) the bundled example; show ``.widget``.
    ``root``: where the chooser looks for run folders (default: the working directory)."""
    return RunExplorer(run_or_path, root)
