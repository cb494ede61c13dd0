"""Interactive explorers for Jupyter (ipywidgets), thin views over a run's tables, plots and checks.

>>> from collapse_nb import widgets
>>> ex = widgets.explore("runs/my_failed_run")                 # doctest: +SKIP
>>> ex.widget                                                  # doctest: +SKIP
>>> widgets.findings_panel(collapse_nb.diagnose(run)).widget   # doctest: +SKIP

Each explorer is a class whose ``.widget`` is the ipywidgets container to display, and whose
controls are attributes (set ``.value`` in Python to drive it, as the tests and notebooks do):

- :func:`explore` -> :class:`RunExplorer`: run picker, summary, curves with an epoch range
  slider, outputs, gradients, findings, thresholds;
- :func:`gradient_explorer` -> :class:`GradientExplorer`: layer regex filter and multi-select,
  step slider, gradient flow and heatmap, dead parameters by module;
- :func:`threshold_explorer` -> :class:`ThresholdExplorer`: a check's threshold on a slider,
  re-running ``diagnose(run, checks=[check], **{f"{check}__{field}": value})`` live;
- :func:`compare` -> :class:`CompareExplorer`: two runs side by side;
- :func:`findings_panel` -> :class:`FindingsPanel`: findings coloured by severity (escaped);
- :func:`teaching_explorer` -> :class:`~collapse_nb.widgets.teaching.TeachingExplorer`: train small
  networks live and watch their gradients vanish, explode or flow.

Figures are drawn by the plain plot functions of :mod:`collapse_nb.plots` into
``matplotlib.figure.Figure`` objects (never pyplot's, so none is left open) and shown in
``ipywidgets.Output`` as PNGs. Needs ``ipywidgets`` (an ImportError says so otherwise).
"""
from __future__ import annotations

from ._common import require_ipywidgets

require_ipywidgets()

from .compare import CompareExplorer, compare, compare_table  # noqa: E402
from .explorer import RunExplorer, RunPicker, explore, find_run_dirs  # noqa: E402
from .findings import FindingsPanel, findings_html, findings_panel  # noqa: E402
from .gradients import GradientExplorer, gradient_explorer  # noqa: E402
from .teaching import TeachingExplorer, plot_layer_grads, plot_teaching_loss, teaching_explorer  # noqa: E402
from .thresholds import ThresholdExplorer, threshold_explorer  # noqa: E402

__all__ = ["explore", "compare", "findings_panel", "gradient_explorer", "threshold_explorer", "teaching_explorer",
           "RunExplorer", "RunPicker", "CompareExplorer", "FindingsPanel", "GradientExplorer", "ThresholdExplorer",
           "TeachingExplorer", "compare_table", "findings_html", "find_run_dirs", "plot_layer_grads",
           "plot_teaching_loss"]
