"""Plots of a run's tables (matplotlib), for notebooks, widgets and the HTML report.

>>> import collapse_nb as cnb
>>> from collapse_nb import plots
>>> run = cnb.load("data/example_run")                   # doctest: +SKIP
>>> ax = plots.loss_curves(run)                          # doctest: +SKIP
>>> html_img = plots.figure_to_base64_png(ax.figure)     # doctest: +SKIP

Conventions:

- Every plot function takes ``ax=None`` (draw into that axes, or into a new figure sized for
  the data) and returns the axes it drew on; it never calls ``plt.show()`` and never closes
  the figure (close it with ``plt.close(ax.figure)`` when done, as the report does). Plots of
  several panels (:func:`plot_all_metrics`, :func:`output_std`'s ratio panel) divide the area of
  ``ax`` into them.
- Data: a Run, or a tidy DataFrame as seaborn takes (the long ``run.scalars`` table, several runs'
  concatenated with a ``run`` column; ``run.outputs`` / ``run.grads``; or the placed tables below,
  with an ``x``), and ``hue=`` a column to colour by (``"phase"``, ``"run"``, ``"source"``):
  :func:`loss_curves`, :func:`lr_curve`, :func:`output_std`, :func:`gradient_flow`,
  :func:`grad_norm_distribution`, :func:`plot_all_metrics` (the heatmaps take a DataFrame, without
  hue). See :mod:`collapse_nb.plots._frames`.
- seaborn is optional: with it, the small multiples use its palette and style and
  :func:`grad_norm_distribution` draws with its box / violin / strip plots; without it everything
  draws with plain matplotlib.
- Many parameters: per-parameter charts show at most a few dozen rows, grouped by module (the name
  up to its last ``.``), worst modules first, and say what was left out; many restarts: every
  boundary drawn, at most 8 segments named (the longest and the last).
- Missing data: when the table or columns a plot needs are absent or empty, it raises
  :class:`MissingDataError` (a ``ValueError``) naming them, before any figure is made. Use
  :func:`draw_unavailable` to draw that message instead where a placeholder is wanted.
  Each function's docstring has a "Requires" line.
- Time axis: worked out per plot from the files its rows come from (:class:`Timeline`, from
  :mod:`collapse_nb.timeaxis`, the module the checks use too): the
  logged step; batches counted across epochs where no file logged a step; fractional epochs
  where some files logged steps and others only batches (each file placed by its own clock,
  said in the axis label). Per-epoch values sit at each epoch's end. Rows that have no position
  are counted in a note on the plot, never dropped silently. :func:`metric_timeline` and
  :func:`table_timeline` give a plot's axis (memoised per run).
- Several files giving the same metric: each line names its file(s) in the legend (short names,
  :func:`short_sources`); files agreeing on the per-epoch values share one line.
- Parameter names are shortened from the middle keeping their tail (:func:`shorten_names`).
- The numbers each plot draws come from :mod:`collapse_nb.plots._data` functions re-exported
  here (``grad_flow_table``, ``grads_matrix``, ...), which need only pandas.
- Importing this package does not import matplotlib (the tables above work without it); drawing
  does, and says what to install when it is missing. The backend is never chosen here: scripts
  and tests without a display set ``MPLBACKEND=Agg`` (or call ``matplotlib.use("Agg")``).
"""
from __future__ import annotations

from ._common import (DEAD_COLOR, NOT_LOGGED_COLOR, PHASE_COLORS, common_prefix, draw_unavailable,
                      figure_to_base64_png, figure_to_png_bytes, save_png, shorten_name, shorten_names)
from ..timeaxis import Clock, Timeline, metric_timeline, short_sources, source_timeline, table_timeline, timeline
from ._data import (MissingDataError, grad_flow_table, grads_matrix, grads_over_time, metric_groups,
                    metric_over_time, metric_panels, metric_points, module_of, outputs_over_time,
                    param_norm_changes as param_norm_change_table, update_ratios, val_train_ratio_table)
from .checkpoints import param_norm_changes
from .curves import loss_curves, lr_curve, val_train_ratio
from .gradients import grad_norm_distribution, gradient_flow, gradient_heatmap, update_ratio_heatmap
from .metrics import metric_layout, plot_all_metrics
from .outputs import collapse_thresholds, output_std

__all__ = [
    # plots
    "loss_curves", "lr_curve", "val_train_ratio", "output_std", "gradient_flow", "gradient_heatmap",
    "update_ratio_heatmap", "param_norm_changes", "plot_all_metrics", "grad_norm_distribution",
    "metric_layout", "collapse_thresholds",
    # export and placeholders
    "figure_to_base64_png", "figure_to_png_bytes", "save_png", "draw_unavailable", "MissingDataError",
    # names and colours
    "shorten_name", "shorten_names", "common_prefix", "PHASE_COLORS", "DEAD_COLOR", "NOT_LOGGED_COLOR",
    # the tables the plots draw (pandas only)
    "Timeline", "Clock", "timeline", "metric_timeline", "table_timeline", "source_timeline", "short_sources",
    "metric_over_time", "outputs_over_time", "grads_over_time", "grad_flow_table",
    "grads_matrix", "update_ratios", "val_train_ratio_table", "param_norm_change_table",
    "metric_points", "metric_panels", "metric_groups", "module_of",
]
