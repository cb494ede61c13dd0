"""Per-parameter gradients and updates: gradient flow bars and layer-by-step heatmaps."""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import timeaxis
from . import _data
from ._common import (DEAD_COLOR, MissingDataError, check_run, draw_heatmap, fmt_num, new_axes, row_ticks,
                      shorten_names, tall, title_and_legend)

MAX_COLOR = "#9ecae1"
MEAN_COLOR = "#1f5f99"
_VALUE_LABELS = {"grad_norm": "gradient norm", "weight_norm": "weight norm", "update_norm": "update norm",
                 "update_ratio": "update / weight norm"}


def _grads(run: Any, func: str) -> Any:
    check_run(run, func)
    g = _data.grads_over_time(run)
    if g.empty:
        raise MissingDataError(f"{func} needs per-parameter norms in run.grads (grad_norm/<param> keys or the "
                               "seed report's OPTIMIZER STEP DIAGNOSTICS blocks); run.grads is empty")
    return g


def _logged_positions(g: Any) -> np.ndarray:
    return np.unique(g["x"].to_numpy(float))


def _axis(run: Any) -> timeaxis.Timeline:
    """The time axis of ``run.grads``: that of the file(s) the norms come from."""
    return timeaxis.table_timeline(run, run.grads)


def _from_file(run: Any, g: Any) -> str:
    """`` (file)`` when other files logged per-parameter norms too (``run.meta["table_sources"]``), else ``""``."""
    if "source" not in g.columns or "grads" not in run.meta.get("table_sources", {}):
        return ""
    files = list(dict.fromkeys(g["source"].astype(str)))
    short = timeaxis.short_sources(files)
    return f" ({', '.join(short[f] for f in files)})"


def gradient_flow(run: Any, ax: Any = None, step: float | str | None = None) -> Any:
    """Per-parameter gradient norm: max and mean over the logged steps (or the value at one step).

    The classic "plot_grad_flow" chart, turned horizontal so parameter names read easily, on a
    log scale. Parameters whose gradient norm is exactly 0 at every logged step are *dead*: drawn
    as a red hatched band labelled "dead" (their names in red). ``step``: a logged position on
    the time axis of the file the norms come from (:func:`collapse_nb.plots.table_timeline`: its
    ``step``, or the counted batch when it logged no step; see
    :func:`collapse_nb.plots.grads_over_time`) or ``"last"``. When several files logged
    per-parameter norms, the title names the one ``run.grads`` uses.

    Requires: ``grad_norm`` per ``param`` in ``run.grads``. Returns the axes; raises
    :class:`MissingDataError` without data, ``ValueError`` for a step that was not logged.
    """
    g = _grads(run, "gradient_flow")
    at = None
    if step is not None:
        logged = _logged_positions(g)
        if isinstance(step, str) and step == "last":
            at = float(logged[-1])
        elif isinstance(step, (int, float, np.integer, np.floating)) and float(step) in set(logged.tolist()):
            at = float(step)
        else:
            label = _axis(run).label
            raise ValueError(f"gradient_flow(): step={step!r} was not logged; logged {label} values run from "
                             f"{fmt_num(logged[0])} to {fmt_num(logged[-1])} ({len(logged)} values), or use 'last'")
    t = _data.grad_flow_table(g, at=at)
    if t.empty:
        raise MissingDataError("gradient_flow needs finite grad_norm values in run.grads; there are none")
    n = len(t)
    y = np.arange(n)
    dead = t["dead"].to_numpy(bool)
    live = ~dead
    ax = new_axes(ax, (9, tall(n, per_row=0.3)))
    positive = t[["mean", "max"]].to_numpy(float)
    positive = positive[np.isfinite(positive) & (positive > 0)]
    lo, hi = (positive.min() / 5, positive.max() * 5) if positive.size else (1e-8, 1.0)
    ax.set_xscale("log")
    n_steps = int(t["n_logged"].max())
    if at is None:
        ax.barh(y[live], t["max"][live], height=0.8, color=MAX_COLOR, label="max over logged steps")
        ax.barh(y[live], t["mean"][live], height=0.45, color=MEAN_COLOR, label="mean over logged steps")
        dead_label = f"dead: grad = 0 at all {n_steps} logged steps"
    else:
        unit = _axis(run).unit
        ax.barh(y[live], t["mean"][live], height=0.6, color=MEAN_COLOR, label=f"gradient norm at {unit} {fmt_num(at)}")
        dead_label = "grad = 0 at this step"
    if dead.any():
        ax.barh(y[dead], hi - lo, left=lo, height=0.8, color=DEAD_COLOR, alpha=0.3, hatch="//",
                edgecolor=DEAD_COLOR, label=dead_label)
        for yi in y[dead]:
            ax.text(lo * 1.3, yi, "dead (grad = 0)" if at is None else "grad = 0", va="center", ha="left",
                    fontsize=8, color=DEAD_COLOR, fontweight="bold")
    ax.set_xlim(lo, hi)
    ax.set_ylim(n - 0.5, -0.5)
    row_ticks(ax, shorten_names(t["param"]), "y", dead)
    ax.set_xlabel("gradient norm (L2, log scale)")
    ax.set_ylabel("parameter")
    when = f"over {n_steps} logged steps" if at is None else f"at {_axis(run).unit} {fmt_num(at)}"
    ax.grid(True, axis="x", alpha=0.3)
    title_and_legend(ax, f"Gradient flow per parameter {when}{_from_file(run, g)}")
    return ax


def _log10(a: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(a > 0, np.log10(np.where(a > 0, a, 1.0)), np.nan)


def gradient_heatmap(run: Any, ax: Any = None, value: str = "grad_norm") -> Any:
    """Parameter x logged step heatmap of a per-parameter norm on a log10 colour scale.

    ``value``: ``grad_norm`` (default), ``weight_norm``, ``update_norm`` or ``update_ratio``.
    Cells exactly 0 are drawn in the dead colour (red), cells not logged in light grey;
    parameters 0 at every step have red names. One column per logged step (evenly spaced, so
    irregular logging does not stretch the picture), on the time axis of the file the norms come
    from; dashed lines mark restarts.

    Requires: ``value`` per ``param`` in ``run.grads``. Returns the axes (``ax.images[0]`` holds
    the parameters x steps array); raises :class:`MissingDataError` without data.
    """
    if value not in _data.GRAD_VALUES:
        raise ValueError(f"gradient_heatmap(): value must be one of {', '.join(map(repr, _data.GRAD_VALUES))}; "
                         f"got {value!r}")
    g = _grads(run, "gradient_heatmap")
    if value == "update_ratio":
        vals = _data.update_ratios(g)
    elif value in g.columns:
        vals = g[value]
    else:
        vals = None
    if vals is None or not np.isfinite(vals.to_numpy(dtype=float, na_value=np.nan)).any():
        raise MissingDataError(f"gradient_heatmap(value={value!r}) needs {value} values in run.grads; there are none")
    mat, cols = _data.grads_matrix(g, vals)
    arr = mat.to_numpy(float)
    zero = arr == 0
    dead = np.array([(r[np.isfinite(r)] == 0).all() and np.isfinite(r).any() for r in arr])
    label = _VALUE_LABELS[value]
    ax = new_axes(ax, (11, tall(len(mat))))
    draw_heatmap(ax, _log10(arr), row_labels=shorten_names(mat.index), col_values=cols["x"],
                 col_segments=cols["segment"], cmap="viridis", cbar_label=f"log10({label})",
                 zero_mask=zero, zero_label=f"{label} = 0" + (" (dead)" if value == "grad_norm" else ""),
                 highlight_rows=dead, xlabel=_xlabel(run),
                 title=f"{label[0].upper()}{label[1:]} per parameter and step (log10){_from_file(run, g)}")
    ax.set_ylabel("parameter")
    return ax


def _xlabel(run: Any) -> str:
    return f"{_axis(run).label} (one column per logged step)"


def update_ratio_heatmap(run: Any, ax: Any = None, reference: float = 1e-3) -> Any:
    """Parameter x logged step heatmap of ``update_norm / weight_norm`` (log10).

    The colour scale diverges at ``reference`` (white; 1e-3 is the usual rule of thumb for a
    healthy step): purple below (the parameter barely moves), green above (it moves fast).
    Updates of exactly 0 (the parameter did not move) are drawn in the dead colour; parameters
    that never moved have red names. The logged
    ``update_ratio`` is used where there is one.

    Requires: ``update_norm`` and ``weight_norm`` (or ``update_ratio``) in ``run.grads``.
    Returns the axes; raises :class:`MissingDataError` without data.
    """
    from matplotlib.colors import TwoSlopeNorm

    if not (isinstance(reference, (int, float)) and reference > 0):
        raise ValueError(f"update_ratio_heatmap(): reference must be a positive number; got {reference!r}")
    g = _grads(run, "update_ratio_heatmap")
    r = _data.update_ratios(g)
    if not np.isfinite(r.to_numpy(float)).any():
        raise MissingDataError("update_ratio_heatmap needs update_norm and weight_norm (or update_ratio) in "
                               "run.grads; no row has both")
    mat, cols = _data.grads_matrix(g, r)
    arr = mat.to_numpy(float)
    zero = (arr == 0) | (_data.grads_matrix(g, "update_norm")[0].to_numpy(float) == 0)   # did not move at all
    logv = _log10(arr)
    centre = float(np.log10(reference))
    finite = logv[np.isfinite(logv)]
    span = max(1.0, float(np.max(np.abs(finite - centre)))) if finite.size else 1.0
    norm = TwoSlopeNorm(vcenter=centre, vmin=centre - span, vmax=centre + span)
    frozen = zero.all(axis=1)
    ax = new_axes(ax, (11, tall(len(mat))))
    im = draw_heatmap(ax, logv, row_labels=shorten_names(mat.index), col_values=cols["x"],
                      col_segments=cols["segment"], cmap="PRGn", norm=norm,
                      cbar_label=f"log10(update / weight)\nwhite = reference {fmt_num(reference)} ({fmt_num(centre)})",
                      zero_mask=zero, zero_label="update = 0 (frozen)", highlight_rows=frozen,
                      xlabel=_xlabel(run),
                      title=f"Update / weight norm ratio per parameter and step{_from_file(run, g)}")
    im.colorbar.ax.axhline(centre, color="black", linewidth=1)
    ax.set_ylabel("parameter")
    return ax
