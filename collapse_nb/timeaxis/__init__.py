"""The time axis of a run's series: one module for the checks, the plots and the widgets.

- :mod:`~collapse_nb.timeaxis.ordering`: time order of rows (steps, steps restarting per epoch,
  epoch then batch), the main segment of a file with restarts, and how a row's place is named
  (``step 1200``, ``epoch 3 batch 150``);
- :mod:`~collapse_nb.timeaxis.curves`: the densest honest curve of a series (step rows when there
  are more of them than epochs, one file at a time unless they continue each other, summary rows
  never points) and what a check read (series, resolution, points, span);
- :mod:`~collapse_nb.timeaxis.placement`: where rows sit on a plot's x axis (:class:`Timeline`:
  global steps, counted batches, or fractional epochs with one :class:`Clock` per file).

Everything here takes a run's tables (or a run) and returns new pandas objects.
"""
from __future__ import annotations

from .curves import (LOSS_COLUMNS, continues_each_other, curve, curve_basis, finite, loss_rows, missing_loss,
                     table_basis)
from .ordering import add_where, main_segment, order, step_is_global, where
from .placement import (Clock, Timeline, metric_timeline, short_sources, source_timeline, table_timeline,
                        timeline)

__all__ = ["order", "step_is_global", "main_segment", "where", "add_where",
           "LOSS_COLUMNS", "loss_rows", "curve", "continues_each_other", "finite", "curve_basis", "missing_loss",
           "table_basis", "Clock", "Timeline", "timeline", "source_timeline", "metric_timeline", "table_timeline",
           "short_sources"]
